"""The demo site, Northwind Telecom.

Most tests build the site in-process (``create_app`` behind ``httpx.ASGITransport``) and use it
the way a visitor without JavaScript does: read the page, submit its form, follow the 303, see
the choice. The last ones start it as `make demo` does (``python -m demo_site``) in a subprocess.
"""

from __future__ import annotations

import html
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import Server, assert_verifies, export_jsonl, free_port

from demo_site.account import (
    ACCOUNT_ID,
    CALL_RECORDING_WORDING,
    MARKETING_CHANNELS,
    MARKETING_WORDING,
    sha256,
)
from demo_site.app import PolicySwitch, create_app, display_url

BASE = "http://testserver"
AUDIT_PASSWORD = "demo-audit-password-for-tests"
PAGES = ("/", "/plans", "/privacy", "/your-privacy", "/account", "/demo")
NAV_PAGES = ("/", "/plans", "/your-privacy", "/account", "/privacy")
STATIC = ("site.css", "logo.svg", "analytics.js", "ads.js", "gtag-demo.js", "site.js")
REVISED = "Our cookie policy changed on 2026-12-01. Please choose again."


# -- reading pages ------------------------------------------------------------------------------


@dataclass
class Form:
    id: str | None
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    checkboxes: dict[str, dict[str, bool]] = field(default_factory=dict)  # value -> checked/disabled


class Forms(HTMLParser):
    """Every ``<form method="post">`` of a page, with the buttons that submit it (``form=`` too)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None
        self._late: list[tuple[str, str, str]] = []  # (form id, name, value) of form= buttons

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "").lower() == "post":
            self._current = Form(a.get("id"), a.get("action", ""))
            self.forms.append(self._current)
        elif tag == "button" and "name" in a and "form" in a:
            self._late.append((a["form"], a["name"], a.get("value", "")))
        elif self._current is not None and tag == "input" and a.get("type") == "hidden":
            self._current.hidden[a["name"]] = a.get("value", "")
        elif self._current is not None and tag == "input" and a.get("type") == "checkbox":
            self._current.checkboxes[a["value"]] = {"checked": "checked" in a, "disabled": "disabled" in a}
        elif self._current is not None and tag == "button" and "name" in a:
            self._current.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def by_id(self, form_id: str) -> Form:
        for form in self.forms:
            if form.id == form_id:
                form.buttons.extend((n, v) for f, n, v in self._late if f == form_id)
                return form
        raise AssertionError(f"no form #{form_id} on the page")

    def by_action(self, action: str) -> Form:
        for form in self.forms:
            if form.action == action:
                return form
        raise AssertionError(f"no form posting to {action} on the page")


def forms(page: str) -> Forms:
    parser = Forms()
    parser.feed(page)
    return parser


def text_of(page: str, element_id: str) -> str:
    """The text of the element with this id (one without child elements), as the visitor reads it."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return html.unescape(match.group(2))


def has_banner(page: str) -> bool:
    return 'id="consentkit"' in page and "data-ck-banner" in page


async def banner_decision(visitor: httpx.AsyncClient, path: str, action: str) -> httpx.Response:
    """Click a first-layer banner button on ``path``, the no-JS way (the page's token, no Origin)."""
    quick = forms((await visitor.get(path)).text).by_id("ck-quick")
    assert (("action", action)) in quick.buttons
    r = await visitor.post(quick.action, data={**quick.hidden, "action": action})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == path
    return r


async def state(visitor: httpx.AsyncClient) -> dict:
    return (await visitor.get("/consent")).json()


