"""The embedded SQLite ledger: one file, WAL, full durability, group commit.

Appends go through one writer thread per process. It takes every record waiting in its queue,
writes them in one ``BEGIN IMMEDIATE`` transaction and commits once (one WAL fsync for the whole
batch), then wakes the waiting requests. The chain head is read inside that transaction, under
SQLite's write lock, so several processes appending to the same file still build one chain.

We use the standard library's ``sqlite3`` rather than aiosqlite: group commit needs one thread
that owns the write connection and runs a whole batch per hop, which aiosqlite's
one-statement-per-hop model would only slow down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigurationError, LedgerCorrupt, LedgerNotFound, LedgerUnavailable, SubjectNotFound
from .base import COLUMNS_SQL, SCHEMA_VERSION, Ledger, RecordFilter, where_clause
from .records import (
    LedgerRecord,
    NewRecord,
    add_daily,
    daily_counts_of_rows,
    erasure_record,
    seal_batch,
    utc_timestamp,
)

log = logging.getLogger("consentkit.ledger")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consentkit_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consentkit_ledger (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    recorded_at TEXT NOT NULL,
    subject_id TEXT,
    action TEXT NOT NULL,
    purposes TEXT NOT NULL,
    method TEXT NOT NULL,
    policy_revision INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    locale TEXT NOT NULL,
    ip_prefix TEXT,
    user_agent TEXT,
    gpc INTEGER NOT NULL,
    evidence TEXT,
    pii_digest TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consentkit_ledger_subject ON consentkit_ledger (subject_id);
CREATE INDEX IF NOT EXISTS consentkit_ledger_hash ON consentkit_ledger (hash);
CREATE TABLE IF NOT EXISTS consentkit_pii_salts (
    seq INTEGER PRIMARY KEY,
    salt BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS consentkit_policies (
    digest TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    version TEXT NOT NULL,
    policy TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
"""
# Schema version 2.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS consentkit_daily (
    day TEXT NOT NULL,
    metric TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, metric)
);
CREATE TABLE IF NOT EXISTS consentkit_audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user TEXT,
    ip_prefix TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL
);
"""
_UPSERT_DAILY = (
    "INSERT INTO consentkit_daily (day, metric, count) VALUES (?, ?, ?) "
    "ON CONFLICT (day, metric) DO UPDATE SET count = count + excluded.count"
)

_INSERT = (
    "INSERT INTO consentkit_ledger (seq, event_id, recorded_at, subject_id, action, purposes, "
    "method, policy_revision, policy_version, policy_digest, locale, ip_prefix, user_agent, gpc, "
    "evidence, pii_digest, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_ROWS_PER_STATEMENT = 50  # 50 x 18 parameters: under the 999 of old SQLite builds too


@functools.lru_cache(maxsize=64)
def _insert_rows(n: int) -> str:
    """An INSERT of ``n`` ledger rows in one statement."""
    return _INSERT.replace(
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "VALUES " + ",".join(["(" + ",".join("?" * 18) + ")"] * n),
    )


_STOP = object()
T = TypeVar("T")
_PAGE = 2000  # rows per read hop when streaming


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` to a path."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        raise ConfigurationError(
            f"ledger URL {url!r}: give a file, as sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (an in-memory ledger would not be durable)"
        )
    return Path(rest[1:])


class SQLiteLedger(Ledger):
    """A consent ledger in one SQLite file."""

    def __init__(
        self, path: str | Path, *, create: bool = True, busy_timeout: float = 10.0, max_batch: int = 1000
    ) -> None:
        self.path = Path(path)
        self.create = create
        self.url = f"sqlite:///{self.path}"
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wconn: sqlite3.Connection | None = None
        self._known_policies: set[str] = set()
        self._checked = False
        self.commits = 0  # transactions committed by this process (for benchmarks)

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> SQLiteLedger:
        """Open the ledger a ``sqlite:///`` URL names (``create=False``: it must exist)."""
        return cls(path_from_url(url), create=create)

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.create and not self.path.is_file():
            raise LedgerNotFound(f"there is no ledger at {self.path} (no such file)")
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"cannot open the ledger {self.path}: {exc}") from exc
        try:
            self._wal(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise LedgerCorrupt(f"{self.path} is not a consentkit ledger (not an SQLite file)") from exc
            raise LedgerUnavailable(f"cannot open the ledger {self.path}: {exc}") from exc
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode with full durability.

        Processes starting together on a new file race to switch it to WAL; the switch needs the
        file to itself and SQLite answers "locked" at once rather than waiting, so wait here.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        if self._checked:
            return
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "consentkit_meta" not in tables:
                raise LedgerCorrupt(
                    f"{self.path} is an SQLite database but not a consentkit ledger "
                    f"(it has tables {', '.join(sorted(tables)[:5])}); point the ledger URL elsewhere"
                )
            if not self.create and not tables:
                raise LedgerNotFound(f"{self.path} is an empty SQLite file, not a consentkit ledger")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # executescript() would COMMIT first; run the statements inside our transaction.
                for statement in (_SCHEMA + _SCHEMA_V2).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                row = conn.execute("SELECT value FROM consentkit_meta WHERE key='schema_version'").fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO consentkit_meta VALUES ('schema_version', ?), ('created_at', ?)",
                        (str(SCHEMA_VERSION), utc_timestamp()),
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    raise LedgerCorrupt(
                        f"{self.path} has ledger schema version {row[0]}, newer than this consentkit "
                        f"understands ({SCHEMA_VERSION}); upgrade consentkit"
                    )
                elif int(row[0]) < 2:
                    # Version 1 -> 2: build the per-day figures from the records already there.
                    rows = conn.execute(f"SELECT {COLUMNS_SQL}, NULL FROM consentkit_ledger l")
                    counts = daily_counts_of_rows(rows)
                    conn.execute("DELETE FROM consentkit_daily")
                    conn.executemany(_UPSERT_DAILY, [(d, m, n) for (d, m), n in counts.items()])
                    conn.execute(
                        "UPDATE consentkit_meta SET value = ? WHERE key = 'schema_version'",
                        (str(SCHEMA_VERSION),),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise LedgerCorrupt(f"{self.path} is not a consentkit ledger (not an SQLite file)") from exc
            raise LedgerUnavailable(f"cannot prepare the ledger {self.path}: {exc}") from exc
        self._checked = True

    def _writer_conn(self) -> sqlite3.Connection:
        if self._wconn is None:
            conn = self._connect()
            try:
                self._check_schema(conn)
            except BaseException:
                conn.close()
                raise
            self._wconn = conn
        return self._wconn

    async def open(self) -> None:
        """Create or check the file now (else it happens on the first write)."""
        await self._call_writer(lambda: self._writer_conn() and None)

    async def close(self) -> None:
        """Let queued writes finish, then stop the writer thread."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(writer.join)

    # -- writing ------------------------------------------------------------------------------

    async def append(self, entry: NewRecord) -> LedgerRecord:
        """Queue a record for the next group commit and wait until it is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[LedgerRecord] = loop.create_future()
        self._ensure_writer()
        self._queue.put((entry, loop, fut))
        return await fut

    async def _call_writer(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ensure_writer()
        self._queue.put((fn, loop, fut))
        return await fut

    def _ensure_writer(self) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._run_writer,
                        name=f"consentkit-ledger-{self.path.name}",
                        daemon=True,
                    )
                    self._writer.start()

    def _run_writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._process(batch)
            if stop:
                break
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None

    def _process(self, batch: list[tuple[Any, asyncio.AbstractEventLoop, asyncio.Future[Any]]]) -> None:
        calls = [b for b in batch if callable(b[0])]
        records = [b for b in batch if not callable(b[0])]
        for fn, loop, fut in calls:
            try:
                _resolve(loop, [(fut, fn(), None)])
            except BaseException as exc:
                _resolve(loop, [(fut, None, exc)])
        if not records:
            return
        try:
            sealed = self._commit([b[0] for b in records])
            outcomes: list[tuple[Any, Any, BaseException | None]] = [
                (fut, rec, None) for (_, _, fut), rec in zip(records, sealed, strict=True)
            ]
        except (LedgerCorrupt, LedgerNotFound) as exc:
            outcomes = [(fut, None, exc) for _, _, fut in records]
        except LedgerUnavailable as exc:
            outcomes = [(fut, None, exc) for _, _, fut in records]
        except Exception as exc:
            log.exception("consent ledger write failed")
            err = LedgerUnavailable(f"the consent ledger could not be written: {exc}")
            outcomes = [(fut, None, err) for _, _, fut in records]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
        for (_, loop, _), outcome in zip(records, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, items in by_loop.items():
            _resolve(loop, items)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock) and commit."""
        conn = self._writer_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"the consent ledger is locked or unwritable: {exc}") from exc
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            # A rolled-back transaction may have added policies we did not keep.
            self._known_policies.clear()
            if isinstance(exc, sqlite3.Error):
                raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc
            raise
        self.commits += 1
        return result

    def _commit(self, entries: list[NewRecord]) -> list[LedgerRecord]:
        return self._transaction(lambda conn: self._append_in(conn, entries))

    def _append_in(self, conn: sqlite3.Connection, entries: list[NewRecord]) -> list[LedgerRecord]:
        head = conn.execute(
            "SELECT seq, hash, recorded_at FROM consentkit_ledger ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        sealed = seal_batch(entries, head)
        for entry in entries:
            if entry.policy_json is not None and entry.policy_digest not in self._known_policies:
                conn.execute(
                    "INSERT OR IGNORE INTO consentkit_policies VALUES (?,?,?,?,?)",
                    (
                        entry.policy_digest,
                        entry.policy_revision,
                        entry.policy_version,
                        entry.policy_json,
                        sealed[0].recorded_at,
                    ),
                )
                self._known_policies.add(entry.policy_digest)
        counts: dict[tuple[str, str], int] = {}
        for entry, rec in zip(entries, sealed, strict=True):
            add_daily(counts, rec.recorded_at, entry.action, entry.method, entry.gpc, entry.purposes)
        # Multi-row statements, not executemany: every SQLite step lets go of the GIL, and
        # getting it back from a busy event loop can take a whole switch interval (5 ms), so a
        # batch of a hundred records should be a handful of steps, not hundreds.
        for i in range(0, len(sealed), _ROWS_PER_STATEMENT):
            chunk = sealed[i : i + _ROWS_PER_STATEMENT]
            conn.execute(_insert_rows(len(chunk)), [v for r in chunk for v in r.row()])
            conn.execute(
                "INSERT INTO consentkit_pii_salts VALUES " + ",".join(["(?,?)"] * len(chunk)),
                [v for r in chunk for v in (r.seq, r.pii_salt)],
            )
        if counts:
            conn.execute(
                "INSERT INTO consentkit_daily (day, metric, count) VALUES "
                + ",".join(["(?,?,?)"] * len(counts))
                + " ON CONFLICT (day, metric) DO UPDATE SET count = count + excluded.count",
                [v for (d, m), n in counts.items() for v in (d, m, n)],
            )
        return sealed

    async def erase(self, subject_id: str) -> LedgerRecord:
        """Crypto-shred a subject's personal fields and record the erasure (see ``Ledger.erase``)."""

        def work(conn: sqlite3.Connection) -> LedgerRecord:
            rows = conn.execute(
                f"SELECT {COLUMNS_SQL}, NULL FROM consentkit_ledger l WHERE l.subject_id = ? ORDER BY l.seq",
                (subject_id,),
            ).fetchall()
            if not rows:
                raise SubjectNotFound(f"no ledger record belongs to subject {subject_id!r}")
            seqs = [(r[0],) for r in rows]
            conn.executemany("DELETE FROM consentkit_pii_salts WHERE seq = ?", seqs)
            conn.execute(
                "UPDATE consentkit_ledger SET subject_id = NULL, ip_prefix = NULL, user_agent = NULL, "
                "evidence = NULL WHERE subject_id = ?",
                (subject_id,),
            )
            return self._append_in(conn, [erasure_record(LedgerRecord.from_row(rows[-1]), len(rows))])[0]

        return await self._call_writer(lambda: self._transaction(work))  # type: ignore[no-any-return]

    # -- reading ------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = self._connect()
        self._check_schema(conn)
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def row_pages(
        self, flt: RecordFilter | None = None, *, with_salts: bool = False
    ) -> AsyncIterator[list[Any]]:
        """Stream raw rows in ``seq`` order, a page at a time, in constant memory.

        The next page is read in a thread while the caller works on this one (SQLite releases
        the GIL while it steps), so reading and formatting overlap on two cores.
        """
        flt = flt or RecordFilter()
        conn = await asyncio.to_thread(self._reader)
        try:
            where, params = where_clause(flt, lambda n: "?")
            salt_col = ", s.salt" if with_salts else ", NULL"
            join = " LEFT JOIN consentkit_pii_salts s ON s.seq = l.seq" if with_salts else ""
            sql = (
                f"SELECT {COLUMNS_SQL}{salt_col} FROM consentkit_ledger l{join} "
                f"WHERE l.seq > ?{where} ORDER BY l.seq LIMIT {_PAGE}"
            )

            def page(after: int) -> list[Any]:
                return conn.execute(sql, (after, *params)).fetchall()

            pending = asyncio.ensure_future(asyncio.to_thread(page, 0))
            try:
                while True:
                    rows = await pending
                    full = len(rows) == _PAGE
                    if full:
                        pending = asyncio.ensure_future(asyncio.to_thread(page, rows[-1][0]))
                    if rows:
                        yield rows
                    if not full:
                        break
            finally:
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc
        finally:
            conn.close()

    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        def read() -> list[Any]:
            conn = self._reader()
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()

        rows: list[Any] = await asyncio.to_thread(_guard(read))
        return rows

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        # Through the writer thread, so that it never races a group commit for the lock.
        await self._call_writer(lambda: self._transaction(lambda conn: conn.execute(sql, params)))

    async def history(self, subject_id: str) -> list[LedgerRecord]:
        """One subject's records, oldest first."""

        def read() -> list[LedgerRecord]:
            conn = self._reader()
            try:
                rows = conn.execute(
                    f"SELECT {COLUMNS_SQL}, NULL FROM consentkit_ledger l "
                    "WHERE l.subject_id = ? ORDER BY l.seq",
                    (subject_id,),
                ).fetchall()
            finally:
                conn.close()
            return [LedgerRecord.from_row(r) for r in rows]

        return await asyncio.to_thread(_guard(read))

    async def policy_text(self, digest: str) -> str | None:
        """The stored canonical policy for a digest."""

        def read() -> str | None:
            conn = self._reader()
            try:
                row = conn.execute(
                    "SELECT policy FROM consentkit_policies WHERE digest = ?", (digest,)
                ).fetchone()
            finally:
                conn.close()
            return None if row is None else str(row[0])

        return await asyncio.to_thread(_guard(read))


def _guard(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc

    return run


def _resolve(
    loop: asyncio.AbstractEventLoop,
    items: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
) -> None:
    def settle() -> None:
        for fut, result, exc in items:
            if fut.cancelled():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the waiting loop is closed: nobody is left to acknowledge
