"""The banner and the widget in a real browser: headless Chromium (Debian's) driven by Playwright.

Each test builds a small Starlette site the way users do — ``Starlette(routes=…,
middleware=[kit.middleware])`` with a SQLite ledger in ``tmp_path`` — serves it with uvicorn on
127.0.0.1 and visits it in a fresh browser context, asserting what a visitor would notice (and
what the ledger then holds). The pages carry ``<script type="text/plain" data-consent=…>`` blocks
that count how often they ran, and a tiny local gtag stub so that ``window.dataLayer`` shows the
Consent Mode calls in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from browser_support import axe_violations, live_server
from browser_support import deciding as support_deciding
from conftest import run_sync
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consentkit.errors import LedgerNotFound
from consentkit.ledger import open_ledger

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Example Telecom</title>
<script src="/gtag.js"></script>
</head>
<body>
<header><a href="/">Example Telecom</a> · <a href="/privacy">Privacy</a></header>
<main>
<h1>{title}</h1>
<p>Mobile, home internet and TV plans. Our site measures its audience and shows ads only if you agree.</p>
</main>
<script type="text/plain" data-consent="analytics">window.analyticsRan=(window.analyticsRan||0)+1</script>
<script type="text/plain" data-consent="ads">window.adsRan=(window.adsRan||0)+1</script>
</body>
</html>
"""

# What a site's Google tag snippet does: queue gtag() calls in dataLayer, then configure.
GTAG_STUB = """window.dataLayer = window.dataLayer || [];
function gtag(){dataLayer.push(arguments);}
gtag('js', 'stub');
gtag('config', 'G-TEST');
"""

ALL_TYPES = ("ad_personalization", "ad_storage", "ad_user_data", "analytics_storage")


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title="Plans"))


async def privacy(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title="Privacy policy"))


async def gtag_js(request: Request) -> Response:
    return Response(GTAG_STUB, media_type="text/javascript")


async def plans(request: Request) -> HTMLResponse:
    """A long page: forty plans, each with a link, as sites have."""
    items = "".join(
        f"<p>Plan {i}: calls, texts and data. <a href='/plans/{i}'>Details of plan {i}</a></p>"
        for i in range(40)
    )
    return HTMLResponse(PAGE.replace("</main>", items + "</main>").format(title="All plans"))


ROUTES = [Route("/", home), Route("/privacy", privacy), Route("/plans", plans), Route("/gtag.js", gtag_js)]

# Selectors of the server-rendered banner (the markup contract in widget/README.md).
BANNER = "[data-ck-banner]"
CUSTOMIZE = "[data-ck-customize]"
SETTINGS = "[data-ck-settings]"
DIALOG = "dialog.ck-dialog"


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def site(make_kit: Callable[..., Any]) -> Iterator[str]:
    """The example site on a live uvicorn server; yields its base URL."""
    kit = make_kit()
    app = Starlette(routes=ROUTES, middleware=[kit.middleware])
    with live_server(app) as url:
        yield url


@pytest.fixture
def new_page(chromium: Any, site: str) -> Iterator[Callable[..., Any]]:
    """``new_page(**context_options)``: a page in a fresh browser context on the site."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("locale", "en-US")
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = chromium.new_context(base_url=site, **options)
        context.set_default_timeout(5000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def records(ledger_url: str) -> Callable[[], list[Any]]:
    """``records()``: every record in the site's ledger, read from the file as an auditor would."""

    def read() -> list[Any]:
        async def go() -> list[Any]:
            ledger = open_ledger(ledger_url, create=False)
            try:
                return [r async for r in ledger.records()]
            finally:
                await ledger.close()

        try:
            return list(run_sync(go()))
        except LedgerNotFound:  # nothing was ever written
            return []

    return read


def visit(page: Any, path: str = "/") -> Any:
    """Load ``path`` and wait for the widget to have started."""
    response = page.goto(path)
    page.wait_for_function("() => !!window.consentkit")
    return response


def first_layer(page: Any, name: str) -> Any:
    """One of the banner's three first-layer controls by its visible text.

    Accept all and Reject all are buttons, Customize the ``<summary>`` of a ``<details>``; the
    preference form's own buttons are hidden while it is closed and do not count.
    """
    exact = re.compile(rf"^\s*{re.escape(name)}\s*$")
    return (
        page.locator(f"{BANNER} .ck-first-layer")
        .locator(":is(button, summary):visible")
        .filter(has_text=exact)
    )


