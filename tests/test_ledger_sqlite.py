"""Several writers on one SQLite ledger file: they must build one unbroken chain.

README: "several server processes (`uvicorn --workers 4`) may append to the same file: each reads
the chain's head inside its write transaction". We check it with two ledger objects in one
process (each its own writer thread and connection), with two uvicorn processes on two ports,
and with ``uvicorn --workers 2``; every acknowledged decision must be there exactly once, ``seq``
must run 1..N without gaps, and ``consentkit verify`` must pass. And when another writer holds
the file longer than the ledger waits, a decision is refused with 503 — nothing acknowledged,
no cookie — and succeeds once the file is free.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SAME_ORIGIN, make_app
from server_helpers import (
    Server,
    assert_verifies,
    export_jsonl,
    free_port,
    server_env,
    start_servers,
    uvicorn_command,
)

from consentkit import open_ledger
from consentkit.ledger.sqlite import SQLiteLedger

PLANS: list[dict[str, Any]] = [
    {"action": "accept_all"},
    {"action": "reject_all"},
    {"action": "save", "granted": ["analytics"]},
    {"action": "save", "granted": ["ads"]},
]


async def hammer(urls: list[str], total: int) -> list[tuple[str, int, Any]]:
    """``total`` separate visitors deciding at once, spread round-robin over ``urls``."""
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=total + 10))

    async def visitor(i: int) -> tuple[str, int, Any]:
        url = urls[i % len(urls)]
        # A fresh client per visitor: its own cookie jar, so its own subject.
        c = httpx.AsyncClient(base_url=url, timeout=60, transport=transport, trust_env=False)
        r = await c.post("/consent", json=PLANS[i % len(PLANS)], headers={"origin": url})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        return url, r.status_code, body

    try:
        return list(await asyncio.gather(*(visitor(i) for i in range(total))))
    finally:
        await transport.aclose()


def check_one_chain(ledger_url: str, results: list[tuple[str, int, Any]]) -> list[dict[str, Any]]:
    """Every acknowledged decision exactly once, nothing else, seq 1..N, and verify passes."""
    acknowledged = [body for _, status, body in results if status == 200]
    assert all(status < 500 or status == 503 for _, status, _ in results), Counter(s for _, s, _ in results)
    rows = export_jsonl(ledger_url)
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1)), "seq must be contiguous"
    receipts = Counter(row["hash"][:16] for row in rows)
    rows_by_receipt = {row["hash"][:16]: row for row in rows}
    for body in acknowledged:
        assert receipts[body["receipt"]] == 1, (
            f"decision {body['receipt']} is in the ledger {receipts[body['receipt']]} times"
        )
        row = rows_by_receipt[body["receipt"]]
        assert row["subject_id"] == body["subject_id"]
        assert row["purposes"] == body["purposes"]
    assert len(rows) == len(acknowledged), "the ledger holds records nobody was told about"
    for prev, row in itertools.pairwise(rows):
        assert row["prev_hash"] == prev["hash"]
        assert row["recorded_at"] >= prev["recorded_at"]
    assert_verifies(ledger_url, len(rows))
    return rows


# -- in one process: two ledger objects on one file ----------------------------------------------


async def test_two_ledgers_on_one_file_build_one_chain(make_kit, ledger_url):
    """Two kits (two writer threads, two connections) appending at once, as two processes would."""
    kits = [make_kit(), make_kit()]
    try:
        records = await asyncio.gather(
            *(
                kits[i % 2].record(f"subject-{i}", {"analytics": i % 3 == 0}, evidence={"i": i})
                for i in range(200)
            )
        )
    finally:
        for kit in kits:
            await kit.aclose()
    assert sorted(r.seq for r in records) == list(range(1, 201))
    ledger = open_ledger(ledger_url)
    try:
        stored = [r async for r in ledger.records()]
        report = await ledger.verify()
    finally:
        await ledger.close()
    assert report.ok and report.records == 200, report
    assert [r.seq for r in stored] == list(range(1, 201))
    assert sorted(r.subject_id for r in stored) == sorted(f"subject-{i}" for i in range(200))
    assert {r.seq: r.hash for r in records} == {r.seq: r.hash for r in stored}, (
        "what was acknowledged is stored"
    )


async def test_a_writer_holding_the_file_gets_503_then_the_retry_succeeds(make_kit, ledger_path):
    """Another process's long write transaction: the decision is refused, not half-acknowledged."""
    kit = make_kit(ledger=SQLiteLedger(ledger_path, busy_timeout=0.3))
    app = make_app(kit)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            assert (
                await c.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
            ).status_code == 200
            c.cookies.clear()

            other = sqlite3.connect(ledger_path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # holds the write lock, like a slow writer elsewhere
                r = await c.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
                assert r.status_code == 503, r.text
                assert "set-cookie" not in r.headers
                assert r.headers.get("retry-after")
                assert r.json()["error"]
                page = await c.get("/")
                assert page.status_code == 200 and page.text == "necessary=1 analytics=0 ads=0"
            finally:
                other.execute("ROLLBACK")
                other.close()

            r = await c.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
            assert r.status_code == 200, r.text
            assert c.cookies.get("consentkit")
            assert (await c.get("/")).text == "necessary=1 analytics=1 ads=1"
        records = [r async for r in kit.ledger.records()]
        assert [(r.seq, r.action) for r in records] == [(1, "reject_all"), (2, "accept_all")]
        assert (await kit.ledger.verify()).ok
    finally:
        await kit.aclose()


# -- several server processes ---------------------------------------------------------------------


@pytest.fixture
def two_servers(tmp_path: Path, ledger_url: str) -> Iterator[list[Server]]:
    """Two uvicorn processes on two ports sharing one (not yet existing) ledger file."""
    ports = [free_port(), free_port()]
    while ports[1] == ports[0]:
        ports[1] = free_port()
    servers = start_servers(
        [(uvicorn_command(p), p, tmp_path / f"uvicorn-{p}.log", server_env(ledger_url)) for p in ports]
    )
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def workers_server(tmp_path: Path, ledger_url: str) -> Iterator[Server]:
    """``uvicorn --workers 2``: two processes accepting on one port, one ledger file."""
    port = free_port()
    env = server_env(ledger_url, PYTHONPATH=str(Path(__file__).parent))
    srv = Server(uvicorn_command(port, "--workers", "2"), port, tmp_path / "uvicorn-workers.log", env)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.mark.slow
async def test_two_server_processes_share_one_ledger(two_servers: list[Server], ledger_url: str) -> None:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as probe:
        pids = {(await probe.get(s.url + "/pid")).text for s in two_servers}
    assert len(pids) == 2, "two separate processes"

    results = await hammer([s.url for s in two_servers], 200)
    rows = check_one_chain(ledger_url, results)
    per_server = Counter(url for url, status, _ in results if status == 200)
    assert set(per_server) == {s.url for s in two_servers}, per_server
    # Two processes on one WAL file with a 10 s busy timeout: nothing should need refusing.
    assert Counter(status for _, status, _ in results) == {200: 200}
    assert len(rows) == 200

    # The chain goes on after both are done, from either process.
    more = await hammer([two_servers[1].url, two_servers[0].url], 20)
    check_one_chain(ledger_url, results + more)


@pytest.mark.slow
async def test_uvicorn_workers_share_one_ledger(workers_server: Server, ledger_url: str) -> None:
    # Make sure two worker processes really answer on the port (the kernel spreads connections).
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))
    pids: set[str] = set()
    try:
        for _ in range(20):
            clients = [
                httpx.AsyncClient(base_url=workers_server.url, transport=transport, trust_env=False)
                for _ in range(50)
            ]
            answers = await asyncio.gather(*(c.get("/pid") for c in clients))
            pids |= {a.text for a in answers}
            if len(pids) >= 2:
                break
    finally:
        await transport.aclose()
    assert len(pids) == 2, f"expected two workers answering, saw {pids}"

    results = await hammer([workers_server.url], 200)
    check_one_chain(ledger_url, results)
    assert Counter(status for _, status, _ in results) == {200: 200}
