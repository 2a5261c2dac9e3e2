"""Regions: the law of each visitor (opt-in, opt-out, notice) from trusted CDN headers."""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from conftest import BASE, EXAMPLE_POLICY, decide, make_app
from http_helpers import all_records, set_cookie_names
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route
from unit_helpers import tamper

from consentkit import ConsentKit, Policy
from consentkit.consent import Consent
from consentkit.cookie import CookieCodec
from consentkit.errors import PolicyError
from consentkit.http.reading import CACHE_SIZE, ConsentReader
from consentkit.regions import COUNTRIES, EEA, EU, Model, parse_region

RULES = {"US": "opt_out", "US-TX": "opt_in", "CA": "opt_in", "EU": "opt_in", "EEA": "opt_out", "JP": "notice"}
REGIONS = {
    "country_header": "cf-ipcountry",
    "subdivision_header": "cf-region-code",
    "default": "opt_in",
    "rules": RULES,
}


def regional_policy(**regions: Any) -> Policy:
    base = Policy.from_toml(EXAMPLE_POLICY)
    data = base.model_dump(exclude={"purposes", "regions"})
    return Policy.from_mapping(
        {
            "policy": data,
            "purposes": [p.model_dump() for p in base.purposes],
            "regions": {**REGIONS, **regions},
        }
    )


def visitor(country: str | None = None, subdivision: str | None = None, **more: str) -> dict[str, str]:
    headers = dict(more)
    if country is not None:
        headers["cf-ipcountry"] = country
    if subdivision is not None:
        headers["cf-region-code"] = subdivision
    return headers


# -- the policy's [regions] table ------------------------------------------------------------


def test_a_policy_file_with_regions_loads_and_its_digest_covers_them(tmp_path):
    text = EXAMPLE_POLICY.read_text()
    path = tmp_path / "consent.toml"
    path.write_text(
        text + '\n[regions]\ncountry_header = "CF-IPCountry"\ndefault = "notice"\n'
        'rules = { "US" = "opt_out", "CA-QC" = "opt_in" }\n'
    )
    policy = Policy.from_toml(path)
    assert policy.regions is not None
    assert policy.regions.country_header == "cf-ipcountry"  # header names are compared lower case
    assert policy.regions.model_of("US-CA") is Model.OPT_OUT
    assert policy.regions.model_of("CA-QC") is Model.OPT_IN
    assert policy.regions.model_of("CA-ON") is Model.NOTICE
    plain = Policy.from_toml(EXAMPLE_POLICY)
    assert policy.digest != plain.digest
    assert '"regions":{' in policy.canonical_json
    # A policy without regions (or sensitive purposes) hashes as it did before they existed.
    assert "regions" not in plain.canonical_json and "sensitive" not in plain.canonical_json


@pytest.mark.parametrize(
    ("regions", "key", "message"),
    [
        ({"default": "opt_maybe"}, "regions.default", "unknown model 'opt_maybe'"),
        ({"rules": {"APAC": "opt_in"}}, "regions.rules.APAC", "is not a region"),
        ({"rules": {"USA": "opt_out"}}, "regions.rules.USA", "is not a region"),
        ({"rules": {"US-": "opt_out"}}, "regions.rules.US-", "is not a region"),
        ({"rules": {"US-CALI": "opt_out"}}, "regions.rules.US-CALI", "is not a region"),
        ({"rules": {"XX": "opt_out"}}, "regions.rules.XX", "is not a region"),
        ({"rules": {"US": "optout"}}, "regions.rules.US", "unknown model 'optout'"),
        ({"country_header": "cf ipcountry"}, "regions.country_header", "is not a header name"),
        ({"subdivision_header": 7}, "regions.subdivision_header", "is not a header name"),
        ({"rules": ["US"]}, "regions.rules", "must be a table"),
        ({"countries": "US"}, "regions.countries", "unknown key"),
        ({"default": ["opt_in"]}, "regions.default", "unknown model ['opt_in']"),
        ({"rules": {"US": {"model": "opt_out"}}}, "regions.rules.US", "unknown model {'model': 'opt_out'}"),
    ],
)
def test_a_bad_regions_table_fails_naming_the_key_and_the_problem(regions, key, message):
    with pytest.raises(PolicyError) as info:
        regional_policy(**regions)
    assert any(k == key and message in m for k, m in info.value.problems), info.value.problems


