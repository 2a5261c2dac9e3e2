"""Real uvicorn servers in subprocesses, for the end-to-end, concurrency and demo tests.

Two parts:

- ``create_app()``: the app factory the subprocess runs (``python -m uvicorn
  server_helpers:create_app --factory --app-dir tests``). It reads its ledger URL from
  ``CONSENTKIT_TEST_LEDGER`` and its signing key from ``CONSENTKIT_TEST_SECRET``; it is built the
  way the README tells users to (a Starlette app with ``kit.middleware``).
- ``Server``: starts a command in its own process group, waits until it answers HTTP on
  127.0.0.1, and stops the whole group (``--workers`` children included) on ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLE_POLICY = ROOT / "examples" / "consent.toml"
SECRET = "e2e-test-secret-key-0123456789abcdef"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


# -- the app the subprocess serves ------------------------------------------------------------


def create_app():  # type: ignore[no-untyped-def]
    """A Starlette site with consentkit mounted, for ``uvicorn --factory``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from consentkit import ConsentKit, Policy, get_consent

    kit = ConsentKit(
        policy=Policy.from_toml(os.environ.get("CONSENTKIT_TEST_POLICY", str(EXAMPLE_POLICY))),
        secret_keys=[os.environ.get("CONSENTKIT_TEST_SECRET", SECRET)],
        ledger=os.environ["CONSENTKIT_TEST_LEDGER"],
        cookie_secure=False,  # plain http on 127.0.0.1
        # Every test visitor comes from 127.0.0.1: hundreds of them deciding at once are not one
        # client flooding (the decision rate limit has its own tests, in test_hardening.py).
        decision_rate_limit=None,
    )

    async def page(request: Request) -> PlainTextResponse:
        consent = get_consent(request)
        return PlainTextResponse(" ".join(f"{p}={int(v)}" for p, v in consent.purposes().items()))

    async def pid(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(os.getpid()))

    return Starlette(routes=[Route("/", page), Route("/pid", pid)], middleware=[kit.middleware])


# -- running servers --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def console_script(name: str) -> list[str]:
    """The venv's console script ``name`` (next to ``sys.executable``), as an argv prefix."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", name]


def uvicorn_command(port: int, *extra: str) -> list[str]:
    """``python -m uvicorn`` serving :func:`create_app` on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "server_helpers:create_app",
        "--factory",
        "--app-dir",
        str(TESTS),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


def server_env(ledger_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CONSENTKIT_TEST_LEDGER"] = ledger_url
    env["CONSENTKIT_TEST_SECRET"] = SECRET
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Server:
    """One server subprocess (and its children) on 127.0.0.1:``port``."""

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.origin = self.url
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd or ROOT),
            start_new_session=True,  # its own process group: stop() reaches --workers children
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/", timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until the server answers ``GET path`` (any status); fail with its log if not."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before answering: {self.argv}\n{self.log()}"
                )
            try:
                httpx.get(self.url + path, timeout=2.0, trust_env=False)
                return
            except httpx.TransportError as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout}s ({last}): {self.argv}\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader (uvicorn --workers children): make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


def start_servers(specs: Sequence[tuple[Sequence[str], int, Path, dict[str, str] | None]]) -> list[Server]:
    """Start several servers at once (so that they race each other at startup), wait for all.

    On any failure every server started so far is stopped before the error propagates.
    """
    servers: list[Server] = []
    try:
        for argv, port, log_path, env in specs:
            servers.append(Server(argv, port, log_path, env))
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the ``consentkit`` command line of this venv."""
    return subprocess.run(
        [*console_script("consentkit"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )


def export_jsonl(ledger_url: str, *args: str) -> list[dict[str, Any]]:
    """``consentkit export --format jsonl``, parsed."""
    out = run_cli("export", "--ledger", ledger_url, "--format", "jsonl", *args)
    assert out.returncode == 0, f"export failed ({out.returncode}): {out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def assert_verifies(ledger_url: str, records: int) -> None:
    """``consentkit verify`` exits 0 and reports ``records`` records."""
    out = run_cli("verify", "--ledger", ledger_url)
    assert out.returncode == 0, f"verify failed ({out.returncode}): {out.stdout} {out.stderr}"
    assert f"{records} records verified" in out.stdout, out.stdout
