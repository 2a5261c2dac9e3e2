"""The demo site, Northwind Telecom, end to end in a real browser (Debian's headless Chromium).

Each test serves the demo as `make demo` builds it — ``create_app`` with an SQLite ledger in
``tmp_path`` and an auditor's password — with uvicorn on 127.0.0.1, and sends each visitor in a
fresh browser context with the site's Content-Security-Policy enforced (only the axe-core runs
bypass it, to add axe's script). It asserts what the visitor or the auditor sees, and what the
consent ledger (read from its file with ``consentkit.open_ledger``), the analytics hook's page
views (``<ledger>-analytics.db``) and the browser's cookie jar then hold.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import axe_violations, deciding, live_server
from conftest import run_sync

from consentkit import LedgerRecord, open_ledger
from consentkit.ledger.records import EXPORT_FIELDS
from consentkit.spreadsheets import inert
from demo_site.account import ACCOUNT_ID, MARKETING_CHANNELS, MARKETING_WORDING, sha256
from demo_site.app import AUDIT_USER, create_app

AUDIT_PASSWORD = "northwind-auditor-browser-tests"
AUDIT = "/consent/audit"
REVISED = "Our cookie policy changed on 2026-12-01. Please choose again."

# The widget's markup (widget/README.md) and the demo's own.
BANNER = "[data-ck-banner]"
SETTINGS = "[data-ck-settings]"
DIALOG = "dialog.ck-dialog"
AD_SLOT = "[data-ad-slot]"

ALL_TYPES = ("ad_personalization", "ad_storage", "ad_user_data", "analytics_storage")
TRACKING_COOKIES = {"_ga", "_gcl_au", "nw_fpid"}  # analytics.js, ads.js, the server's page views


# -- the demo and its visitors ---------------------------------------------------------------------


@dataclass
class Demo:
    """The demo on a live server: its URL, its ledger's URL and its page-view file."""

    url: str
    ledger_url: str
    page_views_file: Path

    def records(self, subject: str | None = None) -> list[LedgerRecord]:
        """Every record in the ledger (of ``subject``), read from the file as an auditor would."""

        async def read() -> list[LedgerRecord]:
            ledger = open_ledger(self.ledger_url, create=False)
            try:
                if subject is not None:
                    return await ledger.history(subject)
                return [r async for r in ledger.records()]
            finally:
                await ledger.close()

        return list(run_sync(read()))

    def page_views(self) -> list[tuple[str, str | None, int]]:
        """``(path, nw_fpid, policy revision)`` of every page view the analytics hook wrote."""
        if not self.page_views_file.exists():
            return []
        with closing(sqlite3.connect(self.page_views_file)) as db:
            return db.execute("SELECT path, visitor, policy_revision FROM page_views ORDER BY id").fetchall()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = create_app(
        ledger=ledger_url, audit_password=AUDIT_PASSWORD, secret_keys=[secrets.token_urlsafe(32)]
    )
    with live_server(app) as url:
        yield Demo(url, ledger_url, tmp_path / "ledger-analytics.db")


@dataclass
class Visitors:
    """``visitors.new(**context_options)``: a page in a fresh browser context on the demo."""

    browser: Any
    url: str
    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def new(self, **options: Any) -> Any:
        options.setdefault("locale", "en-US")
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = self.browser.new_context(base_url=self.url, **options)
        context.set_default_timeout(5000)
        self.contexts.append(context)
        page = context.new_page()
        # Script errors and CSP refusals (console errors) are bugs of the site: tests check them.
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda m: self._console(page, m))
        return page

    def _console(self, page: Any, message: Any) -> None:
        # The browser's own /favicon.ico request (the audit desk has no icon) is not the site's.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{page.url}: {message.text} ({message.location.get('url')})")


@pytest.fixture
def visitors(chromium: Any, demo: Demo) -> Iterator[Visitors]:
    crowd = Visitors(chromium, demo.url)
    yield crowd
    for context in crowd.contexts:
        context.close()