def layout_shift(page: Any) -> float:
    """The page's cumulative layout shift so far, of the page's own content (the banner must never
    move it). Shifts inside the fixed banner itself (the widget enhancing it after the first paint,
    early or late depending on the machine's load) are not the page's content moving."""
    return float(
        page.evaluate(
            """() => new Promise(done => {
                let total = 0;
                const inBanner = s => {
                    const banner = document.getElementById("consentkit");
                    return Boolean(s.node && banner && banner.contains(s.node));
                };
                new PerformanceObserver(list => {
                    for (const e of list.getEntries()) if (!e.sources.every(inBanner)) total += e.value;
                })
                    .observe({type: "layout-shift", buffered: true});
                setTimeout(() => done(total), 100);
            })"""
        )
    )


def counters(page: Any) -> dict[str, Any]:
    """How often the analytics and the ads script ran in this page (None: never)."""
    return page.evaluate("() => ({analytics: window.analyticsRan ?? null, ads: window.adsRan ?? null})")


def data_layer(page: Any) -> list[Any]:
    """``window.dataLayer`` with each gtag ``arguments`` object as a list."""
    return page.evaluate(
        "() => (window.dataLayer || []).map(e => e && typeof e.length === 'number' ? Array.from(e) : e)"
    )


def consent_calls(page: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e[1], e[2]) for e in data_layer(page) if isinstance(e, list) and e[:1] == ["consent"]]


@contextmanager
def deciding(page: Any) -> Iterator[None]:
    """``browser_support.deciding``, and the banner is gone afterwards."""
    with support_deciding(page):
        yield
    assert page.locator(BANNER).count() == 0


def focused(page: Any, selector: str) -> bool:
    return bool(page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector))


def focus_in_dialog(page: Any) -> bool:
    return bool(
        page.evaluate(
            "s => { const d = document.querySelector(s); return !!d && d.open && d.contains(document.activeElement); }",
            DIALOG,
        )
    )


def focus_ring(page: Any) -> str:
    """The focused element's outline, as the visitor sees it ("none" if there is none)."""
    return str(
        page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle === 'none' || parseFloat(s.outlineWidth) === 0"
            " ? 'none' : `${s.outlineWidth} ${s.outlineStyle}`; }"
        )
    )


