"""Soak: minutes of page views and decisions against ``uvicorn --workers 2`` and a PostgreSQL ledger.

Looks for what short benchmarks cannot see: memory, file descriptors or database connections
that grow with time, latency that creeps up, decisions lost or recorded twice.

The app is built as the README's Quickstart builds one (Starlette and ``kit.middleware``; a page
that reads consent and fires the analytics hook, an ad slot behind ``kit.requires("ads")``, and an
HTML page that gets the banner), served by ``uvicorn --workers 2`` — one listening socket shared
by two worker processes under uvicorn's supervisor, the way the README tells sites to run several
processes — with a ledger in a new PostgreSQL schema (``?schema=soak_<random>``, dropped at the
end). Each worker has its own kit, ledger writer and connection pool; both append to one chain.

The load generator (raw HTTP/1.1 on asyncio, in this process, to 127.0.0.1 only) runs
``--clients`` visitors at a time. A visit is one connection (so connections come and go, and the
kernel spreads them over the two workers) carrying 1 to 8 requests of one visitor: a new one (no
cookie) or a returning one (with the consent cookie the server gave it). About 10 % of requests
are decisions (``POST /consent`` as JSON with a new ``Idempotency-Key``), the rest page views;
3 % of acknowledged decisions are sent again with the same key on a new connection, as a client
whose answer was lost would, and must get the same receipt. Every answer is checked against
what the visitor decided (the page says whether analytics is allowed, the ad slot answers 200 or
403, the HTML page carries the banner or the settings control): a wrong one counts as an error.

Requests are paced (open loop, ``--rate`` requests/s in all; ``--rate 0``: each client sends
its next request as soon as it has an answer) and latency is measured from the time a request
was due, so a client that falls behind counts it against the server.

Every 10 s: RSS, open file descriptors (split into HTTP connections, PostgreSQL connections and
the rest) and CPU of each worker (from /proc), PostgreSQL connections (``pg_stat_activity`` on
the database, and those of the workers), requests, errors by status, p50/p99 of pages and of
decisions in the window, the machine's load. At the end: a markdown table (a row per 10 s), a
summary (drift from the first minute to the last), and the exactly-once check — every decision
answered 200 is in the ledger exactly once (by receipt), no record was written that was not
acknowledged, every idempotency key names its receipt's record — and the chain is verified.

    python benchmarks/soak.py [--minutes 10] [--clients 16] [--rate 400] [--json FILE]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Needs asyncpg (``pip install -e '.[dev]'``) and PostgreSQL; exits with status 2 and says so when
the database cannot be reached. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only address this benchmark sends requests to
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SAMPLE_EVERY = 10.0
DECISION_SHARE = 0.10
REPLAY_SHARE = 0.03  # acknowledged decisions sent again with the same key
NEW_VISITOR_SHARE = 0.3  # visits by a visitor without a cookie
RETURNING_POOL = 5000  # returning visitors remembered (their cookies)
REQUEST_TIMEOUT = 30.0
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
]
ACTIONS = [("accept_all", 0.45), ("reject_all", 0.30), ("save", 0.20), ("withdraw", 0.05)]


# -- the app: what each uvicorn worker imports (``soak:create_app --factory``) ----------------


def create_app() -> Any:
    """The README's Quickstart app, its ledger URL and key from the environment."""
    from middleware import template_page  # benchmarks/middleware.py's 2 KB Jinja2 page
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from consentkit import ConsentKit, Policy, get_consent

    kit = ConsentKit(
        policy=Policy.from_toml(ROOT / "examples" / "consent.toml"),
        secret_keys=[os.environ["SOAK_SECRET"]],
        ledger=os.environ["SOAK_LEDGER"],
        cookie_secure=False,  # plain http on 127.0.0.1
        # Every simulated visitor comes from 127.0.0.1: they are many people, not one client
        # flooding (the limiter itself is tested in tests/test_hardening.py).
        decision_rate_limit=None,
    )
    page_views = [0]

    @kit.hooks.on("analytics")
    async def count_page_view(request: Request, path: str) -> None:  # only where analytics is allowed
        page_views[0] += 1

    async def home(request: Request) -> PlainTextResponse:
        await kit.hooks.fire("analytics", request, path=request.url.path)
        consent = get_consent(request)
        return PlainTextResponse(f"analytics allowed: {consent.allows('analytics')}")

    @kit.requires("ads")
    async def ad_slot(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<ad>")

    return Starlette(
        routes=[Route("/", home), Route("/ad", ad_slot), Route("/plans", template_page)],
        middleware=[kit.middleware],
    )


# -- the server and what /proc says about its workers ------------------------------------------


class Server:
    """``uvicorn --workers 2`` in its own process group, its log in a file."""

    def __init__(self, port: int, ledger: str, secret: str, workers: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        env = {**os.environ, "SOAK_LEDGER": ledger, "SOAK_SECRET": secret, "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "soak:create_app",
            "--factory",
            "--app-dir",
            str(Path(__file__).resolve().parent),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )

    def workers(self) -> list[int]:
        """The supervisor's worker processes, by pid: its children that multiprocessing spawned
        to serve (not multiprocessing's resource tracker, its other child)."""
        pids: list[int] = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    for pid in f.read().split():
                        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmd:
                            if b"spawn_main" in cmd.read():
                                pids.append(int(pid))
        return sorted(pids)

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGINT to the supervisor (it stops its workers; each kit closes its ledger)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # a worker left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tcp_sockets() -> dict[int, tuple[int, int, str]]:
    """Every TCP socket of the machine: inode → (local port, remote port, state)."""
    found: dict[int, tuple[int, int, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], int(cols[9])
                found[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return found


@dataclass
class ProcSample:
    pid: int
    rss_kb: int
    fds: int
    http_fds: int  # connections of visitors (local port = the server's)
    pg_fds: int  # connections to PostgreSQL
    cpu_s: float
    pg_ports: list[int] = field(default_factory=list)  # our side's ports of the PostgreSQL connections


def sample_process(pid: int, sockets: dict[int, tuple[int, int, str]], port: int, pg_port: int) -> ProcSample:
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    fds = http = pg = 0
    pg_ports: list[int] = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                sock = sockets.get(int(target[8:-1]))
                if sock is None:
                    continue
                local, remote, state = sock
                if remote == pg_port and state != "0A":
                    pg += 1
                    pg_ports.append(local)
                elif local == port and state != "0A":  # not the listening socket
                    http += 1
    return ProcSample(pid, rss, fds, http, pg, cpu, pg_ports)


def machine_busy() -> float:
    """CPU seconds the machine spent busy (all processes, all cores) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- a small HTTP/1.1 client (far cheaper than a full one: it shares the 2 cores) -------------


class HttpError(Exception):
    """The connection failed or answered something that is not HTTP."""


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k == "set-cookie"]


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Answer:
        if self.writer is None:
            try:
                self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            except OSError as exc:
                raise HttpError(f"connect: {exc}") from exc
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            got = []
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    got.append((name.strip().lower(), value.strip()))
            answer = Answer(status, got, b"")
            length = answer.header("content-length")
            if length is not None:
                answer.body = await self.reader.readexactly(int(length))
            elif (answer.header("transfer-encoding") or "").lower() == "chunked":
                answer.body = await self._chunked()
            else:
                answer.body = await self.reader.read()
                self.close()
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            IndexError,
        ) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        if (answer.header("connection") or "").lower() == "close":
            self.close()
        return answer

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- visitors and the load ----------------------------------------------------------------------


@dataclass
class Visitor:
    user_agent: str
    language: str
    cookie: str | None = None  # the consentkit cookie's value
    decided: bool = False
    analytics: bool = False
    ads: bool = False


@dataclass
class Window:
    """What happened between two samples."""

    page_latencies: list[float] = field(default_factory=list)
    decision_latencies: list[float] = field(default_factory=list)
    requests: int = 0
    decisions: int = 0
    replays: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    behind: float = 0.0  # how late the latest-starting request was sent (s)


class Load:
    def __init__(self, port: int, args: argparse.Namespace, rng: random.Random) -> None:
        self.port = port
        self.args = args
        self.rng = rng
        self.origin = f"http://{HOST}:{port}"
        self.returning: list[Visitor] = []
        self.window = Window()
        self.minute_latencies: dict[int, tuple[list[float], list[float]]] = {}
        self.acknowledged: dict[str, str] = {}  # idempotency key → receipt of its 200 answer
        self.replay_mismatches: list[str] = []
        self.totals: Counter[str] = Counter()
        self.cookies_sent: set[str] = set()  # distinct consent cookies the visitors sent
        self.stopping = False
        self.started = 0.0
        self.interval = args.clients / args.rate if args.rate else 0.0

    def new_visitor(self) -> Visitor:
        return Visitor(
            self.rng.choice(USER_AGENTS),
            "fr-CA,fr;q=0.9,en;q=0.5" if self.rng.random() < 0.25 else "en-US,en;q=0.9",
        )

    def headers(self, visitor: Visitor, cookie: str | None, accept: str) -> list[tuple[str, str]]:
        headers = [
            ("User-Agent", visitor.user_agent),
            ("Accept", accept),
            ("Accept-Language", visitor.language),
        ]
        if cookie is not None:
            self.cookies_sent.add(cookie)
            headers.append(("Cookie", f"consentkit={cookie}; _ga=GA1.2.3"))
        return headers

    def error(self, what: str) -> None:
        self.window.errors[what] += 1
        self.totals[f"error {what}"] += 1

    def latency(self, kind: str, due: float) -> None:
        took = time.perf_counter() - due
        minute = int((time.perf_counter() - self.started) // 60)
        pages, decisions = self.minute_latencies.setdefault(minute, ([], []))
        if kind == "page":
            self.window.page_latencies.append(took)
            pages.append(took)
        else:
            self.window.decision_latencies.append(took)
            decisions.append(took)

    async def client(self, index: int) -> None:
        rng = self.rng
        due = time.perf_counter() + (self.interval * index / self.args.clients if self.interval else 0.0)
        while not self.stopping:
            if self.returning and rng.random() >= NEW_VISITOR_SHARE:
                visitor = self.returning.pop(rng.randrange(len(self.returning)))  # one visit at a time
            else:
                visitor = self.new_visitor()
            conn = Connection(self.port)
            for n in range(rng.randint(1, 8)):
                if self.stopping:
                    break
                if self.interval:
                    now = time.perf_counter()
                    if due > now:
                        await asyncio.sleep(due - now)
                    else:
                        self.window.behind = max(self.window.behind, now - due)
                    start, due = due, due + self.interval
                else:
                    start = time.perf_counter()
                # A new visitor looks at a page before deciding anything.
                if (n > 0 or visitor.cookie is not None) and rng.random() < DECISION_SHARE:
                    await self.decide(conn, visitor, start)
                else:
                    await self.page(conn, visitor, start)
            conn.close()
            if len(self.returning) < RETURNING_POOL:
                self.returning.append(visitor)
            else:
                self.returning[rng.randrange(RETURNING_POOL)] = visitor

    async def send(
        self, conn: Connection, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Answer | None:
        self.window.requests += 1
        self.totals["requests"] += 1
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await conn.request(method, path, headers, body)
        except HttpError:
            self.error("connection")
        except TimeoutError:
            conn.close()
            self.error("timeout")
        return None

    async def page(self, conn: Connection, visitor: Visitor, start: float) -> None:
        roll = self.rng.random()
        path = "/" if roll < 0.5 else "/plans" if roll < 0.9 else "/ad"
        accept = "text/html,application/xhtml+xml" if path == "/plans" else "*/*"
        answer = await self.send(conn, "GET", path, self.headers(visitor, visitor.cookie, accept))
        self.totals[f"GET {path}"] += 1
        if answer is None:
            return
        expected = (200 if visitor.ads else 403) if path == "/ad" else 200
        if answer.status != expected:
            self.error(str(answer.status))
            return
        if path == "/" and answer.body != f"analytics allowed: {visitor.analytics}".encode():
            self.error("wrong page")
            return
        if (
            path == "/plans"
            and b'data-decided="%s"' % (b"true" if visitor.decided else b"false") not in answer.body
        ):
            self.error("wrong banner")
            return
        self.latency("page", start)

    async def decide(self, conn: Connection, visitor: Visitor, start: float) -> None:
        action = self.rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
        choice: dict[str, Any] = {"action": action}
        if action == "save":
            choice["granted"] = [p for p in ("analytics", "ads") if self.rng.random() < 0.5]
        body = json.dumps(choice).encode()
        key = str(uuid.uuid4())
        before = visitor.cookie
        headers = [
            *self.headers(visitor, before, "application/json"),
            ("Origin", self.origin),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ]
        self.window.decisions += 1
        self.totals["decisions"] += 1
        answer = await self.send(conn, "POST", "/consent", headers, body)
        if answer is None:  # what the widget does: the same decision once more, with the same key
            self.window.decisions += 1
            self.totals["decisions (retried)"] += 1
            answer = await self.send(conn, "POST", "/consent", headers, body)
            if answer is None:
                return
        if answer.status != 200:
            self.error(str(answer.status))
            return
        try:
            state = json.loads(answer.body)
            receipt = state["receipt"]
            purposes = state["purposes"]
        except (ValueError, KeyError, TypeError):
            self.error("wrong decision answer")
            return
        cookie = next((c for c in answer.cookies() if c.startswith("consentkit=")), None)
        if cookie is None or not state["decided"] or not receipt:
            self.error("wrong decision answer")
            return
        visitor.cookie = cookie.split(";", 1)[0].split("=", 1)[1]
        visitor.decided, visitor.analytics, visitor.ads = True, purposes["analytics"], purposes["ads"]
        self.acknowledged[key] = receipt
        self.latency("decision", start)
        if self.rng.random() < REPLAY_SHARE:
            # The answer "was lost": the same decision, the same key, the cookie from before, on a
            # new connection (perhaps to the other worker). It must answer the same receipt.
            self.window.replays += 1
            self.totals["replays"] += 1
            other = Connection(self.port)
            again = await self.send(other, "POST", "/consent", headers, body)
            other.close()
            if again is None:
                return
            try:
                got = json.loads(again.body).get("receipt") if again.status == 200 else None
            except (ValueError, AttributeError):
                got = None
            if got != receipt:
                self.replay_mismatches.append(f"{key}: {receipt} then HTTP {again.status} {got}")
                self.error("replay mismatch")


# -- sampling -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) in ms, or None when there is nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


async def take_sample(
    load: Load, server: Server, conn: Any, pg: argparse.Namespace, state: dict[str, Any]
) -> dict[str, Any]:
    now = time.perf_counter()
    window, load.window = load.window, Window()
    sockets = tcp_sockets()
    workers = []
    for pid in server.workers():
        with contextlib.suppress(OSError, StopIteration):
            workers.append(sample_process(pid, sockets, server.port, pg.port))
    ports = [p for w in workers for p in w.pg_ports]
    row = await conn.fetchrow(
        "SELECT count(*) AS everyone, count(*) FILTER (WHERE client_port = ANY($2::int[])) AS workers "
        "FROM pg_stat_activity WHERE datname = $1",
        pg.database,
        ports,
    )
    busy = machine_busy()
    mine = own_cpu()
    elapsed = now - state["at"]
    cpu_before = state["worker_cpu"]
    sample = {
        "t": round(now - load.started, 1),
        "seconds": round(elapsed, 2),
        "requests": window.requests,
        "decisions": window.decisions,
        "replays": window.replays,
        "pages_ok": len(window.page_latencies),
        "decisions_ok": len(window.decision_latencies),
        "errors": dict(window.errors),
        "page_p50_ms": pct(window.page_latencies, 0.50),
        "page_p99_ms": pct(window.page_latencies, 0.99),
        "decision_p50_ms": pct(window.decision_latencies, 0.50),
        "decision_p99_ms": pct(window.decision_latencies, 0.99),
        "behind_ms": round(window.behind * 1000, 1),
        "workers": [
            {
                "pid": w.pid,
                "rss_mb": round(w.rss_kb / 1024, 1),
                "fds": w.fds,
                "http_fds": w.http_fds,
                "pg_fds": w.pg_fds,
                "other_fds": w.fds - w.http_fds - w.pg_fds,
                "cpu_pct": round(100 * (w.cpu_s - cpu_before.get(w.pid, w.cpu_s)) / elapsed, 1)
                if w.pid in cpu_before
                else None,
            }
            for w in workers
        ],
        "pg_connections": int(row["everyone"]),
        "pg_connections_workers": int(row["workers"]),
        "load1": os.getloadavg()[0],
        "machine_busy_cores": round((busy - state["busy"]) / elapsed, 2),
        "loadgen_cpu_pct": round(100 * (mine - state["own"]) / elapsed, 1),
    }
    state.update(at=now, busy=busy, own=mine, worker_cpu={w.pid: w.cpu_s for w in workers})
    return sample


def start_state(server: Server, pg_port: int) -> dict[str, Any]:
    sockets = tcp_sockets()
    cpu = {}
    for pid in server.workers():
        with contextlib.suppress(OSError, StopIteration):
            cpu[pid] = sample_process(pid, sockets, server.port, pg_port).cpu_s
    busy = machine_busy()
    return {"at": time.perf_counter(), "busy": busy, "own": own_cpu(), "worker_cpu": cpu}


def progress(sample: dict[str, Any]) -> None:
    workers = " ".join(f"{w['rss_mb']}MB/{w['fds']}fd" for w in sample["workers"])
    print(
        f"t={sample['t']:6.0f}s  {sample['requests'] / sample['seconds']:6.0f} req/s  "
        f"pages p99 {fmt(sample['page_p99_ms'])} ms  decisions p99 {fmt(sample['decision_p99_ms'])} ms  "
        f"errors {errors_text(sample['errors'])}  workers {workers}  pg {sample['pg_connections']}  "
        f"load {sample['load1']:.2f}",
        file=sys.stderr,
    )


# -- the report ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(errors.items())) or "0"


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def table(samples: list[dict[str, Any]]) -> str:
    out = [
        "| t | req/s | pages p50 / p99 ms | decisions p50 / p99 ms | errors "
        "| RSS MB w1 / w2 | fds w1 / w2 (other) | CPU % w1 / w2 | PG conns all / workers | load |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in samples:
        ws = s["workers"]
        t = round(s["t"])
        fds = " / ".join(f"{w['fds']} ({w['other_fds']})" for w in ws)
        out.append(
            f"| {t // 60}:{t % 60:02d} | {s['requests'] / s['seconds']:,.0f} "
            f"| {fmt(s['page_p50_ms'])} / {fmt(s['page_p99_ms'])} "
            f"| {fmt(s['decision_p50_ms'])} / {fmt(s['decision_p99_ms'])} "
            f"| {errors_text(s['errors'])} "
            f"| {' / '.join(fmt(w['rss_mb']) for w in ws)} "
            f"| {fds} "
            f"| {' / '.join(fmt(w['cpu_pct'], 0) for w in ws)} "
            f"| {s['pg_connections']} / {s['pg_connections_workers']} | {s['load1']:.2f} |"
        )
    return "\n".join(out)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary(samples: list[dict[str, Any]], load: Load, minutes: float) -> tuple[list[str], dict[str, Any]]:
    """The drift from the first minute to the last, and whether it is flat."""
    end = samples[-1]["t"]
    first = [s for s in samples if s["t"] <= 60.5]
    last = [s for s in samples if s["t"] > end - 59.5]
    lines: list[str] = []
    figures: dict[str, Any] = {}
    flat = True
    rss_growing = False
    pids = [w["pid"] for w in samples[0]["workers"]]
    replaced = any([w["pid"] for w in s["workers"]] != pids for s in samples)
    n_workers = len(pids)
    n_minutes = math.ceil(end / 60 - 0.01)
    for i in range(n_workers):
        rss0 = mean([s["workers"][i]["rss_mb"] for s in first if len(s["workers"]) > i])
        rss1 = mean([s["workers"][i]["rss_mb"] for s in last if len(s["workers"]) > i])
        trend = slope(
            [
                (s["t"] / 60, s["workers"][i]["rss_mb"])
                for s in samples
                if s["t"] > 60.5 and len(s["workers"]) > i
            ]
        )
        other0 = max(s["workers"][i]["other_fds"] for s in first if len(s["workers"]) > i)
        other1 = max(s["workers"][i]["other_fds"] for s in last if len(s["workers"]) > i)
        fds0 = mean([s["workers"][i]["fds"] for s in first if len(s["workers"]) > i])
        fds1 = mean([s["workers"][i]["fds"] for s in last if len(s["workers"]) > i])
        by_minute = [
            mean(rss)
            for m in range(n_minutes)
            if (
                rss := [
                    s["workers"][i]["rss_mb"]
                    for s in samples
                    if m * 60 < s["t"] <= (m + 1) * 60 + 0.5 and len(s["workers"]) > i
                ]
            )
        ]
        rss_flat = rss1 - rss0 <= max(2.0, 0.05 * rss0)
        fds_flat = other1 <= other0
        flat &= rss_flat and fds_flat
        rss_growing |= not rss_flat
        lines.append(
            f"- worker {i + 1}: RSS {rss0:.1f} → {rss1:.1f} MB (first minute → last, mean; "
            f"{rss1 - rss0:+.1f} MB, {100 * (rss1 - rss0) / rss0:+.1f} %; after the first minute "
            f"{fmt(trend, 2)} MB/min; per minute {', '.join(f'{v:.1f}' for v in by_minute)}) — "
            f"{'flat' if rss_flat else 'GROWING'}; fds {fds0:.1f} → {fds1:.1f} (mean, with visitors' "
            f"connections), fds other than connections {other0} → {other1} (max) — "
            f"{'flat' if fds_flat else 'GROWING'}"
        )
        figures[f"worker{i + 1}"] = {
            "rss_mb": [rss0, rss1],
            "rss_mb_per_min": trend,
            "rss_mb_by_minute": by_minute,
            "other_fds": [other0, other1],
        }
    pg_all = max(s["pg_connections"] for s in samples)
    pg_workers = max(s["pg_connections_workers"] for s in samples)
    pg_workers_first = max(s["pg_connections_workers"] for s in first)
    pg_flat = pg_workers <= max(pg_workers_first, 4 * n_workers)
    flat &= pg_flat
    lines.append(
        f"- PostgreSQL connections: at most {pg_all} on the database (incl. this script's monitor and "
        f"anyone else's), at most {pg_workers} of the workers (pool of 4 each) — "
        f"{'bounded' if pg_flat else 'GROWING'}"
    )
    # Requests that ended after the last sample (while the clients stopped) are left out.
    minutes_seen = [m for m in sorted(load.minute_latencies) if m < n_minutes]
    p99_pages = [pct(load.minute_latencies[m][0], 0.99) for m in minutes_seen]
    p99_decisions = [pct(load.minute_latencies[m][1], 0.99) for m in minutes_seen]
    page_trend = slope(
        [(m + 1, v) for m, v in zip(minutes_seen, p99_pages, strict=True) if m and v is not None]
    )
    dec_trend = slope(
        [(m + 1, v) for m, v in zip(minutes_seen, p99_decisions, strict=True) if m and v is not None]
    )
    lines.append(
        "- p99 per minute, pages (ms): "
        + ", ".join(fmt(v) for v in p99_pages)
        + f"; after the first minute {fmt(page_trend, 2)} ms/min"
    )
    lines.append(
        "- p99 per minute, decisions (ms): "
        + ", ".join(fmt(v) for v in p99_decisions)
        + f"; after the first minute {fmt(dec_trend, 2)} ms/min"
    )
    from consentkit.http.reading import CACHE_SIZE

    lines.append(
        f"- distinct consent cookies the visitors sent: {len(load.cookies_sent):,} (each process keeps "
        f"the verified consent of up to {CACHE_SIZE:,} cookies and of as many Cookie headers)"
    )
    if rss_growing and len(load.cookies_sent) < 2 * CACHE_SIZE:
        lines.append(
            "- note: RSS grows while those per-process caches fill (about 3 KB per distinct cookie "
            "a worker has seen) and stops when they are full; with fewer than twice their size sent "
            "in all, this run may have ended before that: run longer or with a higher --rate to see "
            "where it levels off"
        )
    if replaced:
        flat = False
        lines.append("- a worker was REPLACED during the run (its pid changed): see the server log")
    figures.update(
        pg_connections_max=pg_all,
        pg_connections_workers_max=pg_workers,
        p99_pages_per_minute=p99_pages,
        p99_decisions_per_minute=p99_decisions,
        p99_pages_ms_per_min=page_trend,
        p99_decisions_ms_per_min=dec_trend,
        flat=flat,
        workers_replaced=replaced,
    )
    all_pages = [x for m in minutes_seen for x in load.minute_latencies[m][0]]
    all_decisions = [x for m in minutes_seen for x in load.minute_latencies[m][1]]
    errors = {k[6:]: v for k, v in load.totals.items() if k.startswith("error ")}
    lines.insert(
        0,
        f"- {load.totals['requests']:,} requests in {minutes:g} min ({load.totals['requests'] / (minutes * 60):,.0f}/s): "
        f"{len(all_pages):,} page views answered right (p50 {fmt(pct(all_pages, 0.5))} ms, p99 "
        f"{fmt(pct(all_pages, 0.99))} ms, max {fmt(pct(all_pages, 1.0))} ms), {len(load.acknowledged):,} decisions "
        f"({load.totals['decisions'] / max(1, load.totals['requests']):.1%} of requests) acknowledged (p50 {fmt(pct(all_decisions, 0.5))} ms, p99 {fmt(pct(all_decisions, 0.99))} ms, max "
        f"{fmt(pct(all_decisions, 1.0))} ms), {load.totals['replays']:,} replays with the same key; "
        f"errors: {errors_text(errors)}",
    )
    verdict = "FLAT" if flat else "NOT FLAT"
    lines.append(
        f"- verdict: **{verdict}** (flat: RSS last minute ≤ first + max(2 MB, 5 %), descriptors other than "
        "connections not above the first minute's, workers' PostgreSQL connections within their pools, "
        "no worker replaced)"
    )
    figures["errors"] = errors
    return lines, figures


async def exactly_once(pg: argparse.Namespace, schema: str, url: str, load: Load) -> tuple[list[str], bool]:
    """Every acknowledged decision in the ledger exactly once, nothing else; the chain verifies."""
    import asyncpg

    from consentkit import open_ledger

    conn = await asyncpg.connect(pg.dsn)
    try:
        receipts = Counter(
            r[0] for r in await conn.fetch(f'SELECT left(hash, 16) FROM "{schema}".consentkit_ledger')
        )
        keys = {
            r[0]: r[1]
            for r in await conn.fetch(
                f'SELECT i.key, left(l.hash, 16) FROM "{schema}".consentkit_idempotency i '
                f'JOIN "{schema}".consentkit_ledger l USING (seq)'
            )
        }
    finally:
        await conn.close()
    acked = load.acknowledged
    acked_receipts = Counter(acked.values())
    missing = [r for r in acked_receipts if receipts[r] == 0]
    twice = [r for r in acked_receipts if receipts[r] > 1 or acked_receipts[r] > 1]
    unacknowledged = sum(n for r, n in receipts.items() if r not in acked_receipts)
    wrong_keys = [k for k, r in acked.items() if keys.get(k) != r]
    ledger = open_ledger(url, create=False)
    try:
        report = await ledger.verify()
    finally:
        await ledger.close()
    ok = not (missing or twice or wrong_keys or load.replay_mismatches) and report.ok
    lines = [
        f"- decisions answered 200: {len(acked):,} (distinct keys), distinct receipts {len(acked_receipts):,}; "
        f"ledger records {sum(receipts.values()):,}",
        f"- acknowledged receipts found exactly once: {sum(1 for r in acked_receipts if receipts[r] == 1):,}; "
        f"missing {len(missing)}; more than once {len(twice)}",
        f"- records nobody was told about (not acknowledged): {unacknowledged}"
        + (" — from decisions whose answer was an error or lost" if unacknowledged else ""),
        f"- idempotency keys naming the acknowledged record: {len(acked) - len(wrong_keys):,} of {len(acked):,}; "
        f"replays answered with the same receipt: {load.totals['replays'] - len(load.replay_mismatches):,} "
        f"of {load.totals['replays']:,}",
        f"- chain verifies: {report.ok} ({report.records:,} records)"
        + ("" if report.ok else f": {report.problem}"),
        f"- exactly once: **{'yes' if ok else 'NO'}**",
    ]
    for problem in (missing[:5], twice[:5], wrong_keys[:5], load.replay_mismatches[:5]):
        if problem:
            lines.append(f"  - e.g. {problem}")
    return lines, ok


# -- the run ------------------------------------------------------------------------------------


def postgres_target(url: str) -> argparse.Namespace:
    parts = urlsplit(url)
    return argparse.Namespace(
        dsn=url, port=parts.port or 5432, database=(parts.path or "/postgres").lstrip("/") or "postgres"
    )


async def connect_or_exit(pg: argparse.Namespace) -> Any:
    try:
        import asyncpg
    except ImportError:
        sys.exit("soak: asyncpg is not installed: pip install -e '.[dev]' (or '.[postgres]')")
    try:
        return await asyncpg.connect(pg.dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(
            f"soak: cannot connect to PostgreSQL at {pg.dsn} ({type(exc).__name__}: {exc}).\n"
            "Is it running and reachable (e.g. `pg_ctlcluster 15 main start`)? Or give another "
            "database with --postgres URL.",
            file=sys.stderr,
        )
        sys.exit(2)


async def wait_ready(server: Server, workers: int, pg_port: int) -> None:
    """Until the supervisor has its workers and each has opened its ledger (a connection to
    PostgreSQL, made at startup) and a page is answered."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            sys.exit(
                f"soak: the server exited at start (code {server.proc.returncode}):\n{server.log_tail()}"
            )
        pids = server.workers()
        if len(pids) == workers:
            sockets = tcp_sockets()
            with contextlib.suppress(OSError, StopIteration):
                if all(sample_process(p, sockets, server.port, pg_port).pg_fds for p in pids):
                    conn = Connection(server.port)
                    with contextlib.suppress(HttpError):
                        answer = await conn.request("GET", "/", [])
                        conn.close()
                        if answer.status == 200:
                            return
        await asyncio.sleep(0.2)
    sys.exit(f"soak: the server did not become ready in 60 s:\n{server.log_tail()}")


async def run(args: argparse.Namespace) -> int:
    pg = postgres_target(args.postgres)
    monitor = await connect_or_exit(pg)
    schema = f"soak_{secrets.token_hex(4)}"
    sep = "&" if "?" in args.postgres else "?"
    ledger_url = f"{args.postgres}{sep}schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="consentkit-soak-"))
    server = Server(free_port(), ledger_url, secrets.token_urlsafe(32), args.workers, tmp / "server.log")
    rng = random.Random(args.seed)
    load = Load(server.port, args, rng)
    samples: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    print(
        f"soak: {args.minutes:g} min, uvicorn --workers {args.workers} on {HOST}:{server.port}, ledger schema {schema}",
        file=sys.stderr,
    )
    clients: list[asyncio.Task[None]] = []
    loop, me = asyncio.get_running_loop(), asyncio.current_task()
    assert me is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the server, then the schema
        loop.add_signal_handler(signum, me.cancel)
    try:
        await wait_ready(server, args.workers, pg.port)
        state = start_state(server, pg.port)
        load.started = time.perf_counter()
        clients = [asyncio.create_task(load.client(i)) for i in range(args.clients)]
        for n in range(1, int(args.minutes * 60 / SAMPLE_EVERY) + 1):
            await asyncio.sleep(max(0.0, load.started + n * SAMPLE_EVERY - time.perf_counter()))
            if server.proc.poll() is not None:
                sys.exit(f"soak: the server exited (code {server.proc.returncode}):\n{server.log_tail()}")
            samples.append(await take_sample(load, server, monitor, pg, state))
            progress(samples[-1])
        load.stopping = True
        done, pending = await asyncio.wait(clients, timeout=REQUEST_TIMEOUT + 5)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # a bug in the load generator must not pass unseen
        once_lines, once_ok = await exactly_once(pg, schema, ledger_url, load)
    finally:
        load.stopping = True
        for task in clients:
            task.cancel()
        server.stop()
        log = server.log_path.read_text(errors="replace")
        try:
            await monitor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await monitor.close()
        except Exception as exc:
            print(f"soak: could not drop schema {schema}: {exc}", file=sys.stderr)

    lines, figures = summary(samples, load, args.minutes)
    problems = [
        line for line in log.splitlines() if "Traceback" in line or "ERROR" in line or "error" in line
    ]
    print(
        f"\n### Soak: {args.minutes:g} min, uvicorn --workers {args.workers}, PostgreSQL ledger\n\n"
        f"`python benchmarks/soak.py --minutes {args.minutes:g} --clients {args.clients} --rate {args.rate:g}`: "
        f"{args.clients} clients, "
        + (f"{args.rate:g} requests/s offered (open loop)" if args.rate else "closed loop")
        + f", {DECISION_SHARE:.0%} decisions; CPU count {os.cpu_count()}, load average before "
        f"{load_before[0]:.2f}, during {min(s['load1'] for s in samples):.2f}–{max(s['load1'] for s in samples):.2f}; "
        f"this script used {mean([s['loadgen_cpu_pct'] for s in samples]):.0f} % of a core on average\n"
    )
    print(table(samples))
    print("\n**Summary**\n")
    print("\n".join(lines))
    print(f"- server log: {len(problems)} error lines" + (f", e.g. {problems[0]!r}" if problems else ""))
    print("\n**Exactly once**\n")
    print("\n".join(once_lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "schema": schema,
                    "load_before": load_before,
                    "samples": samples,
                    "summary": figures,
                    "totals": dict(load.totals),
                    "exactly_once": once_ok,
                    "server_log_errors": problems[:100],
                },
                f,
                indent=1,
            )
    return 0 if once_ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16, help="visitors at a time (concurrent connections)")
    parser.add_argument(
        "--rate",
        type=float,
        default=400.0,
        help="requests/s offered in all (open loop); 0: as fast as answered",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--postgres", default=DEFAULT_POSTGRES, help="database URL (a new schema is made in it)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples and figures to FILE")
    parser.add_argument("--seed", type=int, help="seed of the visitors' random choices")
    args = parser.parse_args()
    if args.minutes * 60 < 2 * SAMPLE_EVERY:
        parser.error("--minutes: at least 2 samples (0.34 min)")
    try:
        sys.exit(asyncio.run(run(args)))
    except asyncio.CancelledError:
        sys.exit("soak: interrupted")


if __name__ == "__main__":
    main()