# -- helpers ----------------------------------------------------------------------------------------


def visit(page: Any, path: str = "/") -> Any:
    """Load ``path`` and wait for the widget to have started."""
    response = page.goto(path)
    page.wait_for_function("() => !!window.consentkit")
    return response


def first_layer(page: Any, name: str) -> Any:
    """Accept all / Reject all / Customize of the banner, by visible text."""
    exact = re.compile(rf"^\s*{re.escape(name)}\s*$")
    return (
        page.locator(f"{BANNER} .ck-first-layer")
        .locator(":is(button, summary):visible")
        .filter(has_text=exact)
    )


def data_layer(page: Any) -> list[Any]:
    """``window.dataLayer``, each gtag ``arguments`` as a list, each tag event as its name."""
    return page.evaluate(
        "() => dataLayer.map(e => e && typeof e.length === 'number' ? Array.from(e) : e.event)"
    )


def tag_events(page: Any) -> list[str]:
    """The events the site's own tags pushed (``page_view`` from analytics.js, ``ads_ready``)."""
    return [e for e in data_layer(page) if isinstance(e, str)]


def consent_calls(page: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e[1], e[2]) for e in data_layer(page) if isinstance(e, list) and e[:1] == ["consent"]]


def only_denied_defaults(page: Any) -> bool:
    """Consent Mode has only its defaults: one per region list of the demo's [regions] (the
    visitor is in none of them), then the general one, which denies every type."""
    calls = consent_calls(page)
    general = calls[-1][1] if calls else {}
    return (
        bool(calls)
        and all(c == "default" for c, _ in calls)
        and "region" not in general
        and all(general.get(t) == "denied" for t in ALL_TYPES)
    )


def after_defaults(page: Any) -> list[tuple[str, dict[str, Any]]]:
    """The Consent Mode commands after the defaults (the general one is the last default)."""
    calls = consent_calls(page)
    n = next((i for i, (c, _) in enumerate(calls) if c != "default"), len(calls))
    assert n and calls[n - 1] == ("default", {**consent_mode(()), "wait_for_update": 500}), calls
    return calls[n:]


def consent_mode(granted: tuple[str, ...]) -> dict[str, str]:
    return {t: "granted" if t in granted else "denied" for t in ALL_TYPES}


def cookie_names(page: Any) -> set[str]:
    return {c["name"] for c in page.context.cookies()}


def own_state(page: Any) -> dict[str, Any]:
    """``GET /consent`` with the visitor's cookies."""
    return dict(page.request.get("/consent").json())


def ad_state(page: Any) -> str | None:
    return page.locator(f"{AD_SLOT} [data-ad-state]").get_attribute("data-ad-state")


def statuses(page: Any) -> dict[str, str]:
    """/your-privacy's "Your choices now": purpose id -> On / Off / Always on."""
    cells = page.locator("td[data-purpose]")
    return {c.get_attribute("data-purpose"): c.inner_text().strip() for c in cells.all()}


def history_rows(page: Any) -> list[dict[str, str]]:
    """/your-privacy's history table as the visitor reads it, newest first."""
    rows = []
    for row in page.locator("#history tbody tr").all():
        cells = [c.inner_text().strip() for c in row.locator("td").all()]
        rows.append(
            {
                "what": cells[1],
                "allowed": cells[2],
                "how": cells[3],
                "policy": cells[4],
                "receipt": row.locator("code.receipt").inner_text(),
                "current": "current" if row.locator(".tag-on").count() else "",
            }
        )
    return rows


def assert_no_violations(page: Any, where: str) -> None:
    violations = axe_violations(page)
    if violations:
        print(f"axe-core violations on {where}:\n{json.dumps(violations, indent=2)}")
    assert violations == [], f"axe-core found WCAG 2.2 A/AA violations on {where}: {json.dumps(violations)}"


