"""The embedded SQLite ledger: one file, WAL, full durability, group commit.

Appends go through one writer thread per process. It takes every record waiting in its queue,
writes them in one ``BEGIN IMMEDIATE`` transaction and commits once (one WAL fsync for the whole
batch), then wakes the waiting requests. The chain head is read inside that transaction, under
SQLite's write lock, so several processes appending to the same file still build one chain.

We use the standard library's ``sqlite3`` rather than aiosqlite: group commit needs one thread
that owns the write connection and runs a whole batch per hop, which aiosqlite's
one-statement-per-hop model would only slow down. The writing itself (``transaction.py``,
``schema.py``) is shared with PostgreSQL; ``_SQLiteTransaction`` runs it on the writer's
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, LedgerCorrupt, LedgerError, LedgerNotFound, LedgerUnavailable
from .base import Ledger, last_written
from .queries import Insert, RecordFilter, select_records
from .records import LedgerRecord, NewRecord
from .schema import migrate
from .transaction import Head, T, Transaction, Work, append_records, run_sync

log = logging.getLogger("consentkit.ledger")

_STOP = object()
_PAGE = 2000  # rows per read hop when streaming
_MAX_PARAMS = 999  # parameters per statement in old SQLite builds (32766 since 3.32)

# What the writer thread's queue carries: a record to append, or a call to run on the thread,
# with the loop and future of whoever waits for it.
_Item = tuple[NewRecord | Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` to a path."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        raise ConfigurationError(
            f"ledger URL {url!r}: give a file, as sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (an in-memory ledger would not be durable)"
        )
    return Path(rest[1:])


class _SQLiteTransaction(Transaction):
    """A ``BEGIN IMMEDIATE`` transaction on one connection. Every method does its work at once
    (``sqlite3`` does not wait in asyncio), which is what lets ``run_sync`` run shared code."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._conn = conn

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(sql, params)

    async def insert(self, statement: Insert, rows: list[tuple[Any, ...]]) -> None:
        # Multi-row statements, not executemany: every SQLite step lets go of the GIL, and
        # getting it back from a busy event loop can take a whole switch interval (5 ms), so a
        # batch of a hundred records should be a handful of steps, not hundreds.
        per_statement = _MAX_PARAMS // statement.width
        for i in range(0, len(rows), per_statement):
            chunk = rows[i : i + per_statement]
            self._conn.execute(statement.sql(len(chunk)), [v for row in chunk for v in row])

    async def stream(self, sql: str) -> AsyncIterator[Any]:
        for row in self._conn.execute(sql):
            yield row

    async def lock_head(self) -> Head:
        # BEGIN IMMEDIATE took the write lock on the whole file: the last record is the head.
        row = self._conn.execute(
            "SELECT seq, hash, recorded_at FROM consentkit_ledger ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])


def _transaction(conn: sqlite3.Connection, work: Work[T]) -> tuple[T, Transaction]:
    """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock) and commit.

    LedgerUnavailable when the lock cannot be had; any other error comes as it is, after the
    transaction was rolled back.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"the consent ledger is locked or unwritable: {exc}") from exc
    # Every statement, the schema's too, runs in this transaction (executescript() would COMMIT).
    tx = _SQLiteTransaction(conn)
    try:
        result = run_sync(work(tx))
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise _CommitFailed(result, tx, exc) from exc
    return result, tx


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class _CommitFailed(LedgerUnavailable):
    """COMMIT itself failed (full disk, I/O error): the work was done, and whether it is in the
    file must be looked up, not assumed (see ``SQLiteLedger._after_failed_commit``)."""

    def __init__(self, result: Any, tx: Transaction, exc: sqlite3.Error) -> None:
        super().__init__(f"the consent ledger could not be written: {exc}")
        self.result = result
        self.tx = tx


def _not_sqlite(exc: sqlite3.DatabaseError) -> bool:
    return "not a database" in str(exc) or "malformed" in str(exc)


def _check_writable(conn: sqlite3.Connection, path: Path) -> None:
    """LedgerUnavailable if SQLite opened the file read-only.

    When the file cannot be opened for writing, SQLite silently opens it read-only, and reading
    the schema and even ``BEGIN IMMEDIATE`` succeed; only a statement that writes fails. A write
    that changes nothing, rolled back, tells, so that such a connection is never kept.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM consentkit_meta WHERE 0")
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"the ledger {path} cannot be written now: {exc}") from exc