def test_a_regions_table_without_its_country_header_fails():
    base = Policy.from_toml(EXAMPLE_POLICY)
    with pytest.raises(PolicyError, match=r"regions\.country_header: required key is missing"):
        Policy.from_mapping(
            {
                "policy": base.model_dump(exclude={"purposes", "regions"}),
                "purposes": [p.model_dump() for p in base.purposes],
                "regions": {"default": "opt_out"},
            }
        )


def test_the_groups_are_the_eu_and_the_eea():
    assert len(EU) == 27 and "GR" in EU and "GB" not in EU
    assert EU | {"IS", "LI", "NO"} == EEA
    assert EU <= COUNTRIES and "XK" in COUNTRIES and "EU" not in COUNTRIES and "ZZ" not in COUNTRIES


@pytest.mark.parametrize(
    ("region", "model"),
    [
        ("US-CA", Model.OPT_OUT),  # the country's rule
        ("US-TX", Model.OPT_IN),  # the subdivision's rule wins over the country's
        ("US", Model.OPT_OUT),
        ("DE", Model.OPT_IN),  # the EU rule wins over the EEA's: the smaller group is more specific
        ("NO", Model.OPT_OUT),  # in the EEA, not in the EU
        ("JP", Model.NOTICE),
        ("BR", Model.OPT_IN),  # no rule: the default
        (None, Model.OPT_IN),
    ],
)
def test_the_most_specific_rule_wins(region, model):
    assert regional_policy().regions.model_of(region) is model


# -- reading the region of a request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "subdivision", "region"),
    [
        (b"US", b"CA", "US-CA"),
        (b"us", b"ca", "US-CA"),
        (b"CA", b"CA-QC", "CA-QC"),  # the whole ISO 3166-2 code, as some CDNs send it
        (b" FR ", None, "FR"),
        (b"FR", b"", "FR"),
        (b"FR", b"not a code", "FR"),  # a malformed subdivision is left out, the country kept
        (b"XX", None, None),  # Cloudflare: unknown
        (b"T1", None, None),  # Cloudflare: Tor
        (b"EU", None, None),
        (b"USA", None, None),
        (b"", None, None),
        (b"\xff\xfe", None, None),
        (b"JP", b"\xff", "JP"),
    ],
)
def test_header_values_that_are_not_iso_3166_codes_mean_an_unknown_region(country, subdivision, region):
    assert parse_region(country, subdivision) == region


def region_reader(**regions: Any) -> ConsentReader:
    """The reader the middleware and the endpoints ask, under a regional policy."""
    return ConsentReader(regional_policy(**regions), CookieCodec(["k" * 32]), "consentkit")


def where(consent: Consent) -> tuple[str | None, Model]:
    return consent.region, consent.model


def test_a_repeated_or_missing_country_header_is_an_unknown_region():
    reader = region_reader(default="notice")
    assert where(reader.of_headers([(b"cf-ipcountry", b"US")])) == ("US", Model.OPT_OUT)
    for twice in ([b"US", b"DE"], [b"DE", b"DE"]):
        headers = [(b"cf-ipcountry", value) for value in twice]
        assert where(reader.of_headers(headers)) == (None, Model.NOTICE)
    headers = [(b"cf-ipcountry", b"US"), (b"cf-region-code", b"CA"), (b"cf-region-code", b"TX")]
    assert where(reader.of_headers(headers)) == ("US", Model.OPT_OUT)  # the subdivision is unknown
    assert where(reader.of_headers([(b"x-country", b"US")])) == (None, Model.NOTICE)  # not configured
    assert where(reader.of_headers([])) == (None, Model.NOTICE)