def decide_over_http(url: str, action: str, granted: list[str] | None = None) -> None:
    """One more visitor deciding, as the widget posts it (JSON from the site's own origin)."""
    body: dict[str, Any] = {"action": action}
    if granted is not None:
        body["granted"] = granted
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as visitor:
        r = visitor.post("/consent", json=body, headers={"origin": url})
        assert r.status_code == 200, r.text


def opt_in_to_sms(url: str) -> None:
    """The demo's customer opts in to SMS offers on /account (the form's own post)."""
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as customer:
        r = customer.post("/account/marketing", data={"granted": ["sms_marketing"]}, headers={"origin": url})
        assert r.status_code == 303, r.text


# -- 1. Accept all ----------------------------------------------------------------------------------


def test_accept_all_shows_the_ad_starts_the_tags_and_counts_page_views(demo, visitors):
    page = visitors.new()
    visit(page, "/")
    assert page.locator(BANNER).is_visible()
    assert ad_state(page) == "off" and "Ads are off" in page.locator(AD_SLOT).inner_text()
    assert only_denied_defaults(page)
    assert cookie_names(page) == set(), "nothing but necessary cookies before a choice (and none here)"
    page.evaluate("() => { window.sameDocument = true; }")

    with deciding(page):
        first_layer(page, "Accept all").click()

    # Without a reload: the ad tag fills the slot, the analytics tag runs, Consent Mode updates.
    page.locator(f"{AD_SLOT} [data-ad-state=on]").wait_for()
    assert "Harbour Headsets" in page.locator(AD_SLOT).inner_text()
    assert page.evaluate("() => window.sameDocument") is True
    assert page.locator(BANNER).count() == 0 and page.locator(SETTINGS).is_visible()
    page.wait_for_function("() => dataLayer.some(e => e.event === 'ads_ready')")
    assert after_defaults(page) == [("update", consent_mode(ALL_TYPES))]
    assert sorted(tag_events(page)) == ["ads_ready", "page_view"], "each tag ran once"
    assert {"consentkit", "_ga", "_gcl_au"} <= cookie_names(page)

    [record] = demo.records()
    assert (record.action, record.method, record.policy_revision) == ("accept_all", "banner", 1)
    assert record.purposes == {"necessary": True, "analytics": True, "ads": True}
    assert own_state(page)["receipt"] == record.receipt
    assert demo.page_views() == [], "the page where the visitor decided was viewed before the choice"

    # The next pages: the server-side ad, the first-party cookie, and page views kept.
    visit(page, "/plans")
    fpid = next(c["value"] for c in page.context.cookies() if c["name"] == "nw_fpid")
    visit(page, "/")
    assert ad_state(page) == "on", "the server-side include of /ads/slot shows the ad"
    assert [c for c, _ in after_defaults(page)] == ["update"]
    assert demo.page_views() == [("/plans", None, 1), ("/", fpid, 1)]
    assert visitors.errors == []


# -- 2. Reject all ----------------------------------------------------------------------------------


def test_reject_all_keeps_ads_off_counts_nothing_and_the_firewall_drops_the_cookie(demo, visitors):
    page = visitors.new()
    visit(page, "/")
    with deciding(page):
        first_layer(page, "Reject all").click()

    assert consent_calls(page)[-1] == ("update", consent_mode(()))
    [record] = demo.records()
    assert (record.action, record.method) == ("reject_all", "banner")
    assert record.purposes == {"necessary": True, "analytics": False, "ads": False}

    page.wait_for_timeout(300)  # time for a tag that should not run
    assert ad_state(page) == "off"
    assert page.locator("script[data-consent][type='text/plain']").count() == 2, "both tags stay inert"
    assert tag_events(page) == [], "no tag ran"

    response = visit(page, "/plans")
    set_cookies = [h["value"] for h in response.headers_array() if h["name"].lower() == "set-cookie"]
    assert not any(v.startswith("nw_fpid=") for v in set_cookies), set_cookies
    visit(page, "/")
    assert (
        ad_state(page) == "off"
        and "You have not allowed targeted advertising" in page.locator(AD_SLOT).inner_text()
    )
    assert cookie_names(page) == {"consentkit"}
    assert demo.page_views() == [], "no page view without analytics consent"

    # /demo shows the firewall's count: the Set-Cookie of "/" (before the choice), "/plans" and "/".
    page.goto("/demo")
    firewall = page.locator("section[aria-labelledby=firewall-title]").inner_text()
    assert "Revision 1: 3 cookies dropped" in firewall, firewall
    assert visitors.errors == []


