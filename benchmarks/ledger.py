"""Durable decisions per second and acknowledgement latency with many concurrent clients.

Each client is a visitor that posts JSON decisions (``POST /consent``) through the whole
middleware, one after another, for ``--seconds``; a decision counts when its answer (200, cookie
set) arrives, which happens only after its ledger record is committed (WAL, synchronous=FULL).
In-process ASGI calls, one event loop, one process: the cost measured is consentkit's, not a
server's or the network's.

    python benchmarks/ledger.py [--clients 200] [--seconds 10] [--ledger sqlite:///path.db]
    python benchmarks/ledger.py --direct     # kit.ledger.append() alone, without HTTP
    python benchmarks/ledger.py --processes 4 --ledger 'postgresql://postgres@127.0.0.1/test?schema=bench'

With ``--processes N`` the clients are shared out over N app processes (each its own kit and
event loop, as ``uvicorn --workers N`` would run them) appending to the same ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from consentkit import ConsentKit, Policy, open_ledger
from consentkit.decisions import RequestFacts

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-0123456789abcdef"
ACTIONS = [
    {"action": "accept_all"},
    {"action": "reject_all"},
    {"action": "save", "granted": ["analytics"]},
    {"action": "withdraw"},
]


def decision_scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/consent",
        "raw_path": b"/consent",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"www.example.com"),
            (b"origin", b"https://www.example.com"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
            (b"accept-language", b"fr-CA,fr;q=0.9,en;q=0.5"),
        ],
        "client": ("203.0.113.9", 50000),
        "server": ("www.example.com", 443),
        "state": {},
    }


async def post(app: Any, body: bytes) -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(decision_scope(body), receive, send)
    return status


async def measure(args: argparse.Namespace, url: str, clients: int, start_at: float) -> dict[str, Any]:
    """One app process: its clients post for ``args.seconds`` from ``start_at`` (wall clock)."""
    policy = Policy.from_toml(ROOT / "examples" / "consent.toml")
    # Every simulated visitor posts from one address: the per-client decision limit is off here.
    kit = ConsentKit(policy=policy, secret_keys=[SECRET], ledger=url, decision_rate_limit=None)
    app = Starlette(middleware=[kit.middleware])
    await kit.startup()
    bodies = [json.dumps(a).encode() for a in ACTIONS]
    latencies: list[float] = []
    errors = 0
    deadline = 0.0

    # With --rate, each client posts on a fixed schedule (open loop, like visitors who do not wait
    # for each other): latency is then measured at that throughput, not at the most the server can
    # take. Without it, each client posts again as soon as it has its answer (closed loop).
    interval = args.clients / args.rate if args.rate else 0.0

    async def client(i: int) -> None:
        nonlocal errors
        n = i
        due = time.perf_counter() + (interval * i / args.clients if interval else 0.0)
        while time.perf_counter() < deadline:
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                start = due  # a late start counts against us, as the visitor waited for it
                due += interval
            else:
                start = time.perf_counter()
            if args.direct:
                await kit.ledger.append(
                    kit.decisions.new_record(
                        f"subject-{i}",
                        "accept_all",
                        dict.fromkeys(policy.ids, True),
                        "banner",
                        RequestFacts(locale="en", ip_prefix="203.0.113.0/24", user_agent="Mozilla/5.0"),
                    )
                )
                ok = True
            else:
                ok = await post(app, bodies[n % len(bodies)]) == 200
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
            n += 1

    # Warm up (creates the schema, fills caches), then measure in step with the other processes.
    deadline = time.perf_counter() + 1.0
    await asyncio.gather(*(client(i) for i in range(clients)))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    latencies.clear()
    errors = 0
    commits_before = getattr(kit.ledger, "commits", 0)
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    commits = getattr(kit.ledger, "commits", 0) - commits_before
    await kit.aclose()
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "commits": commits}


def run_process(args: argparse.Namespace, url: str, clients: int, start_at: float) -> dict[str, Any]:
    return asyncio.run(measure(args, url, clients, start_at))


def run(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp()
    url = args.ledger or f"sqlite:///{tmp}/bench-ledger.db"
    start_at = time.time() + 3.0 + args.processes
    if args.processes == 1:
        results = [run_process(args, url, args.clients, start_at)]
    else:
        shares = [
            args.clients // args.processes + (i < args.clients % args.processes)
            for i in range(args.processes)
        ]
        with ProcessPoolExecutor(args.processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_process, args, url, share, start_at) for share in shares]
            results = [f.result() for f in futures]
    latencies = sorted(x for r in results for x in r["latencies"])
    errors = sum(r["errors"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    commits = sum(r["commits"] for r in results)

    async def verify() -> Any:
        ledger = open_ledger(url, create=False)
        try:
            return await ledger.verify()
        finally:
            await ledger.close()

    report = asyncio.run(verify())
    n = len(latencies)
    qs = statistics.quantiles(latencies, n=100)
    mode = "ledger.append only" if args.direct else "POST /consent through the middleware"
    if args.rate:
        mode += f", offered {args.rate:,.0f}/s open loop"
    print(f"ledger {url.split('?')[0]}  ({mode})")
    print(
        f"{args.clients} concurrent clients over {args.processes} process(es), {args.seconds:.0f} s, "
        f"CPU count {os.cpu_count()}"
    )
    print(f"durable decisions: {n}  ({n / elapsed:,.0f}/s), errors {errors}")
    print(
        f"ack latency: p50 {qs[49] * 1000:.1f} ms, p99 {qs[98] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    if commits:
        print(
            f"commits (one WAL flush each): {commits}, {n / commits:.1f} decisions per commit, "
            f"{commits / n:.4f} fsyncs per decision"
        )
    print(f"chain verifies: {report.ok} ({report.records} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ledger", help="ledger URL (default: a new SQLite file in a temp dir)")
    parser.add_argument("--direct", action="store_true", help="append to the ledger without HTTP")
    parser.add_argument("--processes", type=int, default=1, help="app processes sharing the clients")
    parser.add_argument(
        "--rate", type=float, help="decisions/s to offer in all (open loop); default: as fast as possible"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