# -- the site in-process ------------------------------------------------------------------------


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PolicySwitch]:
    monkeypatch.delenv("CONSENTKIT_SECRET", raising=False)
    monkeypatch.setenv("DEMO_AUDIT_PASSWORD", AUDIT_PASSWORD)
    app = create_app(ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    yield app
    await app.aclose()


def client(app: PolicySwitch, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers)


@pytest.fixture
async def visitor(demo: PolicySwitch) -> AsyncIterator[httpx.AsyncClient]:
    async with client(demo) as c:
        yield c


async def test_every_page_answers_html_with_the_banner_for_an_undecided_visitor(
    visitor: httpx.AsyncClient,
) -> None:
    for path in PAGES:
        r = await visitor.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), path
        page = r.text
        assert page.lstrip().lower().startswith("<!doctype html>"), path
        assert "</html>" in page and '<main id="main"' in page and "<footer" in page, path
        assert has_banner(page), f"{path}: no banner injected"
        for label in ("Accept all", "Reject all", "Customize"):
            assert label in page, (path, label)
        # The CSP nonce of this response is on the tags consentkit injected.
        nonce = re.search(r"'nonce-([^']+)'", r.headers["content-security-policy"]).group(1)
        assert "/consent/static/consent-mode." in page and f'nonce="{nonce}"' in page, path
        # Tags wait for consent; no external asset anywhere.
        assert 'type="text/plain" data-consent="analytics" src="/static/analytics.js"' in page, path
        assert 'type="text/plain" data-consent="ads" src="/static/ads.js"' in page, path
        assert not re.search(r'(?:src|href|action)="(?:https?:)?//', page), path
        assert "Cookie" in r.headers["vary"], path
        set_cookies = r.headers.get_list("set-cookie")
        # Only the (essential) sign-in session; the firewall dropped the analytics cookie.
        assert all(c.startswith("nw_session=") for c in set_cookies), (path, set_cookies)
        assert path != "/account" or set_cookies, "the account page signs the customer in"
    for path in NAV_PAGES:
        assert f'<a href="{path}" aria-current="page">' in (await visitor.get(path)).text
    for name in STATIC:
        assert (await visitor.get(f"/static/{name}")).status_code == 200, name
    assert (await visitor.get("/.well-known/gpc.json")).json()["gpc"] is True
    assert (await state(visitor))["decided"] is False
    assert "consentkit" not in visitor.cookies, "nothing is decided before the visitor decides"


