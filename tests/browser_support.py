"""Real headless Chromium for the browser tests: a live server, Playwright, axe-core.

Chromium is Debian's (`apt-get install chromium`; Playwright cannot download browsers here),
driven by Playwright for Python; axe-core comes from npm (`tests/browser/node_modules`). Without
them the browser tests are skipped on a developer's machine and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
AXE = HERE / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI needs {what} for the browser tests")
    pytest.skip(f"{what} is not installed (the browser tests need it)")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing("Debian's chromium (apt-get install chromium)")
    assert path is not None
    return path


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def deciding(page: Any) -> Iterator[None]:
    """Around a decision taken in the widget without reload: afterwards it is recorded and the
    banner (or the open dialog) has made way for a fresh "Cookie settings" control."""
    page.evaluate("() => { document.getElementById('consentkit').ckBefore = true; }")
    yield
    page.wait_for_function(
        """() => {
            const root = document.getElementById("consentkit");
            return !!root && !root.ckBefore && !!root.querySelector("[data-ck-settings]")
                && !document.querySelector("dialog.ck-dialog");
        }"""
    )


def axe_violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA violations on ``page`` (within ``context``, a CSS selector)."""
    if not AXE.is_file():
        missing("axe-core (cd tests/browser && npm ci)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async ([context, tags]) => {
            const r = await axe.run(context ? document.querySelector(context) : document,
                                    {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
        }""",
        [context, WCAG_TAGS],
    )
    return list(result)