def tab_to(page: Any, selector: str, limit: int = 30) -> None:
    """Press Tab until ``selector`` has the focus (fails after ``limit`` presses)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page, selector):
            return
    pytest.fail(f"{selector} cannot be reached with Tab ({limit} presses)")


def expect_visible(page: Any, selector: str) -> None:
    assert page.locator(selector).first.is_visible(), f"{selector} is not visible"


def consent_cookie(page: Any) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == "consentkit"), None)


def assert_no_violations(page: Any, where: str, context: str | None = None) -> None:
    violations = axe_violations(page, context)
    if violations:
        print(f"axe-core violations {where}:\n{json.dumps(violations, indent=2)}")
    assert violations == [], (
        f"axe-core found WCAG 2.2 A/AA violations {where}: {json.dumps(violations, indent=2)}"
    )


def state(granted: tuple[str, ...]) -> dict[str, str]:
    """The Consent Mode state where the types in ``granted`` are granted and the others denied."""
    return {t: "granted" if t in granted else "denied" for t in ALL_TYPES}


# -- 1. Reject in one click -----------------------------------------------------------------------


def test_reject_all_in_one_click_with_javascript(new_page, records):
    page = new_page()
    visit(page, "/?plan=home")
    expect_visible(page, BANNER)
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads

    with deciding(page):
        first_layer(page, "Reject all").click()

    assert page.evaluate("() => window.sameDocument") is True, "deciding reloaded the page"
    assert layout_shift(page) == 0, "replacing the banner moved the page's content"
    assert page.url.endswith("/?plan=home")
    settings = page.locator(SETTINGS)
    assert settings.inner_text().strip() == "Cookie settings"
    assert focused(page, SETTINGS), "focus moves to the new Cookie settings control"
    cookie = consent_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    [record] = records()
    assert (record.action, record.method) == ("reject_all", "banner")
    assert record.purposes == {"necessary": True, "analytics": False, "ads": False}
    assert counters(page) == {"analytics": None, "ads": None}


def test_reject_all_in_one_click_without_javascript(new_page, records):
    page = new_page(java_script_enabled=False)
    page.goto("/?plan=home")
    expect_visible(page, BANNER)

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        first_layer(page, "Reject all").click()
    page.wait_for_load_state()
    answer = posted.value
    assert answer.status == 303 and answer.headers["location"] == "/?plan=home"
    assert page.url.endswith("/?plan=home"), "the visitor is back on the page they were on"
    assert page.locator(BANNER).count() == 0
    expect_visible(page, SETTINGS)
    assert consent_cookie(page) is not None
    [record] = records()
    assert (record.action, record.method) == ("reject_all", "no_js_form")
    assert record.purposes == {"necessary": True, "analytics": False, "ads": False}


# -- 2. Equal weight --------------------------------------------------------------------------------

STYLE_PROPS = (
    "color",
    "background-color",
    "font-family",
    "font-size",
    "font-weight",
    "font-style",
    "line-height",
    "text-decoration-line",
    "text-transform",
    "letter-spacing",
    "border-top-width",
    "border-top-style",
    "border-top-color",
    "border-bottom-width",
    "border-bottom-color",
    "border-left-color",
    "border-right-color",
    "border-top-left-radius",
    "border-bottom-right-radius",
    "padding-top",
    "padding-left",
    "opacity",
    "box-shadow",
)


@pytest.mark.parametrize("locale", ["en-US", "fr-CA"])
def test_first_layer_buttons_have_equal_size_and_style(new_page, locale):
    names = {
        "en-US": ("Accept all", "Reject all", "Customize"),
        "fr-CA": ("Tout accepter", "Tout refuser", "Personnaliser"),
    }[locale]
    for width in (320, 1280):
        page = new_page(locale=locale, viewport={"width": width, "height": 800})
        visit(page)
        buttons = [first_layer(page, name) for name in names]
        boxes = [b.bounding_box() for b in buttons]
        assert all(boxes), f"{locale} {width}px: a first-layer button is not shown: {boxes}"
        for name, box in zip(names, boxes, strict=True):
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{name} overflows at {width}px"
            assert abs(box["width"] - boxes[0]["width"]) <= 1, f"{locale} {width}px widths differ: {boxes}"
            assert abs(box["height"] - boxes[0]["height"]) <= 1, f"{locale} {width}px heights differ: {boxes}"
        assert boxes[0]["height"] >= 44 - 1, "buttons are at least 44 px high"
        styles = [
            b.evaluate(
                "(e, props) => Object.fromEntries(props.map(p => [p, getComputedStyle(e)[p]]))",
                list(STYLE_PROPS),
            )
            for b in buttons
        ]
        for name, style in zip(names[1:], styles[1:], strict=True):
            differ = {p: (styles[0][p], style[p]) for p in STYLE_PROPS if style[p] != styles[0][p]}
            assert not differ, f"{locale} {width}px: {names[0]!r} and {name!r} look different: {differ}"
        assert layout_shift(page) == 0, f"{locale} {width}px: the banner moved the page's content"
        if width == 320:  # narrow: stacked, one per row
            assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
        else:  # wide: one row
            assert abs(boxes[0]["y"] - boxes[2]["y"]) <= 1
        page.context.close()


# -- 3. Customize and save ------------------------------------------------------------------------


def test_customize_and_save_analytics_only(new_page, records):
    page = new_page()
    visit(page)
    first_layer(page, "Customize").click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    assert dialog.get_attribute("aria-label") == "Cookie preferences"
    necessary = dialog.get_by_role("switch", name="Strictly necessary")
    analytics = dialog.get_by_role("switch", name="Analytics")
    ads = dialog.get_by_role("switch", name="Targeted advertising")
    assert necessary.is_checked() and necessary.is_disabled()
    assert not analytics.is_checked() and not ads.is_checked(), (
        "no switch is on before the visitor turns it on"
    )
    assert counters(page) == {"analytics": None, "ads": None}

    analytics.check()
    with deciding(page):
        dialog.get_by_role("button", name="Save choices").click()

    assert page.locator(DIALOG).count() == 0
    [record] = records()
    assert (record.action, record.method) == ("save", "preferences")
    assert record.purposes == {"necessary": True, "analytics": True, "ads": False}
    assert counters(page) == {"analytics": 1, "ads": None}
    assert page.evaluate("() => window.consentkit.granted.sort()") == ["analytics", "necessary"]


# -- 4. Accessibility ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_axe_violations_banner_dialog_settings_and_cookie_page(new_page, scheme):
    page = new_page(color_scheme=scheme)
    visit(page)
    assert_no_violations(page, "on a page with the banner")

    first_layer(page, "Customize").click()
    page.locator(DIALOG).wait_for(state="visible")
    assert_no_violations(page, "with the preference-center dialog open")

    with deciding(page):
        page.locator(DIALOG).get_by_role("button", name="Reject all").click()
    visit(page)  # a decided visitor's next page
    expect_visible(page, SETTINGS)
    assert_no_violations(page, "with the Cookie settings control")

    page.locator(SETTINGS).click()
    page.locator(DIALOG).wait_for(state="visible")
    assert_no_violations(page, "with the preferences reopened from Cookie settings")

    page.goto("/consent/cookies")
    assert_no_violations(page, "on /consent/cookies")


@pytest.mark.parametrize(
    ("path", "width", "height"),
    [("/plans", 1280, 800), ("/consent/cookies", 390, 844)],
    ids=["plans", "cookies"],
)
def test_keyboard_focus_is_never_hidden_behind_the_banner(new_page, path, width, height):
    page = new_page(viewport={"width": width, "height": height})
    visit(page, path)
    hidden = []
    for _ in range(80):
        page.keyboard.press("Tab")
        where = page.evaluate(
            """() => {
                const el = document.activeElement, banner = document.querySelector(".ck-banner");
                if (banner.contains(el)) return "banner";
                const r = el.getBoundingClientRect(), b = banner.getBoundingClientRect();
                const under = r.top >= b.top && r.bottom <= b.bottom && r.left >= b.left && r.right <= b.right;
                const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return under && banner.contains(top) ? el.textContent.trim() : null;
            }"""
        )
        if where == "banner":
            break
        if where:
            hidden.append(where)
    assert hidden == [], f"{path} at {width}px: focused but entirely hidden behind the banner: {hidden}"


# -- 5. Keyboard only ------------------------------------------------------------------------------


def test_whole_flow_by_keyboard_alone(new_page, records):
    page = new_page()
    visit(page)
    kb = page.keyboard

    tab_to(page, CUSTOMIZE)
    assert focus_ring(page) != "none", "the keyboard focus on Customize is visible"
    kb.press("Enter")
    page.locator(DIALOG).wait_for(state="visible")
    assert focus_in_dialog(page), "focus moves into the dialog"
    assert focused(page, "input.ck-switch[value=analytics]"), (
        "focus starts on the first switch that can change"
    )

    # Tab and Shift+Tab cycle inside the dialog, each focused control visibly so.
    seen = []
    for _ in range(12):
        kb.press("Tab")
        assert focus_in_dialog(page), "Tab left the modal dialog"
        current = page.evaluate("() => document.activeElement.outerHTML.slice(0, 60)")
        assert focus_ring(page) != "none", f"no visible focus on {current}"
        seen.append(current)
    assert len(set(seen)) < len(seen), "Tab cycles through the dialog's controls"
    for _ in range(12):
        kb.press("Shift+Tab")
        assert focus_in_dialog(page), "Shift+Tab left the modal dialog"

    # Space toggles a switch; Escape closes without deciding and undoes the change.
    page.locator(f"{DIALOG} input.ck-switch[value=analytics]").focus()
    kb.press("Space")
    assert page.locator(f"{DIALOG} input.ck-switch[value=analytics]").is_checked()
    kb.press("Escape")
    page.locator(DIALOG).wait_for(state="detached")
    assert records() == [], "closing the dialog decided something"
    assert consent_cookie(page) is None
    expect_visible(page, BANNER)
    assert not page.locator("#ck-b-analytics").is_checked(), "the unsaved switch change was not undone"
    assert focused(page, CUSTOMIZE), "focus returns to Customize"
    assert counters(page) == {"analytics": None, "ads": None}

    # Reopen and save by keyboard.
    kb.press("Enter")
    page.locator(DIALOG).wait_for(state="visible")
    assert focused(page, "input.ck-switch[value=analytics]")
    assert not page.locator(f"{DIALOG} input.ck-switch[value=analytics]").is_checked()
    kb.press("Space")
    for _ in range(15):
        kb.press("Tab")
        if page.evaluate("() => document.activeElement.value") == "save":
            break
    else:
        pytest.fail("Save choices cannot be reached with Tab")
    with deciding(page):
        kb.press("Enter")
    [record] = records()
    assert (record.action, record.method) == ("save", "preferences")
    assert record.purposes == {"necessary": True, "analytics": True, "ads": False}
    assert focused(page, SETTINGS)

    # On the next page the Cookie settings control is reachable by keyboard and reopens the preferences.
    visit(page)
    tab_to(page, SETTINGS)
    assert focus_ring(page) != "none", "the keyboard focus on Cookie settings is visible"
    kb.press("Enter")
    page.locator(DIALOG).wait_for(state="visible")
    assert focus_in_dialog(page)
    assert page.locator(f"{DIALOG} input.ck-switch[value=analytics]").is_checked()
    assert not page.locator(f"{DIALOG} input.ck-switch[value=ads]").is_checked()
    kb.press("Escape")
    page.locator(DIALOG).wait_for(state="detached")
    assert focused(page, SETTINGS)
    assert len(records()) == 1


# -- 6. French -------------------------------------------------------------------------------------


def test_french_visitor_sees_french_and_the_ledger_records_it(new_page, records):
    page = new_page(locale="fr-CA")
    visit(page)
    root = page.locator("#consentkit")
    assert root.get_attribute("lang") == "fr"
    for name in ("Tout refuser", "Tout accepter", "Personnaliser"):
        assert first_layer(page, name).is_visible(), name
    assert page.locator(BANNER).get_by_role("heading").inner_text() == "Vos choix de confidentialité"

    first_layer(page, "Personnaliser").click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    assert dialog.get_attribute("aria-label") == "Préférences de cookies"
    assert dialog.get_by_role("switch", name="Mesure d'audience").is_visible()
    assert dialog.get_by_role("button", name="Enregistrer mes choix").is_visible()
    assert dialog.get_by_role("button", name="Fermer").is_visible()
    page.keyboard.press("Escape")

    with deciding(page):
        first_layer(page, "Tout refuser").click()
    assert page.locator(SETTINGS).inner_text().strip() == "Paramètres des cookies"
    [record] = records()
    assert (record.action, record.locale) == ("reject_all", "fr")


# -- 7. Scripts run only after consent ------------------------------------------------------------


def test_consent_gated_scripts_run_only_after_consent_and_once(new_page):
    page = new_page()
    visit(page)
    assert counters(page) == {"analytics": None, "ads": None}, "a script ran before any decision"
    visit(page)
    assert counters(page) == {"analytics": None, "ads": None}, "a script ran on reload before any decision"

    with deciding(page):
        first_layer(page, "Accept all").click()
    assert counters(page) == {"analytics": 1, "ads": 1}

    page.reload()
    page.wait_for_function("() => !!window.consentkit")
    page.wait_for_load_state("load")
    assert counters(page) == {"analytics": 1, "ads": 1}, (
        "each allowed script runs exactly once on a decided page"
    )

    # Refusing and accepting again in the same page does not run a script a second time.
    for again in ("Reject all", "Accept all"):
        page.locator(SETTINGS).click()
        with deciding(page):
            page.locator(DIALOG).get_by_role("button", name=again).click()
    assert counters(page) == {"analytics": 1, "ads": 1}

    refuser = new_page()
    visit(refuser)
    with deciding(refuser):
        first_layer(refuser, "Reject all").click()
    assert counters(refuser) == {"analytics": None, "ads": None}
    refuser.reload()
    refuser.wait_for_function("() => !!window.consentkit")
    assert counters(refuser) == {"analytics": None, "ads": None}


# -- 8. Consent Mode --------------------------------------------------------------------------------


def test_consent_mode_default_first_then_updates(new_page):
    page = new_page()
    visit(page)
    layer = data_layer(page)
    default = next(i for i, e in enumerate(layer) if e[:2] == ["consent", "default"])
    config = next(i for i, e in enumerate(layer) if e[:1] == ["config"])
    assert default < config, f"Consent Mode default must come before the page's own tag: {layer}"
    assert layer[default][2] == {**state(()), "wait_for_update": 500}
    assert [c for c, _ in consent_calls(page)] == ["default"], "no update before any decision"

    with deciding(page):
        first_layer(page, "Accept all").click()
    assert consent_calls(page)[-1] == ("update", state(ALL_TYPES))

    page.locator(SETTINGS).click()
    with deciding(page):
        page.locator(DIALOG).get_by_role("button", name="Reject all").click()
    assert consent_calls(page)[-1] == ("update", state(()))

    page.locator(SETTINGS).click()
    page.locator(DIALOG).get_by_role("switch", name="Analytics").check()
    with deciding(page):
        page.locator(DIALOG).get_by_role("button", name="Save choices").click()
    calls = consent_calls(page)
    assert calls[-1] == ("update", state(("analytics_storage",)))
    assert [c for c, _ in calls] == ["default", "update", "update", "update"], "one update per decision"

    # A decided visitor's page: default, then the matching update at load, before the tag.
    visit(page)
    layer = data_layer(page)
    kinds = [e[1] if e[:1] == ["consent"] else e[0] for e in layer]
    assert kinds[:3] == ["default", "update", "js"] and "config" in kinds, layer
    assert consent_calls(page) == [
        ("default", {**state(()), "wait_for_update": 500}),
        ("update", state(("analytics_storage",))),
    ]


# -- 9. Global Privacy Control ---------------------------------------------------------------------


def test_gpc_notice_and_ads_switch_off(new_page, records):
    page = new_page(extra_http_headers={"Sec-GPC": "1"})
    visit(page)
    notice = page.locator(f"{BANNER} [data-ck-gpc]")
    assert notice.is_visible()
    assert "Global Privacy Control" in notice.inner_text() and "Targeted advertising" in notice.inner_text()

    first_layer(page, "Customize").click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    ads = dialog.get_by_role("switch", name="Targeted advertising")
    assert not ads.is_checked()
    assert "privacy signal" in ads.locator("xpath=..").inner_text()
    dialog.get_by_role("switch", name="Analytics").check()
    with deciding(page):
        dialog.get_by_role("button", name="Save choices").click()
    [record] = records()
    assert record.purposes == {"necessary": True, "analytics": True, "ads": False}
    assert record.gpc is True
    assert counters(page) == {"analytics": 1, "ads": None}


# -- 10. Settings control and withdrawal -----------------------------------------------------------


def test_settings_control_reopens_preferences_and_withdraws(new_page, records):
    page = new_page()
    visit(page)
    with deciding(page):
        first_layer(page, "Accept all").click()

    visit(page)  # a later page of the decided visitor
    assert page.locator(BANNER).count() == 0
    page.get_by_text("Cookie settings", exact=True).click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    assert focus_in_dialog(page)
    assert dialog.get_by_role("switch", name="Analytics").is_checked()
    assert dialog.get_by_role("switch", name="Targeted advertising").is_checked()

    with deciding(page):
        dialog.get_by_role("button", name="Withdraw my consent").click()
    accept, withdraw = records()
    assert accept.action == "accept_all"
    assert (withdraw.action, withdraw.method) == ("withdraw", "preferences")
    assert withdraw.purposes == {"necessary": True, "analytics": False, "ads": False}
    assert consent_calls(page)[-1] == ("update", state(()))

    # The withdrawal holds: the next page runs nothing and the preferences show every switch off.
    visit(page)
    assert counters(page) == {"analytics": None, "ads": None}
    page.locator(SETTINGS).click()
    dialog.wait_for(state="visible")
    assert not dialog.get_by_role("switch", name="Analytics").is_checked()
    assert not dialog.get_by_role("switch", name="Targeted advertising").is_checked()


# -- Beyond the happy path --------------------------------------------------------------------------


def test_preference_center_without_javascript(new_page, records):
    page = new_page(java_script_enabled=False)
    page.goto("/privacy?from=footer")
    first_layer(page, "Customize").click()  # a <details>: the form opens in place
    panel = page.locator(f"{BANNER} .ck-panel")
    assert panel.is_visible()
    panel.get_by_role("switch", name="Targeted advertising").check()
    panel.get_by_role("button", name="Save choices").click()
    page.wait_for_load_state()
    assert page.url.endswith("/privacy?from=footer")

    page.locator(SETTINGS).click()  # the settings control is a <details> too
    settings = page.locator(".ck-settings .ck-panel")
    assert settings.get_by_role("switch", name="Targeted advertising").is_checked()
    settings.get_by_role("button", name="Withdraw my consent").click()
    page.wait_for_load_state()
    assert page.url.endswith("/privacy?from=footer")
    assert [(r.action, r.method, r.purposes["ads"]) for r in records()] == [
        ("save", "no_js_form", True),
        ("withdraw", "no_js_form", False),
    ]


def test_closing_the_dialog_by_its_button_or_the_backdrop_decides_nothing(new_page, records):
    page = new_page()
    visit(page)
    for close in ("button", "backdrop"):
        first_layer(page, "Customize").click()
        dialog = page.locator(DIALOG)
        dialog.wait_for(state="visible")
        dialog.get_by_role("switch", name="Analytics").check()
        if close == "button":
            dialog.get_by_role("button", name="Close").click()
        else:
            page.mouse.click(5, 5)  # outside the dialog box
        dialog.wait_for(state="detached")
        assert not page.locator("#ck-b-analytics").is_checked(), f"closing by the {close} kept the change"
        assert focused(page, CUSTOMIZE), f"focus did not return to Customize after closing by the {close}"
    expect_visible(page, BANNER)
    assert records() == [] and consent_cookie(page) is None
    assert counters(page) == {"analytics": None, "ads": None}


def test_a_refused_decision_changes_nothing_and_says_why(new_page, records):
    page = new_page()
    visit(page)
    message = "The consent ledger cannot be written just now. Please try again."

    def unavailable(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=503, content_type="application/json", body=json.dumps({"message": message}))
        else:
            route.continue_()

    page.route("**/consent", unavailable)
    first_layer(page, "Accept all").click()
    status = page.locator(f"{BANNER} [role=status]").filter(has_text=message)
    status.wait_for(state="visible")
    assert page.locator(f"{BANNER} [role=status]").count() == 1, "one live region, not a new one per answer"
    expect_visible(page, BANNER)
    assert consent_cookie(page) is None and records() == []
    assert counters(page) == {"analytics": None, "ads": None}
    assert [c for c, _ in consent_calls(page)] == ["default"]

    page.unroute("**/consent")
    with deciding(page):
        first_layer(page, "Accept all").click()  # trying again works
    assert [r.action for r in records()] == ["accept_all"]
    assert counters(page) == {"analytics": 1, "ads": 1}


def test_a_network_failure_falls_back_to_the_plain_form(new_page, records):
    page = new_page()
    visit(page, "/?plan=tv")
    # The widget's fetch cannot get through; the browser's own form post still can.
    page.route(
        "**/consent",
        lambda route: route.abort() if route.request.resource_type == "fetch" else route.continue_(),
    )
    with page.expect_navigation():
        first_layer(page, "Reject all").click()
    page.wait_for_function("() => !!window.consentkit")
    assert page.url.endswith("/?plan=tv")
    expect_visible(page, SETTINGS)
    [record] = records()
    assert (record.action, record.method) == ("reject_all", "no_js_form")


def test_a_lost_answer_is_sent_again_with_the_same_key_and_recorded_once(new_page, records):
    page = new_page()
    visit(page)
    keys: list[str | None] = []

    def flaky(route: Any) -> None:
        if route.request.method != "POST":
            return route.continue_()
        keys.append(route.request.headers.get("idempotency-key"))
        # The first answer is lost on the way back: the decision was recorded, the widget never
        # heard. It sends it again with the same key and gets the first outcome.
        response = route.fetch()
        return route.abort() if len(keys) == 1 else route.fulfill(response=response)

    page.route("**/consent", flaky)
    with deciding(page):
        first_layer(page, "Accept all").click()
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    [record] = records()
    assert (record.action, record.method) == ("accept_all", "banner")
    assert counters(page) == {"analytics": 1, "ads": 1}
