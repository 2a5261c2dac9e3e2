"""PostgreSQL faults against the real server: a 503 means "not recorded", always.

- A relay on 127.0.0.1 cuts the connection at exact points around COMMIT: after its answer
  (the pool's reset then fails), instead of its answer (committed, but we never heard), or
  instead of the COMMIT itself (never committed). The ledger must answer each by what is true.
- Backends terminated (``pg_terminate_backend``) at random under concurrent decisions: every
  acknowledged decision is in the ledger exactly once, and no failed one is.
- A read-only database (as after a fail-over to a standby): decisions are refused, and the
  connections stay bounded (``pg_stat_activity``) while the ledger backs off.

Each test runs a few seconds at most, against fresh schemas; the server stays up throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, make_app
from unit_helpers import new_record

from consentkit import LedgerUnavailable
from consentkit.ledger import open_ledger
from consentkit.ledger.postgres import PostgresLedger

pytestmark = pytest.mark.postgres

# What asyncpg sends to commit, and the server's answer to it (CommandComplete "COMMIT").
COMMIT_QUERY = b"COMMIT;"
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class CommitRelay:
    """Forwards 127.0.0.1:<port> to PostgreSQL, and cuts one connection at one point of a COMMIT
    when armed: ``after_reply`` (the answer goes through, then the client's next message cuts),
    ``instead_of_reply`` (the server committed; the answer is dropped) or ``instead_of_commit``
    (the COMMIT never reaches the server)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server: asyncio.Server | None = None
        self.port = 0
        self.mode: str | None = None
        self.fired: str | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.tasks):
            task.cancel()

    def arm(self, mode: str) -> None:
        self.mode, self.fired = mode, None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        # Per connection: set when its COMMIT's answer went through (``after_reply``).
        state = {"replied": False}

        def cut() -> None:
            writer.transport.abort()
            up_writer.transport.abort()

        async def upstream() -> None:  # client -> server
            while data := await reader.read(65536):
                if self.mode == "after_reply" and state["replied"]:
                    self.fired, self.mode = "after_reply", None
                    return cut()
                if self.mode == "instead_of_commit" and COMMIT_QUERY in data:
                    self.fired, self.mode = "instead_of_commit", None
                    return cut()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()  # the client left: so does the server

        async def downstream() -> None:  # server -> client
            while data := await up_reader.read(65536):
                if self.mode == "instead_of_reply" and COMMIT_DONE in data:
                    self.fired, self.mode = "instead_of_reply", None
                    return cut()
                if self.mode == "after_reply" and COMMIT_DONE in data:
                    state["replied"] = True
                writer.write(data)
                await writer.drain()
            writer.close()

        for pipe in (upstream(), downstream()):
            task = asyncio.create_task(_quietly(pipe))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


async def _quietly(pipe: object) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError, ConnectionError):
        await pipe  # type: ignore[misc]


@pytest.fixture
async def relay(pg_url: str) -> AsyncIterator[tuple[CommitRelay, str]]:
    parts = urlsplit(pg_url)
    r = CommitRelay((parts.hostname or "127.0.0.1", parts.port or 5432))
    await r.start()
    yield r, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{r.port}"))
    await r.stop()


async def receipts_in(ledger_url: str) -> Counter[str]:
    ledger = open_ledger(ledger_url, create=False)
    try:
        return Counter([r.receipt async for r in ledger.records()])
    finally:
        await ledger.close()


# -- one COMMIT, cut at each point ------------------------------------------------------------

# The mode, and whether the record is in the ledger afterwards (so must be acknowledged).
CUTS = [("after_reply", True), ("instead_of_reply", True), ("instead_of_commit", False)]


@pytest.mark.parametrize(("mode", "stored"), CUTS)
async def test_a_cut_commit_is_answered_by_what_is_in_the_ledger(relay, pg_url, policy, mode, stored):
    r, url = relay
    ledger = PostgresLedger(url, outcome_timeout=10)
    try:
        await ledger.append(new_record(policy, "before"))
        r.arm(mode)
        entry = new_record(policy, "cut")
        try:
            record = await ledger.append(entry)
        except LedgerUnavailable:
            record = None
        assert r.fired == mode, "the relay did not cut where it was meant to"
        assert (record is not None) == stored, f"{mode}: answered {record!r}"
        await ledger.append(new_record(policy, "after"))  # and it goes on by itself
    finally:
        await ledger.close()
    check = open_ledger(pg_url, create=False)
    try:
        events = [rec.event_id async for rec in check.records()]
        assert (await check.verify()).ok
    finally:
        await check.close()
    assert events.count(entry.event_id) == (1 if stored else 0)
    assert len(events) == (3 if stored else 2)


@pytest.mark.parametrize(("mode", "stored"), CUTS)
async def test_over_http_a_503_is_never_a_recorded_decision(relay, pg_url, make_kit, mode, stored):
    r, url = relay
    kit = make_kit(ledger=url)
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        first = await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
        assert first.status_code == 200
        r.arm(mode)
        cut = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        assert r.fired == mode
    await kit.aclose()
    receipts = await receipts_in(pg_url)
    if stored:
        assert cut.status_code == 200, cut.text
        assert "consentkit=" in cut.headers["set-cookie"]
        assert receipts[cut.json()["receipt"]] == 1
    else:
        assert cut.status_code == 503 and "set-cookie" not in cut.headers
    assert sum(receipts.values()) == (2 if stored else 1)


# -- backends terminated at random under concurrent decisions ---------------------------------