class SQLiteLedger(Ledger):
    """A consent ledger in one SQLite file."""

    def __init__(
        self, path: str | Path, *, create: bool = True, busy_timeout: float = 10.0, max_batch: int = 1000
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.create = create
        self.url = f"sqlite:///{self.path}"
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wconn: sqlite3.Connection | None = None
        self._checked = False

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
            if _not_sqlite(exc):
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
                # What a write frees is overwritten with zeros: an erased subject's salts and fields
                # must not linger in the file's free space.
                conn.execute("PRAGMA secure_delete=ON")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is not a ledger; create or migrate the schema (once per object)."""
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
            _transaction(conn, lambda tx: migrate(tx, "sqlite", str(self.path)))
        except sqlite3.DatabaseError as exc:
            if _not_sqlite(exc):
                raise LedgerCorrupt(f"{self.path} is not a consentkit ledger (not an SQLite file)") from exc
            raise LedgerUnavailable(f"cannot prepare the ledger {self.path}: {exc}") from exc
        self._checked = True

    def _writer_conn(self) -> sqlite3.Connection:
        if self._wconn is None:
            conn = self._connect()
            try:
                self._check_schema(conn)
                _check_writable(conn, self.path)
            except BaseException:
                conn.close()
                raise
            self._wconn = conn
        return self._wconn

    def _drop_writer(self) -> None:
        """Forget the writer's connection after a failure that can pass (read-only file, full
        disk, I/O error): the next attempt opens a new one, which sees the file as it is then.
        A connection SQLite opened read-only stays read-only for its whole life."""
        conn, self._wconn = self._wconn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def open(self) -> None:
        """Create or check the file now (else it happens on the first write)."""
        await self._enqueue(lambda: self._writer_conn() and None)

    async def close(self) -> None:
        """Let queued writes finish, then stop the writer thread."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(writer.join)

    # -- writing: one thread, one connection, a batch per transaction -------------------------

    async def append(self, entry: NewRecord) -> LedgerRecord:
        """Queue a record for the next group commit and wait until it is durable."""
        record: LedgerRecord = await self._enqueue(entry)
        return record

    async def _write(self, work: Work[T]) -> T:
        # Through the writer thread, so that it never races a group commit for the lock.
        result: T = await self._enqueue(lambda: self._write_now(work))
        return result

    async def _enqueue(self, item: NewRecord | Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ensure_writer()
        self._queue.put((item, loop, fut))
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

    def _process(self, batch: list[_Item]) -> None:
        """Run the batch's calls one by one, then commit its records together."""
        records: list[_Item] = []
        for item in batch:
            fn, loop, fut = item
            if isinstance(fn, NewRecord):
                records.append(item)
                continue
            try:
                _resolve(loop, [(fut, fn(), None)])
            except BaseException as exc:
                _resolve(loop, [(fut, None, exc)])
        if not records:
            return
        entries = [entry for entry, _, _ in records if isinstance(entry, NewRecord)]
        try:
            sealed = self._write_now(lambda tx: append_records(tx, entries, self._texts))
            outcomes: list[_Outcome] = [
                (fut, rec, None) for (_, _, fut), rec in zip(records, sealed, strict=True)
            ]
        except (LedgerCorrupt, LedgerNotFound, LedgerUnavailable) as exc:
            outcomes = [(fut, None, exc) for _, _, fut in records]
        except Exception as exc:
            log.exception("consent ledger write failed")
            err = LedgerUnavailable(f"the consent ledger could not be written: {exc}")
            outcomes = [(fut, None, err) for _, _, fut in records]
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (_, loop, _), outcome in zip(records, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, items in by_loop.items():
            _resolve(loop, items)

    def _write_now(self, work: Work[T]) -> T:
        """Run ``work`` in one transaction on the writer's connection (on the writer thread)."""
        conn = self._writer_conn()
        try:
            result, tx = _transaction(conn, work)
        except _CommitFailed as failed:
            self._drop_writer()
            result, tx = self._after_failed_commit(failed)
        except (sqlite3.Error, LedgerUnavailable) as exc:
            self._drop_writer()
            if isinstance(exc, LedgerUnavailable):
                raise
            raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc
        self._committed(tx)
        return result

    def _after_failed_commit(self, failed: _CommitFailed) -> tuple[Any, Transaction]:
        """The result of a transaction whose COMMIT raised, if its records are in the file anyway
        (a 503 must mean "not recorded"); else ``failed`` itself.

        In WAL mode a failed COMMIT leaves nothing that readers see, so this finds nothing in
        practice; it is the same rule as PostgreSQL's, where a lost COMMIT may have committed.
        """
        last = last_written(failed.result)
        if last is None:
            raise failed
        try:
            conn = self._connect()
            try:
                found = conn.execute(
                    "SELECT count(*) FROM consentkit_ledger WHERE seq = ? AND hash = ?", (last.seq, last.hash)
                ).fetchone()[0]
            finally:
                conn.close()
        except (sqlite3.Error, LedgerError) as exc:
            raise failed from exc
        if not found:
            raise failed
        log.warning("the ledger's COMMIT reported an error, but its records are stored: %s", failed)
        return failed.result, failed.tx

    async def _after_erase(self) -> None:
        """Copy the write-ahead log into the file and empty it: until then the WAL still holds
        the pages as they were before the erasure, salts and subject id included."""
        busy = await self._enqueue(self._truncate_wal)
        if busy:
            log.warning(
                "the ledger's write-ahead log could not be emptied after an erasure while readers "
                "were active; it will be on the next checkpoint (run consentkit erase again to force it)"
            )

    def _truncate_wal(self) -> bool:
        """Whether the log could not be emptied (the erasure itself is committed either way)."""
        try:
            row = self._writer_conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except (sqlite3.Error, LedgerUnavailable):
            return True
        return bool(row and row[0])

    # -- reading ------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = self._connect()
        self._check_schema(conn)
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def _pages(self, flt: RecordFilter, *, with_salts: bool) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Keyset pages (``seq > last``) of a connection of their own.

        The next page is read in a thread while the caller works on this one (SQLite releases
        the GIL while it steps), so reading and formatting overlap on two cores.
        """
        conn = await asyncio.to_thread(self._reader)
        try:
            sql, params = select_records(flt, with_salts=with_salts, keyset=True)
            sql += f" ORDER BY l.seq LIMIT {_PAGE}"

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
            try:
                conn = self._reader()
                try:
                    return conn.execute(sql, params).fetchall()
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc

        return await asyncio.to_thread(read)


def _resolve(loop: asyncio.AbstractEventLoop, items: list[_Outcome]) -> None:
    """Settle futures of another thread's event loop, from the writer thread."""

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
