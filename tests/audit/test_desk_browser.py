"""The auditor's desk under its Content-Security-Policy, in real headless Chromium (issue 11, 4).

The desk's pages must still look and work the same with the CSP enforced — their one stylesheet
allowed by its hash, "Verify now" posting to the desk — with no CSP violation reported, and no
other site may show them in a frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from browser_support import live_server
from conftest import make_app
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from consentkit import ConsentKit
from consentkit.audit import hash_password

USER, PASSWORD = "auditor", "browser-test-auditor-password"
AUDIT = "/consent/audit"

# Every CSP violation of the page, as the browser reports it to the page itself.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile || ""}`);
});
"""


@pytest.fixture
def desk(make_kit: Any) -> Iterator[tuple[ConsentKit, str]]:
    kit = make_kit(audit_users={USER: hash_password(PASSWORD)})

    async def framer(request: Request) -> HTMLResponse:
        """Another site's page that shows the desk in a frame (``?src=`` its address)."""
        src = escape(request.query_params["src"])
        return HTMLResponse(f'<!doctype html><title>framer</title><iframe src="{src}"></iframe>')

    with live_server(make_app(kit, [Route("/framer", framer)])) as url:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as visitor:
            for action in ("accept_all", "reject_all", "accept_all"):
                r = visitor.post("/consent", json={"action": action}, headers={"origin": url})
                assert r.status_code == 200, r.text
                visitor.cookies.clear()
        yield kit, url


@pytest.fixture
def auditor(chromium: Any, desk: tuple[ConsentKit, str]) -> Iterator[tuple[Any, list[str]]]:
    """A page signed in to the desk, with the CSP enforced; and the console's errors."""
    _kit, url = desk
    context = chromium.new_context(base_url=url, http_credentials={"username": USER, "password": PASSWORD})
    context.set_default_timeout(5000)
    page = context.new_page()
    page.add_init_script(WATCH_CSP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on(
        "console",
        lambda m: (
            errors.append(f"{page.url}: {m.text}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    yield page, errors
    context.close()


def violations(page: Any) -> list[str]:
    return list(page.evaluate("() => window.__csp"))


def test_the_desk_renders_and_verifies_under_its_csp_with_no_violation(auditor):
    page, errors = auditor
    response = page.goto(AUDIT)
    assert response.status == 200
    assert "style-src 'sha256-" in response.headers["content-security-policy"]
    # The stylesheet applied: the header's background is the desk's grey, not the default.
    header = page.locator("header.desk")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(246, 247, 249)"
    assert page.get_by_role("img", name="Consent rate per purpose, per day").is_visible()
    assert violations(page) == []

    with page.expect_navigation():
        page.get_by_role("button", name="Verify the chain now").click()
    assert page.url.endswith(AUDIT)
    assert "intact" in page.locator("main").inner_text()
    assert "3 records" in page.locator("main").inner_text()
    assert violations(page) == []

    for path in (f"{AUDIT}/records", f"{AUDIT}/records/2", f"{AUDIT}/access", f"{AUDIT}?count=subjects"):
        assert page.goto(path).status == 200, path
        assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(246, 247, 249)"
        assert violations(page) == [], path

    # The watch works: a style the CSP does not allow is refused and reported.
    page.evaluate(
        "() => document.head.appendChild(document.createElement('style')).textContent = 'body{color:red}'"
    )
    page.wait_for_function("() => window.__csp.length > 0")
    assert violations(page)[0].startswith("style-src")
    errors[:] = [e for e in errors if "Content Security Policy" not in e]
    assert errors == []


def test_no_other_site_can_frame_the_desk(auditor, desk):
    page, _errors = auditor
    _kit, url = desk
    # Another origin (localhost is not 127.0.0.1) shows the signed-in desk in a frame: the
    # browser refuses to render it there.
    page.goto(url.replace("127.0.0.1", "localhost") + "/framer?src=" + quote(url + AUDIT))
    page.wait_for_load_state("load")
    frame = page.frames[1]
    # The refused frame ends on the browser's error page; it may get there after the parent loads.
    deadline = time.monotonic() + 10
    while not frame.url.startswith("chrome-error:") and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert frame.url.startswith("chrome-error:"), frame.url
    assert "Consent audit" not in frame.evaluate("() => document.body ? document.body.innerText : ''")
