"""Screenshots of the banner for the docs: ``python docs/screenshots.py``.

Starts the example site (``examples/consent.toml``, a Starlette app with ``kit.middleware``, a
throw-away SQLite ledger) on 127.0.0.1 the way the browser tests do, visits it with Debian's
headless Chromium through Playwright, and writes into ``docs/``:

- ``banner.png``       an undecided visitor, 1280x800
- ``preferences.png``  the preference center open (the widget's modal dialog), 1280x800
- ``cookies.png``      ``/consent/cookies`` as a Firefox user sees it, 1280x800
- ``banner-fr.png``    a French-speaking visitor on a phone, 390x844
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import CHROMIUM_ARGS, live_server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from consentkit import ConsentKit, Policy  # noqa: E402

OUT = ROOT / "docs"
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Example Telecom</title>
</head>
<body>
<header><strong>Example Telecom</strong> · <a href="/">Plans</a> · <a href="/privacy">Privacy</a></header>
<main>
<h1>{title}</h1>
<p>Mobile, home internet and TV plans for the whole family. No contract, no surprises.</p>
<ul><li>Mobile 20 GB — $35/month</li><li>Home internet 1 Gbit/s — $60/month</li>
<li>TV, 80 channels — $25/month</li></ul>
</main>
<script type="text/plain" data-consent="analytics">window.analyticsRan = true</script>
</body>
</html>
"""


def app(ledger: str) -> Starlette:
    kit = ConsentKit(
        policy=Policy.from_toml(ROOT / "examples" / "consent.toml"),
        secret_keys=[secrets.token_urlsafe(32)],
        ledger=ledger,
        cookie_secure=False,  # plain http on 127.0.0.1
    )

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(title="Plans"))

    async def privacy(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(title="Privacy policy"))

    return Starlette(routes=[Route("/", home), Route("/privacy", privacy)], middleware=[kit.middleware])


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed (apt-get install chromium)")
    with (
        tempfile.TemporaryDirectory() as tmp,
        live_server(app(f"sqlite:///{Path(tmp) / 'ledger.db'}")) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        desktop = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", "base_url": url}

        context = browser.new_context(**desktop)
        page = context.new_page()
        page.goto("/")
        page.wait_for_function("() => !!window.consentkit")
        page.screenshot(path=OUT / "banner.png")
        page.locator("[data-ck-customize]").click()
        page.locator("dialog.ck-dialog").wait_for(state="visible")
        page.mouse.move(0, 0)  # no hover effect in the picture
        page.screenshot(path=OUT / "preferences.png")
        context.close()

        context = browser.new_context(**desktop, user_agent=FIREFOX_UA)
        page = context.new_page()
        page.goto("/consent/cookies")
        page.screenshot(path=OUT / "cookies.png")
        context.close()

        context = browser.new_context(
            base_url=url,
            locale="fr-CA",
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        page = context.new_page()
        page.goto("/")
        page.wait_for_function("() => !!window.consentkit")
        page.screenshot(path=OUT / "banner-fr.png")
        context.close()

        browser.close()
    for name in ("banner.png", "preferences.png", "cookies.png", "banner-fr.png"):
        print(OUT / name)


if __name__ == "__main__":
    main()
