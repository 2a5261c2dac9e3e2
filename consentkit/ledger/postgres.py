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
answer 503 until the database is back, and the ledger reconnects by itself, backing off from
0.1 s to 5 s between attempts (a pool whose schema preparation fails is closed at once).

A 503 means "not recorded". An error after COMMIT answered does not fail the batch; a COMMIT
whose answer was lost is looked up (``_learn_outcome``) before anybody is answered, and only a
batch known not to be committed gets LedgerUnavailable (LedgerOutcomeUnknown if the database
does not come back within ``outcome_timeout``).
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

from ..errors import (
    ConfigurationError,
    LedgerCorrupt,
    LedgerError,
    LedgerNotFound,
    LedgerOutcomeUnknown,
    LedgerUnavailable,
)
from .base import Ledger, last_written
from .queries import Insert, RecordFilter, dollars, select_records
from .records import GENESIS_HASH, LedgerRecord, NewRecord
from .schema import migrate
from .transaction import Head, T, Transaction, Work, append_records

log = logging.getLogger("consentkit.ledger")

_SCHEMA_LOCK = 0x636F6E73656E74  # "consent": serializes schema creation across processes
# After a failed connection or schema preparation, answer "unavailable" at once for a while
# before trying again: 0.1 s, doubled on each failure up to 5 s, so that a database that is down
# (or read-only) is not hammered by one attempt per request.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
# How long a batch whose COMMIT's answer was lost waits for the database to tell whether it was
# committed (a fail-over takes seconds; a proxy gives up on a request after about a minute).
_OUTCOME_TIMEOUT = 30.0
_PAGE = 5000
# What asyncpg raises when the database cannot be used: the connection, or the statement.
_DB_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
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


async def _rollback(transaction: Any) -> None:
    """Roll back if the connection still can; a dead one's transaction is already gone."""
    with contextlib.suppress(*_DB_ERRORS, LedgerError):
        await transaction.rollback()


def _lost(exc: BaseException) -> bool:
    """An error answer that means the connection is finished (terminated backend, shutdown)."""
    return isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError)