# -- 3. Customize --------------------------------------------------------------------------------


def test_customize_analytics_only_then_the_settings_show_the_saved_choice(demo, visitors):
    page = visitors.new()
    visit(page, "/")
    first_layer(page, "Customize").click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    analytics = dialog.get_by_role("switch", name="Analytics")
    ads = dialog.get_by_role("switch", name="Targeted advertising")
    assert not analytics.is_checked() and not ads.is_checked()
    analytics.check()
    with deciding(page):
        dialog.get_by_role("button", name="Save choices").click()

    [record] = demo.records()
    assert (record.action, record.method) == ("save", "preferences")
    assert record.purposes == {"necessary": True, "analytics": True, "ads": False}
    assert consent_calls(page)[-1] == ("update", consent_mode(("analytics_storage",)))
    page.wait_for_function("() => dataLayer.some(e => e.event === 'page_view')")
    assert tag_events(page) == ["page_view"] and ad_state(page) == "off"

    # The Cookie settings control, here and on the next page, opens on the saved state.
    for path in (None, "/plans"):
        if path:
            visit(page, path)
        page.locator(SETTINGS).click()
        dialog.wait_for(state="visible")
        assert dialog.get_by_role("switch", name="Strictly necessary").is_checked()
        assert dialog.get_by_role("switch", name="Analytics").is_checked(), path
        assert not dialog.get_by_role("switch", name="Targeted advertising").is_checked(), path
        page.keyboard.press("Escape")
        dialog.wait_for(state="detached")

    visit(page, "/your-privacy")
    assert statuses(page) == {"necessary": "Always on", "analytics": "On", "ads": "Off"}
    assert page.locator("#choice-analytics").is_checked() and not page.locator("#choice-ads").is_checked()
    assert cookie_names(page) >= {"consentkit", "_ga", "nw_fpid"} and "_gcl_au" not in cookie_names(page)
    assert len(demo.records()) == 1, "looking at the settings decided nothing"
    assert visitors.errors == []