async def test_accept_and_change_and_withdraw_through_the_no_js_forms(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    await banner_decision(visitor, "/plans", "accept_all")
    assert visitor.cookies.get("consentkit")
    r = await visitor.get("/plans")
    assert not has_banner(r.text) and "data-ck-settings" in r.text, "decided: the Cookie settings control"
    assert '<script  src="/static/analytics.js">' in r.text, "the analytics tag runs now"
    assert '<script  src="/static/ads.js">' in r.text
    assert any(c.startswith("nw_fpid=") for c in r.headers.get_list("set-cookie")), "firewall lets it pass"
    assert (await state(visitor))["purposes"] == {"necessary": True, "analytics": True, "ads": True}

    # /your-privacy: its own plain form, the switches showing the current choice.
    page = (await visitor.get("/your-privacy")).text
    assert 'data-purpose="analytics"><strong class="on">On' in page
    choices = forms(page).by_id("choices-form")
    assert choices.action == "/consent" and choices.hidden["next"] == "/your-privacy"
    assert choices.checkboxes["analytics"]["checked"] and choices.checkboxes["ads"]["checked"]
    assert choices.checkboxes["necessary"] == {"checked": True, "disabled": True}
    assert {v for n, v in choices.buttons if n == "action"} == {"save", "accept_all", "reject_all"}
    r = await visitor.post("/consent", data={**choices.hidden, "action": "save", "granted": ["analytics"]})
    assert r.status_code == 303 and r.headers["location"] == "/your-privacy", r.text
    assert (await state(visitor))["purposes"] == {"necessary": True, "analytics": True, "ads": False}
    page = (await visitor.get("/your-privacy")).text
    assert 'data-purpose="ads"><span class="off">Off' in page

    # One-click withdrawal: everything optional off, and the analytics cookie expired.
    withdraw = forms(page).by_id("withdraw-form")
    assert withdraw.buttons == [("action", "withdraw")]
    r = await visitor.post("/consent", data={**withdraw.hidden, "action": "withdraw"})
    assert r.status_code == 303, r.text
    expired = [c for c in r.headers.get_list("set-cookie") if c.startswith("nw_fpid=")]
    assert expired and "max-age=0" in expired[0].lower(), r.headers.get_list("set-cookie")
    assert (await state(visitor))["purposes"] == {"necessary": True, "analytics": False, "ads": False}

    subject = (await state(visitor))["subject_id"]
    records = await demo.kit.ledger.history(subject)
    assert [(r.action, r.method) for r in records] == [
        ("accept_all", "no_js_form"),
        ("save", "no_js_form"),
        ("withdraw", "no_js_form"),
    ]

    # Another visitor refuses from the banner of the home page.
    async with client(demo) as other:
        await banner_decision(other, "/", "reject_all")
        assert (await state(other))["purposes"] == {"necessary": True, "analytics": False, "ads": False}
        home = (await other.get("/")).text
        assert not has_banner(home) and "data-type" not in home
        assert 'type="text/plain" data-consent="analytics"' in home, "the tag stays inert"


async def test_the_analytics_hook_writes_page_views_only_with_consent(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    for path in ("/", "/plans", "/privacy"):
        await visitor.get(path)
    assert await demo.analytics.count() == 0, "undecided: no page view"
    await banner_decision(visitor, "/", "reject_all")
    await visitor.get("/plans")
    assert await demo.analytics.count() == 0, "refused: no page view"

    async with client(demo) as fan:
        await banner_decision(fan, "/", "accept_all")
        await fan.get("/plans")  # sets nw_fpid
        await fan.get("/privacy")
        views = await demo.analytics.recent()
        assert [v.path for v in views] == ["/privacy", "/plans"]
        assert views[0].visitor == fan.cookies["nw_fpid"] and views[0].policy_revision == 1
        demo_page = (await fan.get("/demo")).text
        assert "<code>/privacy</code>" in demo_page and "2 page views kept" in demo_page
    assert demo.analytics.path.name == "ledger-analytics.db", "kept next to the ledger"


async def test_the_ad_slot_shows_the_fallback_without_consent_and_the_ad_with_it(
    visitor: httpx.AsyncClient,
) -> None:
    r = await visitor.get("/ads/slot")
    assert r.status_code == 200 and "Ads are off" in r.text and "Harbour Headsets" not in r.text
    assert (await visitor.get("/ads/slot", headers={"accept": "application/json"})).json()["ad"] is False
    home = (await visitor.get("/")).text
    assert "Ads are off" in home and "Harbour Headsets" not in home
    assert 'href="/your-privacy">Change your choices' in home

    await banner_decision(visitor, "/", "accept_all")
    r = await visitor.get("/ads/slot", headers={"accept": "application/json"})
    assert r.json()["ad"] is True and "Harbour Headsets" in r.json()["html"]
    assert "banner" not in r.text, "JSON for ads.js: nothing injected"
    home = (await visitor.get("/")).text
    assert "Harbour Headsets" in home and "Ads are off" not in home

    # Global Privacy Control turns ads off again (the choice was made without the signal).
    home = (await visitor.get("/", headers={"sec-gpc": "1"})).text
    assert "Ads are off" in home and "Global Privacy Control" in home


async def test_the_sms_opt_in_records_exactly_the_shown_wording(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    page = (await visitor.get("/account")).text
    shown = text_of(page, "marketing-wording")
    assert shown == MARKETING_WORDING
    for needed in ("Northwind Telecom Inc.", "1 Harbour Street", "privacy@northwind.example", "withdraw"):
        assert needed in shown, needed
    form = forms(page).by_action("/account/marketing")
    assert form.checkboxes == {
        "sms_marketing": {"checked": False, "disabled": False},
        "email_marketing": {"checked": False, "disabled": False},
    }, "CASL: boxes are never ticked in advance"
    assert html.escape(MARKETING_CHANNELS["sms_marketing"], quote=False) in page

    # An unchecked submit records nothing.
    r = await visitor.post(form.action, data={**form.hidden, "action": "save"})
    assert r.status_code == 303 and r.headers["location"] == "/account?done=marketing-unchanged#marketing"
    assert await demo.kit.ledger.history(ACCOUNT_ID) == []

    r = await visitor.post(form.action, data={**form.hidden, "action": "save", "granted": "sms_marketing"})
    assert r.status_code == 303 and "marketing-saved" in r.headers["location"], r.text
    [rec] = await demo.kit.ledger.history(ACCOUNT_ID)
    assert (rec.action, rec.method) == ("record", "api")
    assert rec.purposes == {"sms_marketing": True, "email_marketing": False}
    evidence = rec.evidence
    assert evidence["wording"] == shown, "exactly what the customer saw"
    assert evidence["wording_sha256"] == sha256(shown)
    assert evidence["checkbox_labels"] == {"sms_marketing": MARKETING_CHANNELS["sms_marketing"]}
    assert evidence["checkbox_prechecked"] is False
    assert (evidence["channel"], evidence["form"]) == ("web_form", "/account")
    assert evidence["ip_prefix"] == "127.0.0.0/24"

    page = (await visitor.get("/account")).text
    assert rec.receipt in page, "the receipt is shown to the customer"
    form = forms(page).by_action("/account/marketing")
    assert form.checkboxes["sms_marketing"]["checked"] and not form.checkboxes["email_marketing"]["checked"]
    assert ("action", "withdraw") in form.buttons

    # Unticking SMS and saving is a withdrawal.
    r = await visitor.post(form.action, data={**form.hidden, "action": "save"})
    assert "marketing-withdrawn" in r.headers["location"]
    withdrawal = (await demo.kit.ledger.history(ACCOUNT_ID))[-1]
    assert withdrawal.action == "withdraw"
    assert withdrawal.purposes == {"sms_marketing": False, "email_marketing": False}
    assert withdrawal.evidence["withdrawn"] == ["sms_marketing"]

    # E-mail, then the one-click withdrawal button.
    await visitor.post(form.action, data={**form.hidden, "action": "save", "granted": "email_marketing"})
    r = await visitor.post(
        form.action, data={**form.hidden, "action": "withdraw", "granted": "email_marketing"}
    )
    records = await demo.kit.ledger.history(ACCOUNT_ID)
    assert [r.action for r in records] == ["record", "withdraw", "record", "withdraw"]
    assert records[2].purposes == {"sms_marketing": False, "email_marketing": True}
    assert records[3].purposes == {"sms_marketing": False, "email_marketing": False}
    assert records[3].evidence["how"] == "withdraw button"
    page = (await visitor.get("/account")).text
    assert all(r.receipt in page for r in records)
    assert not any(c["checked"] for c in forms(page).by_action("/account/marketing").checkboxes.values())


async def test_the_call_recording_toggle(demo: PolicySwitch, visitor: httpx.AsyncClient) -> None:
    page = (await visitor.get("/account")).text
    shown = text_of(page, "recording-wording")
    assert shown == CALL_RECORDING_WORDING
    form = forms(page).by_action("/account/call-recording")
    assert form.checkboxes == {"call_recording": {"checked": False, "disabled": False}}
    r = await visitor.post(form.action, data={**form.hidden, "granted": "call_recording", "action": "save"})
    assert r.status_code == 303 and "call-recording-saved" in r.headers["location"]
    [on] = await demo.kit.ledger.history(ACCOUNT_ID)
    assert on.action == "record" and on.purposes == {"call_recording": True}
    assert on.evidence["wording"] == shown and on.evidence["wording_sha256"] == sha256(shown)

    page = (await visitor.get("/account")).text
    form = forms(page).by_action("/account/call-recording")
    assert form.checkboxes["call_recording"]["checked"] and on.receipt in page
    r = await visitor.post(form.action, data={**form.hidden, "action": "save"})
    assert "call-recording-withdrawn" in r.headers["location"]
    off = (await demo.kit.ledger.history(ACCOUNT_ID))[-1]
    assert off.action == "withdraw" and off.purposes == {"call_recording": False}
    # The marketing boxes were not touched by it.
    page = (await visitor.get("/account")).text
    assert not forms(page).by_action("/account/call-recording").checkboxes["call_recording"]["checked"]
    assert not any(c["checked"] for c in forms(page).by_action("/account/marketing").checkboxes.values())


async def test_your_privacy_shows_the_receipts_of_the_ledger(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    page = (await visitor.get("/your-privacy")).text
    assert "You have not made a choice yet" in page and "No choice recorded yet" in page
    await banner_decision(visitor, "/your-privacy", "accept_all")
    choices = forms((await visitor.get("/your-privacy")).text).by_id("choices-form")
    await visitor.post("/consent", data={**choices.hidden, "action": "save", "granted": "ads"})
    await visitor.post("/consent", data={**choices.hidden, "action": "reject_all"})

    now = await state(visitor)
    history = await demo.kit.ledger.history(now["subject_id"])
    assert len(history) == 3
    page = (await visitor.get("/your-privacy")).text
    shown = re.findall(r'<code class="receipt">([0-9a-f]{16})</code>', text_of_table(page))
    assert shown == [r.receipt for r in reversed(history)], "newest first, every record"
    assert f'<code class="receipt">{now["receipt"]}</code> <span class="tag tag-on">current</span>' in page
    own = (await visitor.get("/consent/history")).json()
    assert [r["receipt"] for r in own["records"]] == [r.receipt for r in history]
    assert 'href="/consent/history"' in page and "Download my records (JSON)" in page
    assert 'href="#consentkit" data-open-preferences>Open cookie settings' in page
    assert "data-ck-settings" in page, "the preference center it opens"
    assert 'href="/consent/cookies"' in page


def text_of_table(page: str) -> str:
    match = re.search(r'<table class="table" id="history">.*?</table>', page, re.S)
    assert match, "no history table"
    return match.group(0)


async def test_a_policy_switch_asks_a_decided_visitor_again(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    await banner_decision(visitor, "/", "accept_all")
    assert not has_banner((await visitor.get("/")).text)
    assert demo.active == 1

    controls = forms((await visitor.get("/demo")).text).by_action("/demo/policy")
    assert ("revision", "2") in controls.buttons
    r = await visitor.post("/demo/policy", data={**controls.hidden, "revision": "2"})
    assert r.status_code == 303 and r.headers["location"] == "/demo?switched=2"
    assert demo.active == 2 and demo.policy.version == "2026-12-01"

    home = (await visitor.get("/")).text
    assert has_banner(home) and REVISED in home
    assert "Ads are off" in home, "no ads until asked again"
    now = await state(visitor)
    assert now["decided"] is False and now["revision"] == 2
    assert now["previous"] == {"analytics": True, "ads": True}, "earlier choices pre-fill the banner"
    privacy = (await visitor.get("/privacy")).text
    assert "share" in privacy and "revision 2" in privacy

    await banner_decision(visitor, "/", "accept_all")
    assert not has_banner((await visitor.get("/")).text)
    history = await demo.kit.ledger.history(now["subject_id"])
    assert [(r.action, r.policy_revision) for r in history] == [("accept_all", 1), ("accept_all", 2)]
    assert history[0].policy_digest != history[1].policy_digest

    # Bad or forged switches change nothing.
    controls = forms((await visitor.get("/demo")).text).by_action("/demo/policy")
    assert (await visitor.post("/demo/policy", data={**controls.hidden, "revision": "7"})).status_code == 400
    r = await visitor.post("/demo/policy", data={"revision": "1"}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and demo.active == 2
    r = await visitor.post("/demo/policy", data={**controls.hidden, "revision": "1"})
    assert r.status_code == 303 and demo.active == 1


@pytest.mark.parametrize(
    "headers, token",
    [
        ({}, None),
        ({}, "forged.token.value"),
        ({"origin": "https://evil.example"}, "page"),
        ({"sec-fetch-site": "cross-site"}, "page"),
    ],
)
async def test_forged_account_forms_are_refused(
    demo: PolicySwitch, visitor: httpx.AsyncClient, headers: dict[str, str], token: str | None
) -> None:
    form = forms((await visitor.get("/account")).text).by_action("/account/marketing")
    data = {"action": "save", "granted": "sms_marketing"}
    if token is not None:
        data["csrf_token"] = form.hidden["csrf_token"] if token == "page" else token
    r = await visitor.post("/account/marketing", data=data, headers=headers)
    assert r.status_code == 403, r.text
    assert await demo.kit.ledger.history(ACCOUNT_ID) == []
    # From the page's own origin, no token is needed (the browser says where it comes from).
    r = await visitor.post("/account/marketing", data={"granted": "sms_marketing"}, headers={"origin": BASE})
    assert r.status_code == 303
    assert len(await demo.kit.ledger.history(ACCOUNT_ID)) == 1


async def test_the_privacy_policy_is_generated_from_the_policy_in_the_visitors_language(
    demo: PolicySwitch,
) -> None:
    async with client(demo) as en:
        r = await en.get("/privacy")
        page = r.text
        assert r.headers["content-language"] == "en" and '<html lang="en">' in page
        for text in ("Northwind Telecom Inc.", "Strictly necessary", "Analytics", "Targeted advertising"):
            assert text in page, text
        for code in ("nw_session", "_ga", "_ga_*", "nw_fpid", "_gcl_*", "IDE", "analytics_storage"):
            assert f"<code>{code}</code>" in page, code
        ads = page[page.index('id="purpose-ads"') :]
        assert "<code>ad_personalization</code>" in ads and "Honoured" in ads
        analytics = page[page.index('id="purpose-analytics"') : page.index('id="purpose-ads"')]
        assert "Not applicable" in analytics
        assert 'href="/consent/cookies"' in page and 'href="/.well-known/gpc.json"' in page
    async with client(demo, **{"accept-language": "fr-CA,fr;q=0.9,en;q=0.5"}) as fr:
        r = await fr.get("/privacy")
        page = html.unescape(r.text)
        assert r.headers["content-language"] == "fr" and '<html lang="fr">' in page
        for text in ("Politique de confidentialité", "Mesure d'audience", "Publicité ciblée", "Respecté"):
            assert text in page, text
        assert "Tout accepter" in page, "the banner speaks French too"


async def test_the_auditors_desk_takes_the_password_from_the_environment(
    demo: PolicySwitch, visitor: httpx.AsyncClient
) -> None:
    assert (await visitor.get("/consent/audit")).status_code == 401
    assert (await visitor.get("/consent/audit", auth=("auditor", "not the password"))).status_code == 401
    r = await visitor.get("/consent/audit", auth=("auditor", AUDIT_PASSWORD))
    assert r.status_code == 200 and "Northwind Telecom Inc." in r.text
    demo.activate(2)
    assert (await visitor.get("/consent/audit", auth=("auditor", AUDIT_PASSWORD))).status_code == 200


async def test_without_a_password_a_random_one_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEMO_AUDIT_PASSWORD", raising=False)
    passwords = []
    for run in range(2):
        app = create_app(ledger=f"sqlite:///{tmp_path / f'l{run}.db'}")
        printed = re.search(r"user auditor, password (\S+)", capsys.readouterr().out)
        assert printed, "the generated password is printed"
        passwords.append(printed.group(1))
        async with client(app) as auditor:
            r = await auditor.get("/consent/audit", auth=("auditor", printed.group(1)))
            assert r.status_code == 200
        await app.aclose()
    assert passwords[0] != passwords[1] and len(passwords[0]) >= 20


@pytest.mark.postgres
async def test_the_demo_runs_on_a_postgresql_ledger(pg_url: str, tmp_path: Path) -> None:
    app = create_app(ledger=pg_url, audit_password=AUDIT_PASSWORD, analytics_path=tmp_path / "pv.db")
    try:
        async with client(app) as visitor:
            await banner_decision(visitor, "/", "accept_all")
            form = forms((await visitor.get("/account")).text).by_action("/account/marketing")
            await visitor.post(form.action, data={**form.hidden, "granted": "sms_marketing"})
            subject = (await state(visitor))["subject_id"]
            assert [r.action for r in await app.kit.ledger.history(subject)] == ["accept_all"]
            assert [r.action for r in await app.kit.ledger.history(ACCOUNT_ID)] == ["record"]
            assert app.ledger_display in (await visitor.get("/demo")).text
    finally:
        await app.aclose()


def test_ledger_passwords_are_not_shown() -> None:
    assert (
        display_url("postgresql://site:s3cret@db.internal/site") == "postgresql://site:***@db.internal/site"
    )
    assert display_url("sqlite:///demo-ledger.db") == "sqlite:///demo-ledger.db"


# -- in a real browser ----------------------------------------------------------------------------


def test_in_a_browser_tags_wait_for_consent_and_consent_mode_keeps_its_order(
    chromium: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headless Chromium: axe finds nothing on any page; accepting in the banner starts the tags
    without a reload (the ad fills its slot), and the dataLayer reads default, config, update."""
    from browser_support import axe_violations, live_server

    monkeypatch.delenv("CONSENTKIT_SECRET", raising=False)
    app = create_app(ledger=f"sqlite:///{tmp_path / 'ledger.db'}", audit_password=AUDIT_PASSWORD)
    # axe-core is added as an inline script, which the site's Content-Security-Policy forbids.
    context = chromium.new_context(bypass_csp=True)
    errors: list[str] = []
    try:
        with live_server(app) as url:
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            for path in PAGES:
                page.goto(url + path)
                assert axe_violations(page) == [], path
            page.goto(url + "/")
            assert page.locator("[data-ad-slot]").inner_text().startswith("Ads are off")
            page.click("[data-ck-action=accept_all]")
            page.locator("[data-ad-slot] >> text=Harbour Headsets").wait_for(timeout=5000)
            page.wait_for_function("() => dataLayer.some(e => e.event === 'page_view')")
            layer = page.evaluate(
                "() => dataLayer.map(e => e.event || [e[0], typeof e[1] === 'string' ? e[1] : ''].join(' ').trim())"
            )
            # The Consent Mode defaults (one per region list of the demo's [regions], then the
            # general one) before the tag's first command, the update after its config.
            defaults = next(i for i, e in enumerate(layer) if e != "consent default")
            assert defaults >= 1, layer
            assert layer[defaults : defaults + 3] == ["js", "config G-NORTHWIND01", "consent update"], layer
            assert {"page_view", "ads_ready"} <= set(layer[defaults + 3 :]), layer
            assert {"_ga", "_gcl_au", "consentkit"} <= {c["name"] for c in context.cookies()}
            for path in PAGES:
                page.goto(url + path)
                assert axe_violations(page) == [], f"{path} (decided)"
            page.goto(url + "/your-privacy")
            page.click("text=Open cookie settings")
            assert page.locator("dialog.ck-dialog[open]").is_visible()
    finally:
        context.close()
    assert errors == []


# -- the site as `make demo` runs it --------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """``python -m demo_site --host 127.0.0.1 --port P --ledger sqlite:///<tmp>/x.db``, as `make demo`."""
    tmp = tmp_path_factory.mktemp("demo")
    ledger_url = f"sqlite:///{tmp / 'x.db'}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CONSENTKIT_SECRET", "DEMO_AUDIT_PASSWORD")}
    env["PYTHONUNBUFFERED"] = "1"
    # The demo is not part of the installed package: it runs from the checkout, as `make demo` does.
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    argv = [
        sys.executable,
        "-m",
        "demo_site",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ledger",
        ledger_url,
    ]
    srv = Server(argv, port, tmp / "demo.log", env, cwd=tmp)
    try:
        srv.wait_ready()
        yield srv, ledger_url
    finally:
        srv.stop()


def test_served_demo_pages_and_the_printed_auditor_password(served: tuple[Server, str]) -> None:
    srv, _ = served
    log = srv.log()
    assert f"Northwind Telecom demo: {srv.url}/" in log
    printed = re.search(rf"{re.escape(srv.url)}/consent/audit — user auditor, password (\S+)", log)
    assert printed, log
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        for path in PAGES:
            r = visitor.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert has_banner(r.text), path
        assert visitor.get("/consent/audit").status_code == 401
        assert visitor.get("/consent/audit", auth=("auditor", printed.group(1))).status_code == 200
        assert visitor.get("/.well-known/gpc.json").json()["gpc"] is True
        assert "consentkit" not in visitor.cookies


def test_served_demo_records_a_no_js_choice_and_its_withdrawal(served: tuple[Server, str]) -> None:
    """An old browser: no Origin, no Sec-Fetch-Site; the page's own token carries the form."""
    srv, ledger_url = served
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        quick = forms(visitor.get("/privacy").text).by_id("ck-quick")
        r = visitor.post(quick.action, data={**quick.hidden, "action": "accept_all"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/privacy"
        page = visitor.get("/your-privacy").text
        assert 'data-purpose="ads"><strong class="on">On' in page
        subject = visitor.get("/consent").json()["subject_id"]

        withdraw = forms(page).by_id("withdraw-form")
        r = visitor.post(withdraw.action, data={**withdraw.hidden, "action": "withdraw"})
        assert r.status_code == 303 and r.headers["location"] == "/your-privacy", r.text
        assert visitor.get("/consent").json()["purposes"] == {
            "necessary": True,
            "analytics": False,
            "ads": False,
        }
        assert visitor.get("/consent").json()["subject_id"] == subject

    rows = export_jsonl(ledger_url, "--subject", subject)
    assert [(r["action"], r["method"]) for r in rows] == [
        ("accept_all", "no_js_form"),
        ("withdraw", "no_js_form"),
    ]
    assert_verifies(ledger_url, len(export_jsonl(ledger_url)))
    ledger_dir = Path(ledger_url[len("sqlite:///") :]).parent
    # --ledger was honoured (the demo ran in this directory and made no default ledger), and the
    # page views of the analytics hook are kept next to it.
    assert not (ledger_dir / "demo-ledger.db").exists()
    assert (ledger_dir / "x-analytics.db").exists()


def test_served_demo_form_from_the_page_origin_needs_no_token(served: tuple[Server, str]) -> None:
    srv, ledger_url = served
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        r = visitor.post(
            "/consent", data={"next": "/", "action": "reject_all"}, headers={"origin": srv.origin}
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/"
        assert "Ads are off" in visitor.get("/").text
        subject = visitor.get("/consent").json()["subject_id"]
    rows = export_jsonl(ledger_url, "--subject", subject)
    assert [(r["action"], r["method"]) for r in rows] == [("reject_all", "no_js_form")]


@pytest.mark.parametrize(
    "headers, token",
    [
        ({}, None),  # no origin, no token
        ({}, "forged.token.value"),
        ({"origin": "https://evil.example"}, "page"),  # another site submitting a stolen token
        ({"sec-fetch-site": "cross-site"}, "page"),
    ],
)
def test_served_demo_refuses_forged_forms(
    served: tuple[Server, str], headers: dict[str, str], token: str | None
) -> None:
    srv, ledger_url = served
    before = export_jsonl(ledger_url)
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        quick = forms(visitor.get("/").text).by_id("ck-quick")
        data = {"next": "/", "action": "accept_all"}
        if token is not None:
            data["csrf_token"] = quick.hidden["csrf_token"] if token == "page" else token
        r = visitor.post("/consent", data=data, headers=headers)
        assert r.status_code == 403, r.text
        assert "set-cookie" not in r.headers
        assert has_banner(visitor.get("/").text)
    assert export_jsonl(ledger_url) == before
