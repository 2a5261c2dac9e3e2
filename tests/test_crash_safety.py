"""Crash safety: SIGKILL a server under a stream of decisions, again and again.

Every decision the client saw acknowledged must be in the ledger exactly once afterwards, and
the chain must verify. 20 kills per backend, at random moments.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import httpx
import pytest
from server_helpers import Server, free_port, run_cli, server_env, uvicorn_command

from consentkit import open_ledger

KILLS = 20
CLIENTS = 16


ACTIONS = [{"action": "accept_all"}, {"action": "reject_all"}, {"action": "save", "granted": ["analytics"]}]


async def stream_decisions(
    clients: list[httpx.AsyncClient], acked: list[tuple[str, str]], stop: asyncio.Event
) -> None:
    """Post decisions from each client until ``stop``; keep (subject, receipt) of each 200."""

    async def visitor(i: int, client: httpx.AsyncClient) -> None:
        n = i
        while not stop.is_set():
            try:
                r = await client.post("/consent", json=ACTIONS[n % len(ACTIONS)])
            except httpx.TransportError:
                await asyncio.sleep(0.01)  # the server is dead: nothing was acknowledged
                continue
            if r.status_code == 200:
                body = r.json()
                acked.append((body["subject_id"], body["receipt"]))
            n += 1

    await asyncio.gather(*(visitor(i, c) for i, c in enumerate(clients)))


async def kill_loop(ledger_url: str, tmp_path, rng: random.Random) -> list[tuple[str, str]]:
    acked: list[tuple[str, str]] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No cookies kept: every request is a new visitor, so each receipt has its own subject.
    clients = [
        httpx.AsyncClient(base_url=url, timeout=5.0, headers={"origin": url}, cookies=None)
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.cookies = _NoCookies()
    try:
        await _rounds(ledger_url, tmp_path, rng, port, clients, acked)
    finally:
        for client in clients:
            await client.aclose()
    return acked


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


async def _rounds(ledger_url, tmp_path, rng, port, clients, acked) -> None:
    for round_ in range(KILLS):
        server = Server(
            uvicorn_command(port), port, tmp_path / f"server-{round_}.log", server_env(ledger_url)
        )
        try:
            await asyncio.to_thread(server.wait_ready)
            stop = asyncio.Event()
            streaming = asyncio.create_task(stream_decisions(clients, acked, stop))
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            os.killpg(server.proc.pid, signal.SIGKILL)  # no shutdown, no flush: a power cut
            server.proc.wait(timeout=10)
            await asyncio.sleep(0.05)
            stop.set()
            await streaming
        finally:
            server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_acknowledged_decisions_survive_sigkill(backend, tmp_path, request):
    if backend == "sqlite":
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        ledger_url = request.getfixturevalue("pg_url")
    rng = random.Random(int(time.time()))
    acked = await kill_loop(ledger_url, tmp_path, rng)
    print(f"{backend}: {len(acked)} acknowledged decisions across {KILLS} SIGKILLs")
    assert len(acked) > KILLS * 20, "the server acknowledged too few decisions to prove anything"

    ledger = open_ledger(ledger_url, create=False)
    try:
        by_receipt: dict[str, list[str | None]] = {}
        async for record in ledger.records():
            by_receipt.setdefault(record.receipt, []).append(record.subject_id)
    finally:
        await ledger.close()
    missing = [(s, r) for s, r in acked if r not in by_receipt]
    assert not missing, f"{len(missing)} acknowledged decisions lost, e.g. {missing[:3]}"
    wrong = [(s, r) for s, r in acked if by_receipt[r] != [s]]
    assert not wrong, f"acknowledged decisions not present exactly once for their subject: {wrong[:3]}"

    result = run_cli("verify", "--ledger", ledger_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok:" in result.stdout