class PostgresLedger(Ledger):
    """A consent ledger in PostgreSQL. ``?schema=NAME`` in the URL keeps it in its own schema."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        max_batch: int = 1000,
        pool_size: int = 4,
        outcome_timeout: float = _OUTCOME_TIMEOUT,
    ) -> None:
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
        self._outcome_timeout = outcome_timeout
        self._connecting: asyncio.Lock | None = None
        self._retry_at = 0.0  # no attempt to connect before this time (time.monotonic)
        self._backoff = 0.0
        self._cause: str | None = None  # why the last attempt failed, logged once per cause
        self.connect_attempts = 0  # pools made, whether prepared or not (for the fault tests)

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
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise LedgerUnavailable(
                    f"the consent ledger database is unavailable ({self._cause}); "
                    f"next attempt in {wait:.1f} s"
                )
            try:
                pool = await self._new_pool()
            except (LedgerCorrupt, LedgerNotFound):
                raise
            except _DB_ERRORS as exc:
                self._failed(exc)
                raise LedgerUnavailable(f"cannot reach the consent ledger database: {exc}") from exc
            self._recovered()
            self._pool = pool
            return pool

    async def _new_pool(self) -> asyncpg.Pool:
        """A pool with the schema ready; a pool whose preparation fails is closed at once (else
        each retry against a read-only database would leave one more connection open)."""
        self.connect_attempts += 1
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=5,
            command_timeout=30,
            server_settings={"search_path": self.schema} if self.schema else None,
            init=None,
        )
        try:
            await self._prepare_schema(pool)
        except BaseException:
            pool.terminate()
            raise
        return pool

    def _failed(self, exc: BaseException) -> None:
        """Back off before the next attempt; say why, once per cause (not once per request)."""
        self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
        self._retry_at = time.monotonic() + self._backoff
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if cause != self._cause:
            self._cause = cause
            log.warning(
                "the consent ledger database at %s cannot be used (decisions answer 503; retrying "
                "every %.1f-%.0f s): %s",
                self._safe_url(),
                _BACKOFF_FIRST,
                _BACKOFF_MAX,
                cause,
            )

    def _recovered(self) -> None:
        if self._cause is not None:
            log.warning("the consent ledger database at %s is usable again", self._safe_url())
        self._cause, self._backoff, self._retry_at = None, 0.0, 0.0

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
                # LedgerUnavailable: certainly not committed (a 503); LedgerOutcomeUnknown: maybe.
                error = (
                    exc
                    if isinstance(exc, LedgerError)
                    else LedgerUnavailable(f"the consent ledger could not be written: {exc}")
                )
                if not isinstance(exc, LedgerError | asyncpg.PostgresError | OSError):
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
        """Run ``work`` in one transaction and commit it.

        Before COMMIT is sent nothing can be committed: a failure is LedgerUnavailable. Once
        COMMIT has answered, the work is durable: a failure after that (returning the connection
        to the pool, whose reset meets a backend that just died) must not fail it. A COMMIT
        without an answer is looked up (``_learn_outcome``) before anybody is answered.
        """
        pool = await self._get_pool()
        try:
            conn = await pool.acquire()
        except _DB_ERRORS as exc:
            await self._drop_pool()
            raise LedgerUnavailable(f"the consent ledger database went away: {exc}") from exc
        try:
            result, tx, committed = await self._transact(conn, work)
        finally:
            await self._release(pool, conn)
        if not committed:
            await self._drop_pool()
            if not await self._learn_outcome(result):
                raise LedgerUnavailable("the consent ledger database went away during COMMIT; not committed")
        self._committed(tx)
        return result

    async def _transact(self, conn: Any, work: Work[T]) -> tuple[T, Transaction, bool]:
        """``(result, tx, True)`` once COMMIT has answered; ``(result, tx, False)`` when COMMIT
        was sent but its answer never came (the outcome is unknown)."""
        transaction = conn.transaction()
        tx = _PostgresTransaction(conn)
        try:
            await transaction.start()
            result = await work(tx)
        except _DB_ERRORS as exc:
            await _rollback(transaction)
            if not isinstance(exc, asyncpg.PostgresError) or _lost(exc):
                await self._drop_pool()
                raise LedgerUnavailable(f"the consent ledger database went away: {exc}") from exc
            raise LedgerUnavailable(f"the consent ledger could not be written: {exc}") from exc
        except BaseException:
            await _rollback(transaction)
            raise
        try:
            await transaction.commit()
        except _DB_ERRORS as exc:
            # Even an error answer may come from a backend that was terminated after its commit
            # record was flushed (FATAL 57P01): every failed COMMIT is looked up.
            log.warning("the consent ledger's COMMIT got no clear answer (%s); looking it up", exc)
            return result, tx, False
        return result, tx, True

    async def _release(self, pool: asyncpg.Pool, conn: Any) -> None:
        """Give the connection back. If its reset fails the connection is dead, and asyncpg has
        already closed it: that says nothing about the work done on it, so it is not an error."""
        try:
            await pool.release(conn, timeout=5)
        except _DB_ERRORS as exc:
            log.debug("a ledger connection could not be reset, dropped: %s", exc)

    async def _learn_outcome(self, result: Any) -> bool:
        """Whether the write that returned ``result`` was committed, asking the database again
        (with the back-off of ``_get_pool``) until it answers or ``outcome_timeout`` passes."""
        last = last_written(result)
        if last is None:
            raise LedgerOutcomeUnknown("the consent ledger database went away during COMMIT")
        deadline = time.monotonic() + self._outcome_timeout
        while True:
            try:
                return await self._is_stored(last)
            except (LedgerUnavailable, *_DB_ERRORS) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LedgerOutcomeUnknown(
                        f"the consent ledger database went away during COMMIT and has not come back "
                        f"to tell whether records {last.seq} and before were committed: {exc}"
                    ) from exc
                await asyncio.sleep(min(max(self._retry_at - time.monotonic(), 0.05), left))

    async def _is_stored(self, last: LedgerRecord) -> bool:
        pool = await self._get_pool()
        conn = await pool.acquire()
        try:
            async with conn.transaction():
                # The lost transaction held the head row until it ended: waiting for that row
                # means it has ended (committed or not) before we look, never while it still runs.
                await conn.execute("SET LOCAL lock_timeout = '2s'")
                await conn.execute("SELECT 1 FROM consentkit_head WHERE id = 1 FOR SHARE")
                found = await conn.fetchval(
                    "SELECT count(*) FROM consentkit_ledger WHERE seq = $1 AND hash = $2", last.seq, last.hash
                )
        finally:
            await self._release(pool, conn)
        log.warning("a lost COMMIT was looked up: %s", "committed" if found else "not committed")
        return bool(found)

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