# -- 4. Withdraw on "Your privacy" ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["one-click button", "cookie settings"])
def test_withdraw_on_your_privacy_expires_the_cookies_and_shows_the_history(demo, visitors, how):
    page = visitors.new()
    visit(page, "/")
    with deciding(page):
        first_layer(page, "Accept all").click()
    visit(page, "/plans")  # the server sets nw_fpid now
    assert TRACKING_COOKIES | {"consentkit"} <= cookie_names(page)

    fpid = next(c["value"] for c in page.context.cookies() if c["name"] == "nw_fpid")
    visit(page, "/your-privacy")
    assert statuses(page) == {"necessary": "Always on", "analytics": "On", "ads": "On"}
    [accepted] = demo.records()
    assert [(r["what"], r["receipt"], r["current"]) for r in history_rows(page)] == [
        ("Accepted all", accepted.receipt, "current")
    ]

    if how == "one-click button":  # the page's own plain form
        with page.expect_navigation():
            page.locator("#withdraw-form").get_by_role("button", name="Withdraw my consent").click()
    else:  # the widget's preference center; the page reloads on the widget's "change"
        page.get_by_role("link", name="Open cookie settings").click()
        dialog = page.locator(DIALOG)
        dialog.wait_for(state="visible")
        with page.expect_navigation():
            dialog.get_by_role("button", name="Withdraw my consent").click()
    page.wait_for_function("() => !!window.consentkit")
    assert page.url == f"{demo.url}/your-privacy"

    records = demo.records()
    assert [(r.action, r.method) for r in records] == [
        ("accept_all", "banner"),
        ("withdraw", "no_js_form" if how == "one-click button" else "preferences"),
    ]
    withdrawal = records[1]
    assert withdrawal.purposes == {"necessary": True, "analytics": False, "ads": False}
    assert withdrawal.subject_id == accepted.subject_id

    # The analytics and ad cookies the browser held are gone; the consent cookie stays.
    assert cookie_names(page) == {"consentkit"}, page.context.cookies()

    # The page shows the new state and every record, newest first, with the ledger's receipts.
    assert statuses(page) == {"necessary": "Always on", "analytics": "Off", "ads": "Off"}
    assert f"Receipt of this choice: {withdrawal.receipt}" in page.locator("main").inner_text()
    rows = history_rows(page)
    assert [r["receipt"] for r in rows] == [r.receipt for r in reversed(records)]
    assert [(r["what"], set(r["allowed"].split(", ")), r["how"], r["current"]) for r in rows] == [
        (
            "Withdrew consent",
            {"Strictly necessary"},
            "Form" if how == "one-click button" else "Cookie settings",
            "current",
        ),
        ("Accepted all", {"Strictly necessary", "Analytics", "Targeted advertising"}, "Cookie banner", ""),
    ]
    assert {r["policy"] for r in rows} == {"rev. 1 (2026-11-01)"}
    own = page.request.get("/consent/history").json()
    assert [r["receipt"] for r in own["records"]] == [r.receipt for r in records]

    visit(page, "/plans")
    assert demo.page_views() == [("/plans", None, 1), ("/your-privacy", fpid, 1)], (
        "no page view after the withdrawal"
    )
    assert "nw_fpid" not in cookie_names(page), "and the firewall keeps the cookie out"
    assert visitors.errors == []


# -- 5. SMS opt-in on the account page -----------------------------------------------------------


def test_sms_opt_in_keeps_the_wording_shown_and_unticking_withdraws(demo, visitors):
    page = visitors.new()
    visit(page, "/account")
    marketing = page.locator("#marketing")
    shown = marketing.locator("#marketing-wording").inner_text()
    assert shown == MARKETING_WORDING
    sms = marketing.get_by_label(MARKETING_CHANNELS["sms_marketing"])
    email = marketing.get_by_label(MARKETING_CHANNELS["email_marketing"])
    assert not sms.is_checked() and not email.is_checked(), "CASL: never ticked in advance"
    assert page.get_by_text("No consent recorded for this account yet.").is_visible()

    sms.check()
    with page.expect_navigation():
        marketing.get_by_role("button", name="Save").click()
    assert page.url.endswith("/account?done=marketing-saved#marketing")
    assert "Thank you: your consent is recorded" in marketing.get_by_role("status").inner_text()

    [given] = demo.records(ACCOUNT_ID)
    assert (given.action, given.method) == ("record", "api")
    assert given.purposes == {"sms_marketing": True, "email_marketing": False}
    evidence = given.evidence
    assert evidence["wording"] == shown, "exactly the wording on the page"
    assert evidence["wording_sha256"] == sha256(shown)
    assert evidence["checkbox_labels"] == {"sms_marketing": sms.evaluate("e => e.labels[0].textContent")}
    assert evidence["checkbox_prechecked"] is False
    assert (evidence["channel"], evidence["form"]) == ("web_form", "/account")
    assert evidence["user_agent"] == page.evaluate("() => navigator.userAgent")
    assert evidence["ip_prefix"] == "127.0.0.0/24"

    assert sms.is_checked() and not email.is_checked()
    assert given.receipt in marketing.inner_text(), "the receipt next to the box"
    table = page.locator("#account-records")
    assert table.locator("code.receipt").all_inner_texts() == [given.receipt]
    assert sha256(shown)[:16] in table.inner_text()

    sms.uncheck()
    with page.expect_navigation():
        marketing.get_by_role("button", name="Save").click()
    assert page.url.endswith("/account?done=marketing-withdrawn#marketing")
    assert "Your consent is withdrawn" in marketing.get_by_role("status").inner_text()
    records = demo.records(ACCOUNT_ID)
    assert [r.action for r in records] == ["record", "withdraw"]
    withdrawal = records[1]
    assert withdrawal.purposes == {"sms_marketing": False, "email_marketing": False}
    assert withdrawal.evidence["withdrawn"] == ["sms_marketing"]
    assert withdrawal.evidence["how"] == "unticked box"
    assert not sms.is_checked()
    assert table.locator("code.receipt").all_inner_texts() == [r.receipt for r in reversed(records)]
    assert table.locator("tbody tr").first.locator("td").nth(1).inner_text() == "Withdrawal"
    assert demo.records() == records, "nothing else was recorded (no cookie choice was made)"
    assert visitors.errors == []


