"""Requests per second over real HTTP (uvicorn and wrk), with and without consentkit.

The apps are those of ``benchmarks/middleware.py`` (its endpoints, imported), plus a JSON API
route, each served by its own uvicorn process (one worker, no access log) on 127.0.0.1; wrk (one
thread, a few keep-alive connections) loads one server at a time while the others sit idle.
Every round runs, in a new shuffled order, each case right next to its bare app (which of the
two goes first is drawn too) for ``--seconds`` each, so that both see the machine in the same
state. A case's figure is the median over rounds of its requests/s ÷ the bare app's on the same
route in the same pair, with the spread of those ratios (interquartile range, and a ~95 %
confidence interval of the median). The budget (docs/architecture.md, "Performance budget"):
an API response — JSON that does not read consent — keeps ≥ 0.97 of the bare app's requests/s.
The page that reads consent and the pages that get the banner or the settings control are shown
for information, and so are two controls: the bare app in a second process (what two identical
servers differ by) and an empty middleware that only wraps ``send``.

The servers run on one CPU and wrk (with this script) on the other (``--no-pin`` to let the
kernel place them). Every ``--restart-every`` rounds the servers are new processes, checked
and warmed up again (``--warmup`` seconds per case, not counted): one process can be a few per
cent faster than another running the same code, and new ones spread that over all cases.
Consent cookies are real: the consentkit server issues one (``POST /consent``, recorded in a
SQLite ledger in a temporary folder), and wrk sends it with the same headers as
``benchmarks/middleware.py``'s requests.

Noisy machines: during every run the script measures the CPU time that other processes used
(``/proc/stat`` less the servers', wrk's and its own). A pair counts only if neither of its
runs had other processes using more than 0.1 of a core; rounds go on until every case has
``--rounds`` such pairs (at most ``--max-rounds``). The server's own CPU time per request
(``/proc/PID/task/*/schedstat``) is shown too: with the server kept busy it is 1 ÷ requests/s.

    python benchmarks/http_bench.py [--rounds 20] [--seconds 1] [--connections 4] [--only TEXT]

Needs wrk (Debian/Ubuntu: ``apt-get install wrk``). The file is not called ``http.py``: run as
a script, its folder comes first on ``sys.path`` and would hide the standard library's ``http``
from every script in ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from middleware import (  # the sibling benchmark (run as a script, its folder is on sys.path)
    PLANS,
    ROOT,
    SECRET,
    FloorMiddleware,
    reads_consent,
    reads_nothing,
    scope_for,
    template_page,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from consentkit import ConsentKit, Policy

HOST = "127.0.0.1"  # the only address this benchmark ever sends to
OTHER_COOKIES = b"_ga=GA1.2.3; session=abc"  # an undecided visitor's cookies (as middleware.py)
WRK_MISSING = """\
wrk (the HTTP load generator) is not installed. Install it with:
    apt-get install wrk          (Debian, Ubuntu)
    brew install wrk             (macOS)
or build it from https://github.com/wg/wrk and put it on PATH."""
# wrk prints one line we can parse at the end of a run.
WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


async def api(request: Request) -> JSONResponse:
    """An API route: a small JSON answer, no consent read."""
    return JSONResponse(PLANS[3])


def build_app(kind: str, ledger: str) -> Starlette:
    """The apps of ``benchmarks/middleware.py``, with ``/api`` in front of the same routes.

    ``kit`` is its ``with_banner`` app (consentkit with its defaults: an HTML page gets the banner
    or the settings control), ``bare`` the same routes without consentkit (``/reads`` does what
    the kit's does, less reading consent), ``floor`` the least any middleware that sees
    responses costs.
    """
    if kind in ("bare", "bare-again"):
        return Starlette(
            routes=[Route("/api", api), Route("/reads", reads_nothing), Route("/plans", template_page)]
        )
    routes = [Route("/api", api), Route("/reads", reads_consent), Route("/plans", template_page)]
    if kind == "floor":
        return Starlette(routes=routes, middleware=[Middleware(FloorMiddleware)])
    policy = Policy.from_toml(ROOT / "examples" / "consent.toml")
    kit = ConsentKit(policy=policy, secret_keys=[SECRET], ledger=ledger)
    return Starlette(routes=routes, middleware=[kit.middleware])


