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
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigurationError, LedgerCorrupt, LedgerNotFound, LedgerUnavailable
from .base import Ledger
from .queries import Insert, RecordFilter, dollars, select_records
from .records import GENESIS_HASH, LedgerRecord, NewRecord
from .schema import migrate
from .transaction import Head, T, Transaction, Work, append_records

log = logging.getLogger("consentkit.ledger")

_SCHEMA_LOCK = 0x636F6E73656E74  # "consent": serializes schema creation across processes
_RETRY_AFTER = 1.0  # seconds to answer "unavailable" at once after a failed connection
_PAGE = 5000
# What asyncpg raises when the database cannot be used: the connection, or the statement.
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_Queue = asyncio.Queue[tuple[NewRecord, asyncio.Future[LedgerRecord]]]


class _PostgresTransaction(Transaction):
    """A transaction on one pooled connection; the shared SQL's ``?`` become ``$n``."""

    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = conn

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        rows: list[Any] = await self._conn.fetch(dollars(sql), *params)
        return rows

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        await self._conn.execute(dollars(sql), *params)

    async def insert(self, statement: Insert, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self._conn.executemany(dollars(statement.sql()), rows)  # pipelined

    async def stream(self, sql: str) -> AsyncIterator[Any]:
        async for row in self._conn.cursor(dollars(sql), prefetch=_PAGE):
            yield row

    async def lock_head(self) -> Head:
        row = await self._conn.fetchrow(
            "SELECT seq, hash, recorded_at FROM consentkit_head WHERE id = 1 FOR UPDATE"
        )
        return (row[0], row[1], row[2]) if row and row[0] else None

    async def move_head(self, last: LedgerRecord) -> None:
        await self._conn.execute(
            "INSERT INTO consentkit_head VALUES (1, $1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, recorded_at = $3",
            last.seq,
            last.hash,
            last.recorded_at,
        )


async def _ensure_head_row(conn: Any) -> None:
    """Make the head row from the chain's real end if it is missing (under the schema lock).

    It must exist before the first append: ``SELECT … FOR UPDATE`` locks nothing when there is
    no row, and writers racing for the first record would both append seq 1.
    """
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


class PostgresLedger(Ledger):
    """A consent ledger in PostgreSQL. ``?schema=NAME`` in the URL keeps it in its own schema."""

    def __init__(self, url: str, *, create: bool = True, max_batch: int = 1000, pool_size: int = 4) -> None:
        super().__init__()
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
        self._queue: _Queue | None = None
        self._writer: asyncio.Task[None] | None = None
        self._failed_at = 0.0
        self._connecting: asyncio.Lock | None = None

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
            await migrate(_PostgresTransaction(conn), "postgres", self._safe_url())
            await _ensure_head_row(conn)

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"postgresql://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}{schema}"

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

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

    # -- writing: one task per process, a batch per transaction ------------------------------

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

    async def _run_writer(self, queue: _Queue) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            append = functools.partial(append_records, entries=[e for e, _ in batch], texts=self._texts)
            try:
                sealed = await self._write(append)
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

    async def _write(self, work: Work[T]) -> T:
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                tx = _PostgresTransaction(conn)
                result = await work(tx)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            await self._drop_pool()
            raise LedgerUnavailable(f"the consent ledger database went away: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc
        self._committed(tx)
        return result

    # -- reading ------------------------------------------------------------------------------

    async def _pages(self, flt: RecordFilter, *, with_salts: bool) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Pages of a server-side cursor, in one read-only snapshot."""
        pool = await self._get_pool()
        sql, params = select_records(flt, with_salts=with_salts)
        try:
            async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
                cursor = await conn.cursor(dollars(sql + " ORDER BY l.seq"), *params)
                while True:
                    rows = await cursor.fetch(_PAGE)
                    if rows:
                        yield rows
                    if len(rows) < _PAGE:
                        break
        except _DB_ERRORS as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc

    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        pool = await self._get_pool()
        try:
            rows: list[Any] = await pool.fetch(dollars(sql), *params)
        except _DB_ERRORS as exc:
            raise LedgerUnavailable(f"the consent ledger could not be read: {exc}") from exc
        return rows