# -- 6. A new policy revision ---------------------------------------------------------------------


def test_a_policy_switch_brings_the_banner_back_with_the_revision_notice(demo, visitors):
    page = visitors.new()
    visit(page, "/")
    with deciding(page):
        first_layer(page, "Accept all").click()
    visit(page, "/demo")
    assert page.locator(BANNER).count() == 0

    switch = page.get_by_role("button", name="Switch to revision 2 (2026-12-01)")
    with page.expect_navigation():
        switch.click()
    page.wait_for_function("() => !!window.consentkit")
    assert page.url.endswith("/demo?switched=2")
    assert "Policy revision 2 is now active" in page.locator("main").get_by_role("status").inner_text()

    # The decided visitor is asked again, on every page, with the notice.
    visit(page, "/")
    banner = page.locator(BANNER)
    assert banner.is_visible()
    assert banner.locator(".ck-notice-revised").inner_text() == REVISED
    assert ad_state(page) == "off", "no targeted ads until the visitor agrees to the new policy"
    assert only_denied_defaults(page), "Consent Mode stays denied"
    assert "Consent policy revision 2 (2026-12-01)" in page.locator("footer").inner_text()
    assert own_state(page)["decided"] is False

    # Customize shows the earlier choice pre-filled; nothing is recorded until they choose.
    first_layer(page, "Customize").click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    assert dialog.get_by_role("switch", name="Analytics").is_checked()
    assert dialog.get_by_role("switch", name="Targeted advertising").is_checked()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert len(demo.records()) == 1

    with deciding(page):
        first_layer(page, "Accept all").click()
    page.locator(f"{AD_SLOT} [data-ad-state=on]").wait_for()
    first, second = demo.records()
    assert [(r.action, r.policy_revision, r.policy_version) for r in (first, second)] == [
        ("accept_all", 1, "2026-11-01"),
        ("accept_all", 2, "2026-12-01"),
    ]
    assert first.subject_id == second.subject_id and first.policy_digest != second.policy_digest
    visit(page, "/")
    assert page.locator(BANNER).count() == 0
    assert visitors.errors == []


# -- 7. The auditor's desk ------------------------------------------------------------------------