def serve(kind: str, ledger: str, loop: str, http_impl: str) -> None:
    """Serve one app on a port of its own choosing, which goes to the parent on stdout."""
    import uvicorn

    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))  # no race with other processes for a port: the kernel picks a free one
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        build_app(kind, ledger),
        loop=loop,
        http=http_impl,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    with suppress(KeyboardInterrupt):  # uvicorn raises the SIGINT it stopped on once it is done
        uvicorn.Server(config).run(sockets=[sock])


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]


@dataclass
class Run:
    """One wrk run of one case."""

    rps: float
    cpu_us: float  # the server's CPU time per request (all its threads)
    others: float  # CPU cores used by other processes meanwhile


@dataclass
class Case:
    name: str
    server: str
    path: str
    cookie: str  # "valid" or "undecided"
    bare: str  # the case it is compared with; itself for a bare one
    expect: Callable[[int, dict[str, str], bytes], bool]
    runs: list[Run] = field(default_factory=list)
    refs: list[Run] = field(default_factory=list)  # the bare app's run next to each of ours


def is_json(status: int, headers: dict[str, str], body: bytes) -> bool:
    return status == 200 and headers.get("content-type", "").startswith("application/json")


def says(text: bytes) -> Callable[[int, dict[str, str], bytes], bool]:
    return lambda status, headers, body: status == 200 and body == text


def page(banner: bool | None) -> Callable[[int, dict[str, str], bytes], bool]:
    """An HTML page; with the banner (True), the settings control (False), or untouched (None)."""

    def check(status: int, headers: dict[str, str], body: bytes) -> bool:
        if banner is None:
            return status == 200 and b"data-consentkit" not in body
        return status == 200 and b'data-decided="%s"' % (b"false" if banner else b"true") in body

    return check


CASES = [
    Case("bare Starlette, API (JSON)", "bare", "/api", "valid", "bare Starlette, API (JSON)", is_json),
    Case(
        "control: bare Starlette again (another process), API",
        "bare-again",
        "/api",
        "valid",
        "bare Starlette, API (JSON)",
        is_json,
    ),
    Case(
        "floor: empty middleware wrapping send, API",
        "floor",
        "/api",
        "valid",
        "bare Starlette, API (JSON)",
        is_json,
    ),
    Case("consentkit, valid cookie, API", "kit", "/api", "valid", "bare Starlette, API (JSON)", is_json),
    Case("consentkit, undecided, API", "kit", "/api", "undecided", "bare Starlette, API (JSON)", is_json),
    Case(
        "bare Starlette, page at /reads",
        "bare",
        "/reads",
        "valid",
        "bare Starlette, page at /reads",
        says(b"hello"),
    ),
    Case(
        "consentkit, valid cookie, page reads consent",
        "kit",
        "/reads",
        "valid",
        "bare Starlette, page at /reads",
        says(b"hello"),  # analytics granted: the cookie was read and is valid
    ),
    Case(
        "bare Starlette, template page",
        "bare",
        "/plans",
        "valid",
        "bare Starlette, template page",
        page(None),
    ),
    Case(
        "consentkit, undecided, template page with the banner injected",
        "kit",
        "/plans",
        "undecided",
        "bare Starlette, template page",
        page(True),
    ),
    Case(
        "consentkit, valid cookie, template page with the settings control",
        "kit",
        "/plans",
        "valid",
        "bare Starlette, template page",
        page(False),
    ),
]
BUDGET_CASE = "consentkit, valid cookie, API"
BUDGET = 0.97
DISTURBED = 0.1  # CPU cores used by other processes during a run that leave it out


def pinned(cpu: int | None) -> Callable[[], None] | None:
    return None if cpu is None else partial(os.sched_setaffinity, 0, {cpu})


def start_servers(
    kinds: list[str], ledger: str, loop: str, http_impl: str, cpu: int | None
) -> dict[str, Server]:
    started: dict[str, Server] = {}
    try:
        for kind in kinds:
            cmd = [
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--ledger",
                ledger,
                "--loop",
                loop,
                "--http",
                http_impl,
            ]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, preexec_fn=pinned(cpu))
            started[kind] = Server(kind, 0, proc)
        for server in started.values():
            assert server.proc.stdout is not None
            line = server.proc.stdout.readline()
            if not line.strip().isdigit():
                sys.exit(f"the {server.kind} server did not start (exit code {server.proc.wait()})")
            server.port = int(line)
            wait_until_up(server)
    except BaseException:
        stop_servers(started)
        raise
    return started