async def terminate_loop(admin_dsn: str, app_name: str, stop: asyncio.Event, rng: random.Random) -> int:
    """Terminate the ledger's backends every 20-120 ms until ``stop``; how many were."""
    conn = await asyncpg.connect(admin_dsn)
    killed = 0
    try:
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.02, 0.12))
            killed += await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                app_name,
            )
    finally:
        await conn.close()
    return killed


@pytest.fixture
def named_url(pg_url: str) -> tuple[str, str]:
    """The test's ledger URL with an application_name of its own, to find its backends."""
    name = f"ck_fault_{uuid.uuid4().hex[:8]}"
    return f"{pg_url}&application_name={name}", name


async def test_terminated_backends_never_lose_nor_invent_a_decision(named_url, pg_url, pg_dsn, policy):
    url, name = named_url
    ledger = PostgresLedger(url, outcome_timeout=10)
    await ledger.open()
    acked: list[str] = []
    failed: list[str] = []
    stop = asyncio.Event()

    async def visitor(i: int) -> None:
        while not stop.is_set():
            entry = new_record(policy, f"visitor-{i}")
            try:
                await ledger.append(entry)
            except LedgerUnavailable:
                failed.append(entry.event_id)
                await asyncio.sleep(0.01)
            else:
                acked.append(entry.event_id)

    killer = asyncio.create_task(terminate_loop(pg_dsn, name, stop, random.Random(7)))
    visitors = [asyncio.create_task(visitor(i)) for i in range(16)]
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*visitors)
    killed = await killer
    await ledger.close()

    check = open_ledger(pg_url, create=False)
    try:
        stored = Counter([r.event_id async for r in check.records()])
        assert (await check.verify()).ok
    finally:
        await check.close()
    print(f"{len(acked)} acknowledged, {len(failed)} refused, {killed} backends terminated")
    assert killed >= 5 and len(acked) >= 100, "too few faults or decisions to prove anything"
    assert all(stored[e] == 1 for e in acked), "an acknowledged decision is missing or doubled"
    assert not [e for e in failed if e in stored], "a refused decision is in the ledger"
    assert sum(stored.values()) == len(acked)


async def test_over_http_terminated_backends_answer_the_truth(named_url, pg_url, pg_dsn, make_kit):
    url, name = named_url
    kit = make_kit(ledger=url, decision_rate_limit=None)
    app = make_app(kit)
    statuses: Counter[int] = Counter()
    receipts: list[str] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:

        async def visitor() -> None:
            while not stop.is_set():
                # No cookie kept: each decision is a new visitor's.
                client.cookies.clear()
                resp = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
                statuses[resp.status_code] += 1
                if resp.status_code == 200:
                    receipts.append(resp.json()["receipt"])
                else:
                    assert "set-cookie" not in resp.headers

        assert (
            await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
        ).status_code == 200
        killer = asyncio.create_task(terminate_loop(pg_dsn, name, stop, random.Random(11)))
        visitors = [asyncio.create_task(visitor()) for _ in range(8)]
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*visitors)
        killed = await killer
    await kit.aclose()
    stored = await receipts_in(pg_url)
    print(f"statuses {dict(statuses)}, {killed} backends terminated")
    assert set(statuses) <= {200, 503}, statuses
    assert all(stored[r] == 1 for r in receipts)
    assert sum(stored.values()) == len(receipts) + 1  # the 503s left nothing


# -- a read-only database --------------------------------------------------------------------


async def connections_of(admin: asyncpg.Connection, app_name: str) -> int:
    return int(
        await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name)
    )


async def test_a_read_only_database_keeps_connections_bounded(named_url, pg_dsn, make_kit, caplog):
    url, name = named_url
    kit = make_kit(ledger=f"{url}&default_transaction_read_only=on", decision_rate_limit=None)
    app = make_app(kit)
    admin = await asyncpg.connect(pg_dsn)
    seen: list[int] = []
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="consentkit.ledger")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:

            async def visitor() -> None:
                while not stop.is_set():
                    resp = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
                    statuses[resp.status_code] += 1
                    assert "set-cookie" not in resp.headers
                    await asyncio.sleep(0.005)

            visitors = [asyncio.create_task(visitor()) for _ in range(8)]
            for _ in range(60):  # 3 s, sampled every 50 ms
                await asyncio.sleep(0.05)
                seen.append(await connections_of(admin, name))
            stop.set()
            await asyncio.gather(*visitors)
        await kit.aclose()
        await asyncio.sleep(0.2)
        after = await connections_of(admin, name)
    finally:
        await admin.close()
    ledger = kit.ledger
    assert isinstance(ledger, PostgresLedger)
    why = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    print(
        f"{sum(statuses.values())} decisions, connections at most {max(seen)}, {ledger.connect_attempts} attempts"
    )
    assert set(statuses) == {503} and statuses[503] >= 50
    assert max(seen) <= 1 and after == 0, seen
    # Backing off from 0.1 s, doubling up to 5 s: about six attempts in three seconds.
    assert ledger.connect_attempts <= 8
    assert len(why) == 1 and "read-only" in why[0].getMessage()


async def test_back_off_is_bounded_and_reset_by_success(pg_url, policy):
    """Attempts against a database that is down follow 0.1, 0.2, 0.4 ... 5 s, and a success
    starts again from the beginning."""
    ledger = PostgresLedger("postgresql://postgres@127.0.0.1:1/test")
    delays = []
    for _ in range(8):
        with pytest.raises(LedgerUnavailable):
            await ledger.open()
        delays.append(round(ledger._backoff, 2))
        ledger._retry_at = 0.0  # do not wait for it here
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    ledger._dsn = PostgresLedger(pg_url)._dsn
    ledger.schema = PostgresLedger(pg_url).schema
    await ledger.append(new_record(policy))
    assert ledger._backoff == 0.0 and ledger._cause is None
    await ledger.close()