def test_the_auditor_sees_the_figures_filters_opens_a_record_and_exports_csv(demo, visitors, tmp_path):
    for action, granted in [
        ("accept_all", None),
        ("accept_all", None),
        ("accept_all", None),
        ("reject_all", None),
        ("reject_all", None),
        ("save", ["analytics"]),
    ]:
        decide_over_http(demo.url, action, granted)
    ledger = demo.records()
    assert len(ledger) == 6

    page = visitors.new(http_credentials={"username": AUDIT_USER, "password": AUDIT_PASSWORD})
    response = page.goto(AUDIT)
    assert response.status == 200
    assert page.title() == "Overview — Northwind Telecom Inc."
    figures = dict(
        zip(
            page.locator(".figures dt").all_inner_texts(),
            page.locator(".figures dd").all_inner_texts(),
            strict=True,
        )
    )
    assert figures == {
        "Records": "6",
        "Subjects": "6",
        "Decisions": "6",
        "Decisions with GPC": "0.0%",
        "Consent rate: Analytics": "66.7%",
        "Consent rate: Targeted advertising": "50.0%",
    }
    charts = page.get_by_role("img")
    assert charts.count() == 2
    assert page.get_by_role("img", name="Consent rate per purpose, per day").is_visible()
    assert page.get_by_role("img", name="How visitors decided, per day").is_visible()
    actions = page.locator("table").filter(has=page.get_by_role("columnheader", name="Action"))
    assert actions.locator("tbody tr").all_inner_texts() == ["accept_all\t3", "reject_all\t2", "save\t1"]

    # Records: filter with the form, as the auditor does.
    page.get_by_role("navigation", name="Audit desk").get_by_role("link", name="Records").click()
    assert len(page.locator("table tbody tr").all()) == 6
    page.get_by_label("Action").select_option("reject_all")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert "action=reject_all" in page.url
    rejected = [r for r in ledger if r.action == "reject_all"]
    rows = page.locator("table tbody tr")
    assert [row.locator("td").nth(3).inner_text() for row in rows.all()] == ["reject_all", "reject_all"]
    assert rows.locator("td:first-child a").all_inner_texts() == [str(r.seq) for r in reversed(rejected)]
    assert rows.locator("td:last-child code").all_inner_texts() == [r.receipt for r in reversed(rejected)]
    filtered = page.url

    # One record in full.
    newest = rejected[-1]
    rows.locator("td:first-child a").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Record {newest.seq}"
    detail = {
        th.inner_text(): td.inner_text()
        for th, td in zip(
            page.locator("main table th").all(), page.locator("main table td").all(), strict=True
        )
    }
    assert detail["Receipt"] == newest.receipt and detail["Hash"] == newest.hash
    assert detail["Action"] == "reject_all" and detail["Method"] == "banner"
    assert sorted(detail["Decision"].split("\n")) == [
        "ads: refused",
        "analytics: refused",
        "necessary: granted",
    ]
    assert detail["Subject"].startswith(newest.subject_id)
    assert "Northwind Telecom Inc." in page.locator("pre").last.inner_text(), "the policy text shown"

    # The CSV export of the filtered records.
    page.goto(filtered)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export these as CSV").click()
    download = download_info.value
    assert re.fullmatch(r"consent-ledger-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(newline="", encoding="utf-8") as f:
        exported = list(csv.reader(f))
    assert tuple(exported[0]) == EXPORT_FIELDS
    # Cells that could start a spreadsheet formula (a subject id may start with "-") come with
    # a "'" before them: the export is for opening in a spreadsheet.
    assert [dict(zip(EXPORT_FIELDS, row, strict=True)) for row in exported[1:]] == [
        {
            **{k: inert("" if v is None else str(v)) for k, v in zip(EXPORT_FIELDS, r.row(), strict=True)},
            "gpc": "false",
        }
        for r in rejected
    ]

    # Wrong or no credentials: 401, and the desk's access log keeps every attempt. (Headless
    # Chromium's navigation ends in ERR_INVALID_AUTH_CREDENTIALS instead of showing the 401
    # page, so ask with each context's own request client, which answers the challenge with the
    # context's credentials as the browser does.)
    for credentials in ({"username": AUDIT_USER, "password": "not-the-password"}, None):
        intruder = visitors.new(http_credentials=credentials)
        response = intruder.request.get(AUDIT)
        assert response.status == 401, credentials
        assert response.text() == "sign in to the consent audit desk\n"
        assert response.headers["www-authenticate"].startswith("Basic ")
    page.goto(f"{AUDIT}/access")
    log = [row.split("\t") for row in page.locator("table tbody tr").all_inner_texts()]
    assert ["auditor", "127.0.0.0/24", f"GET /consent/audit/records/{newest.seq}", "200"] in [
        row[1:] for row in log
    ]
    refused = [row for row in log if row[4] == "401"]
    assert len(refused) >= 2 and {row[1] for row in refused} == {"–"}, log
    assert visitors.errors == []


def test_the_consent_rate_chart_shows_the_rates_of_a_single_day(demo, visitors):
    decide_over_http(demo.url, "accept_all")
    decide_over_http(demo.url, "save", ["analytics"])
    page = visitors.new(http_credentials={"username": AUDIT_USER, "password": AUDIT_PASSWORD})
    assert page.goto(AUDIT).status == 200
    chart = page.locator("svg.chart").first
    # One day of records: each purpose is a visible point (analytics 100%, ads 50%).
    points = chart.locator("circle")
    assert points.count() == 2
    titles = sorted(t.text_content() or "" for t in chart.locator("circle > title").all())
    assert titles[0].endswith(": 100.0%") and titles[1].endswith(": 50.0%"), titles
    for i in range(points.count()):
        box = points.nth(i).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0


@pytest.mark.parametrize("path", ["/", "/plans", "/your-privacy", "/account", "/demo"])
def test_demo_pages_have_no_wcag_violations(demo, visitors, path):
    opt_in_to_sms(demo.url)
    page = visitors.new(bypass_csp=True)
    visit(page, path)
    assert_no_violations(page, f"{path} (undecided)")
    # Decide on /plans (a page that does not reload itself afterwards, as /your-privacy does),
    # which also makes a page view for the table on /demo.
    visit(page, "/plans")
    with deciding(page):
        first_layer(page, "Accept all").click()
    visit(page, path)
    assert_no_violations(page, f"{path} (decided)")


@pytest.mark.parametrize("path", ["/", "/plans", "/your-privacy", "/account", "/demo"])
def test_demo_pages_on_a_phone_have_no_wcag_violations(demo, visitors, path):
    opt_in_to_sms(demo.url)
    page = visitors.new(bypass_csp=True, viewport={"width": 390, "height": 844})
    visit(page, path)
    assert_no_violations(page, f"{path} (undecided, 390 px)")
    visit(page, "/plans")
    with deciding(page):
        first_layer(page, "Accept all").click()
    visit(page, path)
    assert_no_violations(page, f"{path} (decided, 390 px)")


AUDIT_PAGES = [
    pytest.param(AUDIT, id="overview"),
    pytest.param(f"{AUDIT}/records", id="records"),
    pytest.param(f"{AUDIT}/records?action=reject_all", id="records-filtered"),
    pytest.param(f"{AUDIT}/access", id="access-log"),
    pytest.param(f"{AUDIT}/records/1", id="record-banner-decision"),
    pytest.param(f"{AUDIT}/records/4", id="record-sms-opt-in"),
]


@pytest.mark.parametrize("path", AUDIT_PAGES)
def test_audit_desk_pages_have_no_wcag_violations(demo, visitors, path):
    for action in ("accept_all", "reject_all", "save"):
        decide_over_http(demo.url, action, ["analytics"] if action == "save" else None)
    opt_in_to_sms(demo.url)
    assert [r.action for r in demo.records()] == ["accept_all", "reject_all", "save", "record"]
    page = visitors.new(
        bypass_csp=True, http_credentials={"username": AUDIT_USER, "password": AUDIT_PASSWORD}
    )
    assert page.goto(path).status == 200
    assert_no_violations(page, path)