def stop_servers(running: dict[str, Server]) -> None:
    for server in running.values():
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGINT)  # uvicorn shuts down (and the kit closes its ledger)
    for server in running.values():
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    running.clear()


def wait_until_up(server: Server) -> None:
    """Until the server answers HTTP (its socket listens from the start; the app starts after)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            sys.exit(f"the {server.kind} server exited at start (code {server.proc.returncode})")
        with suppress(OSError):
            request(server.port, "GET", "/", [(b"host", HOST.encode())])
            return
        time.sleep(0.05)
    sys.exit(f"the {server.kind} server did not answer on {HOST}:{server.port}")


def request(
    port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes, list[str]]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name.decode(), value.decode())
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        cookies = resp.msg.get_all("set-cookie") or []
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, cookies
    finally:
        conn.close()


def issue_cookie(port: int) -> bytes:
    """A real consent cookie: the consentkit server's answer to a visitor's decision (ledgered)."""
    body = json.dumps({"action": "save", "granted": ["analytics"]}).encode()
    headers = [
        (b"host", f"{HOST}:{port}".encode()),
        (b"origin", f"http://{HOST}:{port}".encode()),
        (b"content-type", b"application/json"),
    ]
    status, _, data, cookies = request(port, "POST", "/consent", headers, body)
    for cookie in cookies:
        name, _, rest = cookie.partition("=")
        if name.strip() == "consentkit" and status == 200:
            return b"consentkit=" + rest.split(";", 1)[0].encode()
    sys.exit(f"the consentkit server issued no consent cookie (HTTP {status}: {data[:200]!r})")


def request_headers(path: str, cookie: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of ``benchmarks/middleware.py``'s requests (Host, User-Agent, Accept, …)."""
    headers: list[tuple[bytes, bytes]] = scope_for(path, [(b"cookie", cookie)])()["headers"]
    return headers


def run_wrk(
    wrk: str, script: str, port: int, path: str, headers: list[tuple[bytes, bytes]], args: argparse.Namespace
) -> tuple[float, int]:
    """One wrk run: (requests/s, requests)."""
    cmd = [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "5s", "-s", script]
    for name, value in headers:
        # Title case: wrk adds its own "Host" unless one is given under that exact name.
        cmd += ["-H", f"{name.decode().title()}: {value.decode()}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, preexec_fn=pinned(args.wrk_cpu))
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+)$", out.stdout, re.MULTILINE)
    if found is None:
        sys.exit(f"could not read wrk's output:\n{out.stdout}{out.stderr}")
    requests, duration_us, errors, bad_status = map(int, found.groups())
    if errors or bad_status:
        sys.exit(f"wrk: {errors} socket errors, {bad_status} bad statuses on {path}:\n{out.stdout}")
    return requests / (duration_us / 1e6), requests


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, all its threads, in nanosecond resolution."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