def test_the_remembered_answers_stay_bounded():
    reader = region_reader()
    for i in range(6000):
        reader.of_headers([(b"cf-ipcountry", b"US"), (b"cf-region-code", b"%d" % (i % 1000))])
        reader.of_headers([(b"cf-ipcountry", b"%d" % i), (b"cookie", b"a=%d" % i)])
    assert reader.regions is not None and len(reader.regions._cache) <= 4096
    assert len(reader._by_request) <= CACHE_SIZE


# -- the three models, end to end ------------------------------------------------------------


async def set_tracking_cookies(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("ok")
    response.set_cookie("_ga", "GA1.1")
    response.set_cookie("IDE", "x")
    response.set_cookie("session", "s")
    return response


@pytest.fixture
async def regional(make_kit) -> AsyncIterator[tuple[ConsentKit, httpx.AsyncClient]]:
    kit = make_kit(policy=regional_policy())
    app = make_app(kit, [Route("/track", set_tracking_cookies)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield kit, client
    await kit.aclose()


@pytest.mark.parametrize(
    ("where", "gpc", "page", "cookies"),
    [
        # opt-in: only the essential purposes until the visitor agrees, GPC or not
        (visitor("DE"), False, "necessary=1 analytics=0 ads=0", {"session"}),
        (visitor("CA", "QC"), True, "necessary=1 analytics=0 ads=0", {"session"}),
        (visitor(), False, "necessary=1 analytics=0 ads=0", {"session"}),  # unknown: the default
        # opt-out: allowed until the visitor opts out; GPC opts out of the purposes that honour it
        (visitor("US", "CA"), False, "necessary=1 analytics=1 ads=1", {"session", "_ga", "IDE"}),
        (visitor("US", "CA"), True, "necessary=1 analytics=1 ads=0", {"session", "_ga"}),
        # notice: nothing blocked (a GPC signal is still honoured)
        (visitor("JP"), False, "necessary=1 analytics=1 ads=1", {"session", "_ga", "IDE"}),
        (visitor("JP"), True, "necessary=1 analytics=1 ads=0", {"session", "_ga"}),
    ],
)
async def test_an_undecided_visitor_gets_the_law_of_their_region(regional, where, gpc, page, cookies):
    _, client = regional
    headers = {**where, **({"sec-gpc": "1"} if gpc else {})}
    assert (await client.get("/", headers=headers)).text == page
    assert set(set_cookie_names(await client.get("/track", headers=headers))) == cookies
    state = (await client.get("/consent", headers=headers)).json()
    assert state["decided"] is False
    model = {"DE": "opt_in", "CA": "opt_in", "US": "opt_out", "JP": "notice"}.get(where.get("cf-ipcountry"))
    assert state["model"] == (model or "opt_in")
    region = where.get("cf-ipcountry")
    if region and where.get("cf-region-code"):
        region += "-" + where["cf-region-code"]
    assert state["region"] == region


async def test_an_opt_out_is_a_decision_kept_in_the_cookie_and_honoured(regional):
    _, client = regional
    us = visitor("US", "CA")
    assert (await decide(client, "reject_all", headers=us)).status_code == 200
    assert (await client.get("/", headers=us)).text == "necessary=1 analytics=0 ads=0"
    assert set(set_cookie_names(await client.get("/track", headers=us))) == {"session"}
    state = (await client.get("/consent", headers=us)).json()
    assert state["decided"] is True and state["model"] == "opt_out"


async def test_a_choice_made_under_opt_out_is_not_consent_where_the_law_is_opt_in(regional):
    _, client = regional
    assert (await decide(client, "accept_all", headers=visitor("US", "CA"))).status_code == 200
    assert (await client.get("/", headers=visitor("US", "CA"))).text == "necessary=1 analytics=1 ads=1"
    # The same visitor in Germany: asked again, nothing granted meanwhile, their choice pre-filled.
    assert (await client.get("/", headers=visitor("DE"))).text == "necessary=1 analytics=0 ads=0"
    state = (await client.get("/consent", headers=visitor("DE"))).json()
    assert state["decided"] is False and state["model"] == "opt_in"
    assert state["previous"] == {"analytics": True, "ads": True}
    # Deciding there makes it consent under opt-in, which also holds back in California.
    assert (await decide(client, "save", ["analytics"], headers=visitor("DE"))).status_code == 200
    assert (await client.get("/", headers=visitor("DE"))).text == "necessary=1 analytics=1 ads=0"
    assert (await client.get("/", headers=visitor("US", "CA"))).text == "necessary=1 analytics=1 ads=0"


async def test_a_choice_made_under_a_notice_does_not_count_under_opt_out_or_opt_in(regional):
    _, client = regional
    assert (await decide(client, "accept_all", headers=visitor("JP"))).status_code == 200
    assert (await client.get("/consent", headers=visitor("JP"))).json()["decided"] is True
    assert (await client.get("/consent", headers=visitor("US"))).json()["decided"] is False
    assert (await client.get("/consent", headers=visitor("FR"))).json()["decided"] is False


async def test_an_opt_out_outlives_a_new_policy_revision(make_kit):
    old = regional_policy()
    kit = make_kit(policy=old)
    app = make_app(kit)
    us = visitor("US")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await decide(client, "save", ["analytics"], headers=us)).status_code == 200
        cookies = dict(client.cookies)
    await kit.aclose()
    data = old.model_dump(exclude={"purposes", "regions"})
    bumped = Policy.from_mapping(
        {
            "policy": {**data, "revision": old.revision + 1},
            "purposes": [p.model_dump() for p in old.purposes],
            "regions": REGIONS,
        }
    )
    kit = make_kit(policy=bumped)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE, cookies=cookies
    ) as client:
        # Undecided under the new revision, but the earlier refusal of ads still stands.
        assert (await client.get("/", headers=us)).text == "necessary=1 analytics=1 ads=0"
        assert (await client.get("/consent", headers=us)).json()["decided"] is False
    await kit.aclose()


async def test_without_regions_get_consent_says_opt_in_and_no_region(client):
    state = (await client.get("/consent", headers=visitor("US"))).json()
    assert state["model"] == "opt_in" and state["region"] is None
    assert (await client.get("/", headers=visitor("US"))).text == "necessary=1 analytics=0 ads=0"


@pytest.mark.parametrize("model", list(Model))
def test_the_cookie_carries_the_law_a_choice_was_made_under(model):
    from consentkit.cookie import CookieCodec, StoredDecision

    codec = CookieCodec(["k" * 32])
    stored = StoredDecision(
        "s", 1, frozenset({"ads"}), frozenset(), 1_700_000_000, "r", gpc=True, model=model
    )
    back = codec.decode(codec.encode(stored))
    assert back is not None and back.model is model and back.gpc is True


async def test_the_banner_of_an_opt_out_visitor_has_what_is_allowed_ticked(make_kit):
    kit = make_kit(policy=regional_policy())
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        us = (await client.get("/consent/banner", headers=visitor("US", "CA", **{"sec-gpc": "1"}))).text
        de = (await client.get("/consent/banner", headers=visitor("DE"))).text
    await kit.aclose()
    assert re.search(r'<input[^>]*value="analytics"[^>]*checked', us)
    assert not re.search(r'<input[^>]*value="ads"[^>]*checked', us)  # GPC opted out of it
    assert not re.search(r'<input[^>]*value="analytics"[^>]*checked', de)


# -- what the page says under each model ------------------------------------------------------


class Forms(HTMLParser):
    """The forms of an HTML fragment: each one's fields and its submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"fields": [], "buttons": {}})
        elif self.forms and tag == "input" and a.get("type") == "hidden":
            self.forms[-1]["fields"].append((a["name"], a["value"]))
        elif self.forms and tag == "button" and a.get("name") == "action":
            for marker in (k for k in a if k.startswith("data-ck-")):
                self.forms[-1]["buttons"][marker] = a["value"]


def form_with(html: str, button: str) -> dict[str, Any]:
    """The fields that pressing the button ``data-ck-…`` of the fragment would send."""
    parser = Forms()
    parser.feed(html)
    form = next(f for f in parser.forms if button in f["buttons"])
    data: dict[str, Any] = {"action": form["buttons"][button]}
    for name, value in form["fields"]:
        if name == "granted":
            data.setdefault("granted", []).append(value)
        else:
            data[name] = value
    return data


def sensitive_policy() -> Policy:
    base = regional_policy()
    purposes = [p.model_dump() for p in base.purposes]
    purposes[1]["sensitive"] = True  # analytics, for the test's sake
    return Policy.from_mapping(
        {"policy": base.model_dump(exclude={"purposes", "regions"}), "purposes": purposes, "regions": REGIONS}
    )


async def test_do_not_sell_or_share_works_without_javascript_and_keeps_the_rest(make_kit):
    kit = make_kit(policy=sensitive_policy())
    us = visitor("US", "CA")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        banner = (await client.get("/consent/banner", headers=us)).text
        assert "Do Not Sell or Share My Personal Information" in banner
        assert "Limit the Use of My Sensitive Personal Information" in banner
        assert "data-ck-notice" in banner and 'data-ck-action="accept_all"' not in banner  # no opt-in wall
        data = form_with(banner, "data-ck-opt-out")
        r = await client.post("/consent", data=data, headers={**us, "origin": BASE})
        assert r.status_code == 303, r.text
        # Ads (the purpose that honours GPC: "sale or sharing") off, analytics as it was.
        assert (await client.get("/", headers=us)).text == "necessary=1 analytics=1 ads=0"
        record = (await all_records(kit))[-1]
        assert record.action == "save" and record.purposes == {
            "necessary": True,
            "analytics": True,
            "ads": False,
        }
        # Decided: no notice any more, the choices stay on every page.
        banner = (await client.get("/consent/banner", headers=us)).text
        assert "data-ck-notice" not in banner and "Do Not Sell or Share My Personal Information" in banner
        r = await client.post(
            "/consent", data=form_with(banner, "data-ck-limit"), headers={**us, "origin": BASE}
        )
        assert r.status_code == 303, r.text
        assert (await client.get("/", headers=us)).text == "necessary=1 analytics=0 ads=0"
    await kit.aclose()


async def test_the_opt_out_notice_says_the_gpc_signal_was_honoured_in_english_and_french(make_kit):
    kit = make_kit(policy=regional_policy())
    us_gpc = visitor("US", "CA", **{"sec-gpc": "1"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        en = (await client.get("/consent/banner", headers=us_gpc)).text
        fr = (await client.get("/consent/banner", headers={**us_gpc, "accept-language": "fr-CA"})).text
        plain = (await client.get("/consent/banner", headers=visitor("US", "CA"))).text
    await kit.aclose()
    assert "We honour it as your request to opt out of the sale or sharing" in en
    assert "Nous le respectons comme votre demande de refus" in fr
    assert "Ne pas vendre ni partager mes renseignements personnels" in fr
    assert "Global Privacy Control" not in plain
    assert "Limit the Use" not in plain  # no purpose is marked sensitive


async def test_the_notice_model_informs_and_keeps_refusing_one_click_away(make_kit):
    kit = make_kit(policy=regional_policy())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        jp = (await client.get("/consent/banner", headers=visitor("JP"))).text
        de = (await client.get("/consent/banner", headers=visitor("DE"))).text
    await kit.aclose()
    assert "the others are on unless you turn them off" in jp
    assert 'data-ck-action="reject_all"' in jp and 'data-ck-action="accept_all"' in jp
    assert "the others only if you agree" in de
    assert "Do Not Sell" not in jp + de


async def test_a_page_that_read_consent_varies_on_the_region_headers(regional):
    _, client = regional
    for path in ("/", "/consent"):
        vary = (await client.get(path, headers=visitor("US", "CA"))).headers["vary"].lower()
        assert {"cookie", "cf-ipcountry", "cf-region-code"} <= {v.strip() for v in vary.split(",")}


def consent_mode_attrs(page: str) -> dict[str, Any]:
    tag = re.search(r"<script src=\"[^\"]*consent-mode[^>]*>", page).group(0)
    found = dict(re.findall(r"(data-default|data-update)='([^']*)'", tag))
    return {k: json.loads(html.unescape(v)) for k, v in found.items()}


async def test_consent_mode_starts_granted_where_the_law_is_opt_out_and_denied_where_opt_in(make_kit):
    async def page_html(request: Request) -> HTMLResponse:
        return HTMLResponse("<html><head></head><body>hi</body></html>")

    kit = make_kit(policy=regional_policy())
    app = make_app(kit, [Route("/page", page_html)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        us = consent_mode_attrs((await client.get("/page", headers=visitor("US", "CA"))).text)
        us_gpc = consent_mode_attrs(
            (await client.get("/page", headers=visitor("US", **{"sec-gpc": "1"}))).text
        )
        de = consent_mode_attrs((await client.get("/page", headers=visitor("DE"))).text)
    await kit.aclose()
    defaults = us["data-default"]
    by_region = {r: d["ad_storage"] for d in defaults[:-1] for r in d["region"]}
    assert by_region["US"] == "granted" and by_region["US-TX"] == "denied" and by_region["DE"] == "denied"
    assert by_region["NO"] == "granted" and by_region["JP"] == "granted"
    assert "region" not in defaults[-1] and defaults[-1]["ad_storage"] == "denied"  # the default: opt-in
    # The visitor's own state follows at once: granted in California, but not ads under GPC.
    assert us["data-update"] == {
        "ad_personalization": "granted",
        "ad_storage": "granted",
        "ad_user_data": "granted",
        "analytics_storage": "granted",
    }
    assert (
        us_gpc["data-update"]["ad_storage"] == "denied"
        and us_gpc["data-update"]["analytics_storage"] == "granted"
    )
    assert "data-update" not in de  # undecided under opt-in: the defaults hold until the visitor agrees


# -- the ledger keeps the law of each decision --------------------------------------------------


def independent_hash(record: Any) -> str:
    """The record's hash as the README describes it, computed with the standard library's JSON
    rather than the ledger's own encoder: sha256(prev_hash ‖ canonical JSON of the committed
    fields), model and region among them where the record has a model."""
    committed = {
        "seq": record.seq,
        "event_id": record.event_id,
        "recorded_at": record.recorded_at,
        "action": record.action,
        "purposes": record.purposes,
        "method": record.method,
        "policy_revision": record.policy_revision,
        "policy_version": record.policy_version,
        "policy_digest": record.policy_digest,
        "locale": record.locale,
        "gpc": record.gpc,
        "pii_digest": record.pii_digest,
    }
    if record.shown_digest is not None:
        committed["shown_digest"] = record.shown_digest
    if record.model is not None:
        committed["model"] = record.model
        committed["region"] = record.region
    text = json.dumps(committed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((record.prev_hash + text).encode()).hexdigest()


async def test_every_decision_records_its_region_and_model_and_the_hash_commits_to_them(
    make_kit, ledger_path
):
    kit = make_kit(policy=regional_policy())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        await decide(client, "reject_all", headers=visitor("US", "CA"))
        await decide(client, "accept_all", headers=visitor("DE"))
        await decide(client, "save", ["analytics"], headers=visitor("XX"))
        await kit.record("crm-42", {"necessary": True, "analytics": False, "ads": False})
    records = await all_records(kit)
    assert [(r.region, r.model) for r in records] == [
        ("US-CA", "opt_out"),
        ("DE", "opt_in"),
        (None, "opt_in"),  # unknown region: the default model
        (None, None),  # kit.record: the site did not say
    ]
    assert [r.hash for r in records] == [independent_hash(r) for r in records]
    assert (await kit.ledger.verify()).ok
    await kit.aclose()
    # Rewriting where a decision was made breaks the chain at that record.
    assert tamper(ledger_path, "UPDATE consentkit_ledger SET region = 'FR' WHERE seq = 1") == 1
    kit = make_kit(policy=regional_policy())
    report = await kit.ledger.verify()
    await kit.aclose()
    assert not report.ok and report.first_bad_seq == 1 and "hash" in report.problem


async def test_without_regions_decisions_record_opt_in_and_no_region(client, kit):
    await decide(client, "accept_all", headers=visitor("US"))
    (record,) = await all_records(kit)
    assert (record.region, record.model) == (None, "opt_in")
    assert record.hash == independent_hash(record)


async def test_stats_break_consent_rates_down_by_region_and_law(make_kit, ledger_url):
    from test_cli import run

    kit = make_kit(policy=regional_policy())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        for headers, action in [
            (visitor("US", "CA"), "accept_all"),
            (visitor("US", "CA", **{"sec-gpc": "1"}), "reject_all"),
            (visitor("DE"), "reject_all"),
            (visitor("JP"), "accept_all"),
            (visitor(), "accept_all"),
        ]:
            client.cookies.clear()
            assert (await decide(client, action, headers=headers)).status_code == 200
    await kit.aclose()
    # The command runs its own event loop: from a thread, as from a shell.
    result = await asyncio.to_thread(run, "stats", "--ledger", ledger_url, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    regions = {k: (v["decisions"], v["consent_rate"]["ads"]) for k, v in figures["by_region"].items()}
    assert regions == {"US-CA": (2, 0.5), "DE": (1, 0.0), "JP": (1, 1.0), "unknown": (1, 1.0)}
    models = {k: (v["decisions"], v["gpc_share"]) for k, v in figures["by_model"].items()}
    assert models == {"opt_out": (2, 0.5), "opt_in": (2, 0.0), "notice": (1, 0.0)}
    text = (await asyncio.to_thread(run, "stats", "--ledger", ledger_url)).stdout
    assert "Consent rate per law" in text and "Consent rate per region" in text
    assert any(line.split()[:2] == ["US-CA", "2"] for line in text.splitlines())


async def test_the_overview_and_verify_count_decisions_by_law_and_region(make_kit, ledger_url, ledger_path):
    from consentkit.audit.overview import build
    from consentkit.ledger.full_check import check_everything

    kit = make_kit(policy=regional_policy())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        for headers, action in [
            (visitor("US", "CA"), "accept_all"),
            (visitor("US", "CA"), "reject_all"),
            (visitor("DE"), "reject_all"),
            (visitor(), "accept_all"),
        ]:
            client.cookies.clear()
            assert (await decide(client, action, headers=headers)).status_code == 200
    overview = await build(kit.ledger)
    assert overview.by_model == {
        "opt_in": (2, {"ads": 0.5, "analytics": 0.5}),
        "opt_out": (2, {"ads": 0.5, "analytics": 0.5}),
    }
    assert overview.by_region == {
        "DE": (1, {"ads": 0.0, "analytics": 0.0}),
        "US-CA": (2, {"ads": 0.5, "analytics": 0.5}),
        "unknown": (1, {"ads": 1.0, "analytics": 1.0}),
    }
    await kit.aclose()
    # The report (and the desk, which shares its body) shows the same table.
    from test_cli import run

    out = ledger_path.with_name("report.html")
    result = await asyncio.to_thread(run, "report", "--ledger", ledger_url, "-o", str(out))
    assert result.exit_code == 0, result.output
    report = out.read_text()
    assert "By law and region" in report and '<th scope="row">US-CA</th><td class="num">2</td>' in report
    # verify adds the records up by law and region too, so a changed figure is caught.
    assert (await check_everything(ledger_url)).ok
    tamper(ledger_path, "UPDATE consentkit_daily SET count = count + 1 WHERE metric = 'region:DE:decisions'")
    found = await check_everything(ledger_url)
    assert not found.ok and any("region:DE:decisions" in p for p in found.problems), found.problems


async def test_without_regions_the_figures_are_not_broken_down_into_one_repeated_row(client, kit, ledger_url):
    from test_cli import run

    from consentkit.audit.overview import build

    await decide(client, "accept_all")
    await decide(client, "reject_all")
    overview = await build(kit.ledger)
    assert overview.decisions == 2 and overview.by_model == {} and overview.by_region == {}
    text = (await asyncio.to_thread(run, "stats", "--ledger", ledger_url)).stdout
    assert "Consent rate per day" in text and "per law" not in text and "per region" not in text
