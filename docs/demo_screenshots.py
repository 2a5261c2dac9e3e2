"""Screenshots of the demo site, Northwind Telecom, for the docs: ``python docs/demo_screenshots.py``.

Starts the demo the way its browser tests do (``demo_site.create_app`` with a throw-away SQLite
ledger and an auditor's password, served with uvicorn on 127.0.0.1), lets 30 visitors decide
over HTTP — as the widget posts, with a mix of choices, a few with Global Privacy Control, a few
withdrawing later — and the customer of ``/account`` opt in to SMS, so that the auditor's
figures are not empty. Then it visits the site with Debian's headless Chromium through
Playwright and writes into ``docs/``:

- ``demo-home.png``         the home page of an undecided visitor, banner shown, 1280x800
- ``demo-your-privacy.png`` ``/your-privacy`` of a visitor who accepted, then turned ads off:
                            their choices and their history with receipts (the whole page,
                            1280 wide)
- ``audit-overview.png``    the auditor's overview at ``/consent/audit`` after "Verify the chain
                            now" (full page)
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from browser_support import CHROMIUM_ARGS, live_server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from demo_site.app import AUDIT_USER, create_app  # noqa: E402

OUT = ROOT / "docs"
AUDIT_PASSWORD = secrets.token_urlsafe(18)  # this run only

# (how many visitors, their decision, what they allow when they save, Sec-GPC, withdraw later)
VISITORS: list[tuple[int, str, list[str] | None, bool, bool]] = [
    (10, "accept_all", None, False, False),
    (3, "accept_all", None, False, True),
    (8, "reject_all", None, False, False),
    (4, "save", ["analytics"], False, False),
    (2, "save", ["ads"], False, False),
    (3, "save", ["analytics"], True, False),
]


def decide(url: str, action: str, granted: list[str] | None, gpc: bool, withdraw: bool) -> None:
    """One visitor's choice, posted as the widget posts it (JSON from the site's origin)."""
    headers = {"origin": url, "user-agent": "Mozilla/5.0 (demo screenshots)"}
    if gpc:
        headers["sec-gpc"] = "1"
    body: dict[str, Any] = {"action": action}
    if granted is not None:
        body["granted"] = granted
    with httpx.Client(base_url=url, headers=headers, timeout=10, trust_env=False) as visitor:
        visitor.post("/consent", json=body).raise_for_status()
        if withdraw:
            visitor.post("/consent", json={"action": "withdraw", "method": "preferences"}).raise_for_status()


def seed(url: str) -> None:
    count = 0
    for n, action, granted, gpc, withdraw in VISITORS:
        for _ in range(n):
            decide(url, action, granted, gpc, withdraw)
            count += 1
    assert count == 30
    with httpx.Client(base_url=url, headers={"origin": url}, timeout=10, trust_env=False) as customer:
        r = customer.post("/account/marketing", data={"action": "save", "granted": "sms_marketing"})
        assert r.status_code == 303, r.text


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            ledger=f"sqlite:///{Path(tmp) / 'ledger.db'}",
            audit_password=AUDIT_PASSWORD,
            secret_keys=[secrets.token_urlsafe(32)],
        )
        with live_server(app) as url, sync_playwright() as p:
            seed(url)
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            desktop = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", "base_url": url}

            # An undecided visitor on the home page: the banner.
            context = browser.new_context(**desktop)
            page = context.new_page()
            page.goto("/")
            page.wait_for_function("() => !!window.consentkit")
            page.locator("[data-ck-banner]").wait_for(state="visible")
            page.screenshot(path=OUT / "demo-home.png")
            context.close()

            # A visitor who accepted in the banner, then turned ads off on /your-privacy.
            context = browser.new_context(**desktop)
            page = context.new_page()
            page.goto("/")
            page.wait_for_function("() => !!window.consentkit")
            page.locator("[data-ck-action=accept_all]").click()
            page.locator("[data-ck-settings]").wait_for()
            page.goto("/your-privacy")
            page.locator("#choice-ads").uncheck()
            with page.expect_navigation():
                page.locator("#choices-form button[value=save]").click()
            page.wait_for_function("() => !!window.consentkit")
            assert page.locator("#history tbody tr").count() == 2
            # The whole page in one viewport, so that the fixed "Cookie settings" control sits at
            # its bottom left (a full-page capture would paint it over the form).
            height = page.evaluate("() => document.documentElement.scrollHeight")
            page.set_viewport_size({"width": 1280, "height": height})
            page.mouse.move(0, 0)  # no hover effect in the picture
            page.screenshot(path=OUT / "demo-your-privacy.png")
            context.close()

            # The auditor's overview, the chain verified.
            context = browser.new_context(
                **desktop, http_credentials={"username": AUDIT_USER, "password": AUDIT_PASSWORD}
            )
            page = context.new_page()
            page.goto("/consent/audit")
            with page.expect_navigation():
                page.get_by_role("button", name="Verify the chain now").click()
            page.get_by_text("intact").wait_for()
            page.mouse.move(0, 0)
            page.screenshot(path=OUT / "audit-overview.png", full_page=True)
            context.close()

            browser.close()
    for name in ("demo-home.png", "demo-your-privacy.png", "audit-overview.png"):
        print(OUT / name)


if __name__ == "__main__":
    main()