class CpuMeter:
    """What else used the machine: CPU time that is neither the servers', wrk's nor this
    script's (in cores), and the hypervisor's steal (in % of the machine's time)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[float, float, float, float]:
        """(time, other processes' CPU seconds, steal seconds, all seconds), since boot."""
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        done = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk's runs, waited for
        me = resource.getrusage(resource.RUSAGE_SELF)
        ours = sum(map(cpu_seconds, self.pids)) + done.ru_utime + done.ru_stime + me.ru_utime + me.ru_stime
        busy = (user + nice + system + irq + softirq) / self.tick
        total = (user + nice + system + idle + iowait + irq + softirq + steal) / self.tick
        return time.monotonic(), busy - ours, steal / self.tick, total

    @staticmethod
    def between(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float]:
        """(cores used by other processes, steal %) from sample a to sample b."""
        return (b[1] - a[1]) / max(1e-9, b[0] - a[0]), 100 * (b[2] - a[2]) / max(1e-9, b[3] - a[3])


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_ci(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95 % confidence interval of the median (order statistics)."""
    ordered = sorted(values)
    k = max(0, int(len(ordered) / 2 - 0.98 * len(ordered) ** 0.5))
    return ordered[k], ordered[-k - 1]


def counted(case: Case, keep_disturbed: bool) -> list[int]:
    """The pairs in which neither the case's run nor its bare app's was disturbed."""
    return [
        i
        for i, (c, b) in enumerate(zip(case.runs, case.refs, strict=True))
        if keep_disturbed or max(c.others, b.others) <= DISTURBED
    ]


def report(cases: list[Case], args: argparse.Namespace) -> None:
    """The markdown table: one row per case, over the pairs of runs that count for it."""
    print(
        "| case | req/s | ratio (median) | 95 % CI of median | IQR of ratios | rounds "
        "| server CPU µs/req | added µs/req |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    verdict = ""
    short = False
    for case in cases:
        if case.name == case.bare:  # a bare app: all its quiet runs
            runs = [r for r in case.runs if args.keep_disturbed or r.others <= DISTURBED] or case.runs
            print(
                f"| {case.name} | {statistics.median(r.rps for r in runs):,.0f} | 1.000 | | | {len(runs)} "
                f"| {statistics.median(r.cpu_us for r in runs):.1f} | 0.0 |"
            )
            continue
        kept = counted(case, args.keep_disturbed)
        mark = ""
        if len(kept) < max(3, args.rounds // 2):  # too few quiet pairs: count them all, say so
            kept, mark, short = list(range(len(case.runs))), " †", True
        pairs = [(case.runs[i], case.refs[i]) for i in kept]
        ratios = [c.rps / b.rps for c, b in pairs]
        q1, med, q3 = quartiles(ratios)
        low, high = median_ci(ratios)
        name = case.name
        if name == BUDGET_CASE:
            name = f"**{name}**"
            verdict = f"budget: an API response ≥ {BUDGET} of bare: {'met' if med >= BUDGET else 'NOT met'}"
            verdict += f" (median ratio {med:.3f}, 95 % CI {low:.3f}–{high:.3f}, {len(kept)} rounds{mark})"
        print(
            f"| {name}{mark} | {statistics.median(c.rps for c, _ in pairs):,.0f} | {med:.3f} "
            f"| {low:.3f}–{high:.3f} | {q1:.3f}–{q3:.3f} | {len(kept)} "
            f"| {statistics.median(c.cpu_us for c, _ in pairs):.1f} "
            f"| {statistics.median(c.cpu_us - b.cpu_us for c, b in pairs):.1f} |"
        )
    if short:
        print(
            "\n† too few pairs undisturbed by other processes: all counted, figures unreliable "
            "(rerun when the machine is quiet)"
        )
    if verdict:
        print(f"\n{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds to count per case")
    parser.add_argument("--seconds", type=int, default=1, help="wrk's duration per run")
    parser.add_argument("--connections", type=int, default=4, help="wrk's keep-alive connections")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per case after a server's start")
    parser.add_argument(
        "--only", metavar="TEXT", help="run the cases whose name contains TEXT (and their bare)"
    )
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    parser.add_argument(
        "--max-rounds", type=int, help="rounds at most, disturbed ones included (3 × --rounds)"
    )
    parser.add_argument(
        "--keep-disturbed",
        action="store_true",
        help=f"count runs during which other processes used more than {DISTURBED} of a core",
    )
    parser.add_argument(
        "--restart-every", type=int, default=1, metavar="N", help="new server processes every N rounds"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE")
    parser.add_argument("--serve", choices=["bare", "bare-again", "floor", "kit"], help=argparse.SUPPRESS)
    parser.add_argument("--ledger", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # What uvicorn's "auto" would choose in this environment, named so that the report says it.
    if args.loop == "auto":
        args.loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if args.http == "auto":
        args.http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if args.serve:
        serve(args.serve, args.ledger, args.loop, args.http)
        return
    max_rounds = args.max_rounds or 3 * args.rounds
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out

    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_MISSING, file=sys.stderr)
        sys.exit(1)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, args.wrk_cpu = (None, None) if args.no_pin or len(cpus) < 2 else (cpus[-1], cpus[0])
    if args.wrk_cpu is not None:
        os.sched_setaffinity(0, {args.wrk_cpu})  # this script too stays off the servers' CPU

    cases = CASES
    if args.only:
        wanted = {c.name for c in CASES if args.only in c.name}
        wanted |= {c.bare for c in CASES if c.name in wanted}
        cases = [c for c in CASES if c.name in wanted]
    by_name = {c.name: c for c in cases}
    tmp = tempfile.mkdtemp(prefix="consentkit-http-bench-")
    ledger = f"sqlite:///{tmp}/bench.db"
    script = os.path.join(tmp, "report.lua")
    Path(script).write_text(WRK_SCRIPT)
    load_before = os.getloadavg()
    kinds = sorted({c.server for c in cases})
    compared = [c for c in cases if c.name != c.bare]
    if not compared:
        sys.exit("nothing to compare: --only must name at least one case that is not a bare app")
    running: dict[str, Server] = {}
    cookies: dict[str, bytes] = {}

    def headers(case: Case) -> list[tuple[bytes, bytes]]:
        return request_headers(case.path, cookies[case.cookie])

    def restart() -> None:
        """New server processes (a process's own layout in memory makes it a little faster or
        slower than another: new ones now and then spread that over all cases), checked, warm."""
        stop_servers(running)
        running.update(start_servers(kinds, ledger, args.loop, args.http, server_cpu))
        meter.pids = [s.proc.pid for s in running.values()]
        if not cookies:
            valid = issue_cookie(running["kit"].port) + b"; " if "kit" in running else b""
            cookies.update(valid=valid + OTHER_COOKIES, undecided=OTHER_COOKIES)
        for case in cases:  # every case answers what it should before it is timed
            status, got, body, _ = request(running[case.server].port, "GET", case.path, headers(case))
            if not case.expect(status, got, body):
                sys.exit(f"{case.name}: unexpected answer (HTTP {status}): {body[:300]!r}")
        for case in cases:
            run_wrk(wrk, script, running[case.server].port, case.path, headers(case), warmup)

    def run(case: Case) -> Run:
        pid = running[case.server].proc.pid
        before, cpu_before = meter.sample(), cpu_seconds(pid)
        rps, requests = run_wrk(wrk, script, running[case.server].port, case.path, headers(case), args)
        cpu = cpu_seconds(pid) - cpu_before
        return Run(rps, cpu * 1e6 / requests, CpuMeter.between(before, meter.sample())[0])

    def fewest() -> int:
        return min(len(counted(c, args.keep_disturbed)) for c in compared)

    warmup = argparse.Namespace(**{**vars(args), "seconds": args.warmup})
    meter = CpuMeter([])
    first = meter.sample()
    rounds = 0
    try:
        while rounds < max_rounds and (rounds == 0 or fewest() < args.rounds):
            if rounds % args.restart_every == 0:
                restart()
            # Each case runs right next to its bare app, in random order: both see the same machine.
            random.shuffle(compared)
            for case in compared:
                bare = by_name[case.bare]
                if random.random() < 0.5:
                    ours, ref = run(case), run(bare)
                else:
                    ref, ours = run(bare), run(case)
                case.runs.append(ours)
                case.refs.append(ref)
                bare.runs.append(ref)
            rounds += 1
            busiest = max(max(c.runs[-1].others, c.refs[-1].others) for c in compared)
            print(
                f"round {rounds}: other processes used up to {busiest:.2f} cores; "
                f"{fewest()}/{args.rounds} rounds counted",
                file=sys.stderr,
            )
    finally:
        stop_servers(running)
        meter.pids = []  # their time is now this script's children's
        last = meter.sample()
        shutil.rmtree(tmp, ignore_errors=True)

    others, steal = CpuMeter.between(first, last)
    pin = "not pinned" if server_cpu is None else f"servers on CPU {server_cpu}, wrk on CPU {args.wrk_cpu}"
    print(
        f"uvicorn {version('uvicorn')} (1 worker, loop={args.loop}, http={args.http}, no access log), "
        f"wrk 1 thread × {args.connections} connections, {pin}; Python {sys.version.split()[0]}, "
        f"Starlette {version('starlette')}"
    )
    print(
        f"{rounds} rounds of {len(compared)} pairs (case, bare app) × {args.seconds} s in shuffled order, new "
        f"servers every {args.restart_every} round(s) warmed up {args.warmup} s per case "
        f"({(last[0] - first[0]) / 60:.1f} min); load average before "
        f"{load_before[0]:.2f}; other processes used {others:.2f} CPU cores meanwhile, steal {steal:.1f} %"
    )
    print(
        "ratio = the case's requests/s ÷ the bare app's on the same route, run next to it, over "
        f"the rounds in which neither run had other processes using more than {DISTURBED} of a core; "
        "server CPU = the server process's CPU time per request (added: the case's − the bare app's)\n"
    )
    report(cases, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    c.name: {"runs": [vars(r) for r in c.runs], "bare": [vars(r) for r in c.refs]}
                    for c in cases
                },
                f,
            )


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


if __name__ == "__main__":
    main()
