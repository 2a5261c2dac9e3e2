"""The PostgreSQL ledger, for sites that run many app servers (``consentkit[postgres]``).

asyncpg rather than psycopg 3: it is asyncio-native, speaks the binary protocol and pipelines
``executemany``, which is what a group commit of many small rows needs.

One chain, many writers. Every process runs one writer task that takes all the decisions
waiting in its queue and appends them in one transaction. Inside that transaction it locks the
single row of ``consentkit_head`` (``SELECT … FOR UPDATE``), which holds the chain's last
``seq``, ``hash`` and ``recorded_at``; appends its batch after it; and moves the head. Writers
on other processes or machines wait on that row lock, so batches are serialized and the chain
stays one valid chain, while each commit (one WAL flush with ``synchronous_commit=on``) still
carries a whole batch.

Connections are made lazily: a site whose database is down starts and serves pages; decisions
answer 503 until the database is back, and the ledger reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigurationError, LedgerCorrupt, LedgerNotFound, LedgerUnavailable, SubjectNotFound
from .base import COLUMNS_SQL, SCHEMA_VERSION, Ledger, RecordFilter, where_clause
from .records import (
    GENESIS_HASH,
    LedgerRecord,
    NewRecord,
    add_daily,
    add_daily_row,
    erasure_record,
    seal_batch,
    utc_timestamp,
)

log = logging.getLogger("consentkit.ledger")

# Forward migrations: version -> statements. Never edit a released one; add the next.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE consentkit_ledger (
            seq BIGINT PRIMARY KEY,
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
            gpc BOOLEAN NOT NULL,
            evidence TEXT,
            pii_digest TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX consentkit_ledger_subject ON consentkit_ledger (subject_id)",
        "CREATE INDEX consentkit_ledger_recorded_at ON consentkit_ledger (recorded_at)",
        "CREATE INDEX consentkit_ledger_hash ON consentkit_ledger (hash text_pattern_ops)",
        "CREATE TABLE consentkit_pii_salts (seq BIGINT PRIMARY KEY, salt BYTEA NOT NULL)",
        """CREATE TABLE consentkit_policies (
            digest TEXT PRIMARY KEY,
            revision INTEGER NOT NULL,
            version TEXT NOT NULL,
            policy TEXT NOT NULL,
            first_seen TEXT NOT NULL
        )""",
        """CREATE TABLE consentkit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )""",
    ],
}
MIGRATIONS[2] = [
    """CREATE TABLE consentkit_daily (
        day TEXT NOT NULL,
        metric TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (day, metric)
    )""",
    """CREATE TABLE consentkit_audit_log (
        id BIGSERIAL PRIMARY KEY,
        at TEXT NOT NULL,
        "user" TEXT,
        ip_prefix TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL
    )""",
]
assert max(MIGRATIONS) == SCHEMA_VERSION
_UPSERT_DAILY = (
    "INSERT INTO consentkit_daily (day, metric, count) VALUES ($1, $2, $3) "
    "ON CONFLICT (day, metric) DO UPDATE SET count = consentkit_daily.count + excluded.count"
)

_INSERT = (
    "INSERT INTO consentkit_ledger (seq, event_id, recorded_at, subject_id, action, purposes, "
    "method, policy_revision, policy_version, policy_digest, locale, ip_prefix, user_agent, gpc, "
    "evidence, pii_digest, prev_hash, hash) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"
)
_SCHEMA_LOCK = 0x636F6E73656E74  # "consent": serializes schema creation across processes
_RETRY_AFTER = 1.0
_PAGE = 5000
T = TypeVar("T")  # seconds to answer "unavailable" at once after a failed connection


class PostgresLedger(Ledger):
    """A consent ledger in PostgreSQL. ``?schema=NAME`` in the URL keeps it in its own schema."""

    def __init__(self, url: str, *, create: bool = True, max_batch: int = 1000, pool_size: int = 4) -> None:
        self.create = create
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", None)
        if self.schema is not None and not self.schema.replace("_", "").isalnum():
            raise ConfigurationError(f"ledger URL: schema {self.schema!r} must be letters, digits and _")
        self.url = url
        self._dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
        self._max_batch = max_batch
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[NewRecord, asyncio.Future[LedgerRecord]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._known_policies: set[str] = set()
        self._failed_at = 0.0
        self._connecting: asyncio.Lock | None = None
        self.commits = 0

    # -- connections ----------------------------------------------------------------------

    async def _get_pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (tests, a restarted server): connections are bound to their loop.
            self._pool, self._queue, self._writer, self._loop = None, None, None, loop
            self._connecting = asyncio.Lock()
        if self._pool is not None:
            return self._pool
        assert self._connecting is not None
        async with self._connecting:
            if self._pool is not None:
                return self._pool
            if time.monotonic() - self._failed_at < _RETRY_AFTER:
                raise LedgerUnavailable("the consent ledger database is unreachable (retrying shortly)")
            try:
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=5,
                    command_timeout=30,
                    server_settings={"search_path": self.schema} if self.schema else None,
                    init=None,
                )
                await self._prepare_schema(pool)
            except (LedgerCorrupt, LedgerNotFound):
                raise
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                self._failed_at = time.monotonic()
                raise LedgerUnavailable(f"cannot reach the consent ledger database: {exc}") from exc
            self._pool = pool
            return pool

    async def _prepare_schema(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            if not self.create:
                exists = await conn.fetchval("SELECT to_regclass('consentkit_meta') IS NOT NULL")
                if not exists:
                    raise LedgerNotFound(f"there is no consentkit ledger at {self._safe_url()}")
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS consentkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = await conn.fetchrow("SELECT value FROM consentkit_meta WHERE key = 'schema_version'")
            current = int(row["value"]) if row else 0
            if current == 0:
                others = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_name LIKE 'consentkit_%' "
                    "AND table_name <> 'consentkit_meta'"
                )
                if others:
                    raise LedgerCorrupt(
                        f"{self._safe_url()}: consentkit tables exist without a schema version; "
                        "this is not a ledger consentkit made"
                    )
            if current > SCHEMA_VERSION:
                raise LedgerCorrupt(
                    f"{self._safe_url()} has ledger schema version {current}, newer than this "
                    f"consentkit understands ({SCHEMA_VERSION}); upgrade consentkit"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    await conn.execute(statement)
                if version == 2 and current >= 1:
                    # Build the per-day figures from the records already there.
                    sql = f"SELECT {COLUMNS_SQL}, NULL FROM consentkit_ledger l"
                    counts: dict[tuple[str, str], int] = {}
                    async for row in conn.cursor(sql, prefetch=5000):  # streamed: constant memory
                        add_daily_row(counts, row)
                    await conn.executemany(_UPSERT_DAILY, [(d, m, n) for (d, m), n in counts.items()])
                log.info("consent ledger schema migrated to version %d", version)
            if current == 0:
                await conn.execute(
                    "INSERT INTO consentkit_meta VALUES ('schema_version', $1), ('created_at', $2)",
                    str(SCHEMA_VERSION),
                    utc_timestamp(),
                )
            elif current < SCHEMA_VERSION:
                await conn.execute(
                    "UPDATE consentkit_meta SET value = $1 WHERE key = 'schema_version'", str(SCHEMA_VERSION)
                )
            # The head row must exist before the first append: `SELECT … FOR UPDATE` locks
            # nothing when there is no row, and writers racing for the first record would both
            # append seq 1. It is made here, under the schema lock, from the chain's real end.
            await conn.execute(
                "INSERT INTO consentkit_head (id, seq, hash, recorded_at) "
                "SELECT 1, coalesce(max(seq), 0), $1, '' FROM consentkit_ledger "
                "ON CONFLICT (id) DO NOTHING",
                GENESIS_HASH,
            )
            await conn.execute(
                "UPDATE consentkit_head h SET hash = l.hash, recorded_at = l.recorded_at "
                "FROM consentkit_ledger l WHERE h.id = 1 AND l.seq = h.seq AND h.hash = $1 AND h.seq > 0",
                GENESIS_HASH,
            )

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"postgresql://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}{schema}"

    async def open(self) -> None:
        """Connect and create or migrate the schema now."""
        await self._get_pool()

    async def close(self) -> None:
        """Finish queued writes, stop the writer and close the connections."""
        if self._loop is not asyncio.get_running_loop():
            return
        if self._writer is not None and self._queue is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- writing ------------------------------------------------------------------------------

    async def append(self, entry: NewRecord) -> LedgerRecord:
        """Queue a record for the next group commit and wait until it is durable."""
        await self._get_pool()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run_writer(self._queue))
        fut: asyncio.Future[LedgerRecord] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((entry, fut))
        return await fut

    async def _run_writer(self, queue: asyncio.Queue[tuple[NewRecord, asyncio.Future[LedgerRecord]]]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                sealed = await self._commit([entry for entry, _ in batch])
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, LedgerUnavailable)
                    else LedgerUnavailable(f"the consent ledger could not be written: {exc}")
                )
                if not isinstance(exc, LedgerUnavailable | asyncpg.PostgresError | OSError):
                    log.exception("consent ledger write failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
            else:
                for (_, fut), rec in zip(batch, sealed, strict=True):
                    if not fut.done():
                        fut.set_result(rec)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _transaction(self, work: Callable[[Any, tuple[int, str, str] | None], Awaitable[T]]) -> T:
        """Run ``work(conn, head)`` holding the chain's head row lock, then move the head."""
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT seq, hash, recorded_at FROM consentkit_head WHERE id = 1 FOR UPDATE"
                )
                head = (row[0], row[1], row[2]) if row and row[0] else None
                result = await work(conn, head)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            await self._drop_pool()
            raise LedgerUnavailable(f"the consent ledger database went away: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc
        self.commits += 1
        return result

    async def _append_in(
        self, conn: Any, head: tuple[int, str, str] | None, entries: list[NewRecord]
    ) -> list[LedgerRecord]:
        sealed = seal_batch(entries, head)
        new_policies = {
            e.policy_digest: e
            for e in entries
            if e.policy_json and e.policy_digest not in self._known_policies
        }
        for e in new_policies.values():
            await conn.execute(
                "INSERT INTO consentkit_policies VALUES ($1,$2,$3,$4,$5) ON CONFLICT (digest) DO NOTHING",
                e.policy_digest,
                e.policy_revision,
                e.policy_version,
                e.policy_json,
                sealed[0].recorded_at,
            )
        await conn.executemany(_INSERT, [r.row() for r in sealed])
        await conn.executemany(
            "INSERT INTO consentkit_pii_salts VALUES ($1, $2)", [(r.seq, r.pii_salt) for r in sealed]
        )
        counts: dict[tuple[str, str], int] = {}
        for entry, rec in zip(entries, sealed, strict=True):
            add_daily(counts, rec.recorded_at, entry.action, entry.method, entry.gpc, entry.purposes)
        await conn.executemany(_UPSERT_DAILY, [(d, m, n) for (d, m), n in counts.items()])
        last = sealed[-1]
        await conn.execute(
            "INSERT INTO consentkit_head VALUES (1, $1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, recorded_at = $3",
            last.seq,
            last.hash,
            last.recorded_at,
        )
        return sealed

    async def _commit(self, entries: list[NewRecord]) -> list[LedgerRecord]:
        sealed = await self._transaction(lambda conn, head: self._append_in(conn, head, entries))
        # Only once committed: after a rollback the policy text must be inserted again.
        self._known_policies.update(e.policy_digest for e in entries if e.policy_json)
        return sealed

    async def erase(self, subject_id: str) -> LedgerRecord:
        """Crypto-shred a subject's personal fields and record the erasure (see ``Ledger.erase``)."""

        async def work(conn: Any, head: tuple[int, str, str] | None) -> LedgerRecord:
            rows = await conn.fetch(
                f"SELECT {COLUMNS_SQL}, NULL::bytea FROM consentkit_ledger l "
                "WHERE l.subject_id = $1 ORDER BY l.seq",
                subject_id,
            )
            if not rows:
                raise SubjectNotFound(f"no ledger record belongs to subject {subject_id!r}")
            await conn.execute(
                "DELETE FROM consentkit_pii_salts WHERE seq = ANY($1::bigint[])", [r[0] for r in rows]
            )
            await conn.execute(
                "UPDATE consentkit_ledger SET subject_id = NULL, ip_prefix = NULL, user_agent = NULL, "
                "evidence = NULL WHERE subject_id = $1",
                subject_id,
            )
            erase = erasure_record(LedgerRecord.from_row(rows[-1]), len(rows))
            return (await self._append_in(conn, head, [erase]))[0]

        return await self._transaction(work)

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    # -- reading ------------------------------------------------------------------------------

    async def row_pages(
        self, flt: RecordFilter | None = None, *, with_salts: bool = False
    ) -> AsyncIterator[list[Any]]:
        """Stream raw rows in ``seq`` order through a server-side cursor (constant memory)."""
        flt = flt or RecordFilter()
        pool = await self._get_pool()
        where, params = where_clause(flt, lambda n: f"${n}")
        where = " WHERE TRUE" + where if where else ""
        salt_col = ", s.salt" if with_salts else ", NULL::bytea"
        join = " LEFT JOIN consentkit_pii_salts s ON s.seq = l.seq" if with_salts else ""
        sql = f"SELECT {COLUMNS_SQL}{salt_col} FROM consentkit_ledger l{join}{where} ORDER BY l.seq"
        try:
            async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
                cursor = await conn.cursor(sql, *params)
                while True:
                    rows = await cursor.fetch(_PAGE)
                    if rows:
                        yield rows
                    if len(rows) < _PAGE:
                        break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc

    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        pool = await self._get_pool()
        try:
            rows: list[Any] = await pool.fetch(_dollars(sql), *params)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc
        return rows

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        pool = await self._get_pool()
        try:
            await pool.execute(_dollars(sql), *params)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc

    async def history(self, subject_id: str) -> list[LedgerRecord]:
        """One subject's records, oldest first."""
        return [r async for r in self.records(RecordFilter(subject_id=subject_id))]

    async def policy_text(self, digest: str) -> str | None:
        """The stored canonical policy for a digest."""
        pool = await self._get_pool()
        try:
            value = await pool.fetchval("SELECT policy FROM consentkit_policies WHERE digest = $1", digest)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc
        return None if value is None else str(value)


def _dollars(sql: str) -> str:
    """``?`` placeholders (the backends' shared spelling) to PostgreSQL's ``$1, $2…``."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, start=1))
