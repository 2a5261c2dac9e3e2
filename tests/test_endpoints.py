"""The consent endpoints under /consent: decisions, state, history, bad input, ledger outages."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from urllib.parse import urlencode

import pytest
from conftest import BASE, SAME_ORIGIN, decide, make_app
from http_helpers import (
    FORM,
    all_records,
    assert_refused,
    consent_cookie,
    message,
    post_form,
    serve,
    set_cookies,
)

from consentkit import Policy

ALL = {"necessary": True, "analytics": True, "ads": True}
NONE = {"necessary": True, "analytics": False, "ads": False}
ANALYTICS = {"necessary": True, "analytics": True, "ads": False}

DECISIONS = [
    # action, granted, resulting purposes, method of a JSON post
    ("accept_all", None, ALL, "banner"),
    ("reject_all", None, NONE, "banner"),
    ("save", ["analytics"], ANALYTICS, "preferences"),
    ("save", [], NONE, "preferences"),
    ("withdraw", None, NONE, "banner"),
]


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "granted", "purposes", "method"), DECISIONS)
async def test_json_decision_answers_state_sets_cookie_and_records(
    client, kit, action, granted, purposes, method
):
    r = await decide(client, action, granted)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decided"] is True
    assert body["purposes"] == purposes
    assert body["needs_prompt"] is False
    assert "no-store" in r.headers["cache-control"]
    consent_cookie(r)

    [record] = await kit.ledger.history(body["subject_id"])
    assert record.action == action
    assert record.purposes == purposes
    assert record.method == method
    assert body["receipt"] == record.receipt
    # The decision is applied from the next request on.
    assert (await client.get("/")).text == " ".join(f"{p}={int(v)}" for p, v in purposes.items())


async def test_json_decision_may_name_its_method(client, kit):
    r = await client.post(
        "/consent", json={"action": "accept_all", "method": "preferences"}, headers=SAME_ORIGIN
    )
    assert r.status_code == 200
    [record] = await all_records(kit)
    assert record.method == "preferences"


@pytest.mark.parametrize(("action", "granted", "purposes", "_method"), DECISIONS)
async def test_form_decision_redirects_to_next_and_records(client, kit, action, granted, purposes, _method):
    data: dict[str, object] = {"action": action, "next": "/privacy?tab=cookies"}
    if granted is not None:
        data["granted"] = granted

    r = await post_form(client, data)

    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/privacy?tab=cookies"
    assert "no-store" in r.headers["cache-control"]
    consent_cookie(r)
    [record] = await all_records(kit)
    assert record.action == action
    assert record.purposes == purposes
    assert record.method == "no_js_form"


async def test_form_save_takes_repeated_granted_fields(client, kit):
    r = await post_form(client, {"action": "save", "granted": ["analytics", "ads"], "next": "/"})
    assert r.status_code == 303
    [record] = await all_records(kit)
    assert record.purposes == ALL
    r = await post_form(client, {"action": "save", "granted": ["ads"], "next": "/"})
    assert r.status_code == 303
    assert (await all_records(kit))[-1].purposes == {"necessary": True, "analytics": False, "ads": True}
    assert (await client.get("/")).text == "necessary=1 analytics=0 ads=1"


async def test_reject_all_ignores_checked_boxes_of_a_shared_form(client, kit):
    r = await post_form(client, {"action": "reject_all", "granted": ["analytics", "ads"], "next": "/"})
    assert r.status_code == 303
    [record] = await all_records(kit)
    assert record.purposes == NONE


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        (f"{BASE}/products/42?ref=banner", "/products/42?ref=banner"),
        (f"{BASE}/", "/"),
        ("https://elsewhere.example/page", "/"),
        (None, "/"),
    ],
)
async def test_form_without_next_goes_back_to_a_same_site_referer_else_home(client, referer, location):
    headers = dict(SAME_ORIGIN)
    if referer is not None:
        headers["referer"] = referer
    r = await post_form(client, {"action": "reject_all"}, headers=headers)
    assert r.status_code == 303
    assert r.headers["location"] == location


async def test_consent_cookie_attributes(client, kit):
    r = await decide(client, "accept_all")
    value, attrs = consent_cookie(r)
    assert value
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "lax"
    assert attrs["path"] == "/"
    assert "secure" not in attrs  # the fixture kit says cookie_secure=False
    lifetime = kit.policy.consent_lifetime_days * 86400
    assert lifetime - 5 <= int(attrs["max-age"]) <= lifetime


async def test_consent_cookie_is_secure_by_default(make_kit):
    kit = make_kit(cookie_secure=True)
    async with serve(make_app(kit), kit) as c:
        r = await decide(c, "reject_all")
        _, attrs = consent_cookie(r)
        assert "secure" in attrs
        r = await post_form(c, {"action": "reject_all", "next": "/"})
        _, attrs = consent_cookie(r)
        assert "secure" in attrs


@pytest.mark.parametrize(
    ("accept_language", "locale"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.5", "fr"),
        ("fr-CA", "fr"),
        ("de-DE,fr;q=0.3", "fr"),
        ("en-GB,en;q=0.9", "en"),
        ("de-DE,de;q=0.9", "en"),
        (None, "en"),
    ],
)
async def test_record_locale_is_negotiated_from_accept_language(client, kit, accept_language, locale):
    headers = {} if accept_language is None else {"accept-language": accept_language}
    r = await decide(client, "accept_all", headers=headers)
    assert r.status_code == 200
    assert r.json()["locale"] == locale
    [record] = await all_records(kit)
    assert record.locale == locale


@pytest.mark.parametrize(
    ("address", "prefix"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("198.51.100.255", "198.51.100.0/24"),
        ("2001:db8:abcd:12:3456::1", "2001:db8:abcd::/48"),
        ("::ffff:192.0.2.99", "192.0.2.0/24"),
    ],
)
async def test_record_keeps_only_a_truncated_address(make_kit, address, prefix):
    kit = make_kit()
    async with serve(make_app(kit), kit, client=(address, 4711)) as c:
        assert (await decide(c, "accept_all")).status_code == 200
        [record] = await all_records(kit)
    assert record.ip_prefix == prefix
    assert address not in json.dumps(record.to_dict())


async def test_record_ip_false_keeps_no_address(make_kit):
    kit = make_kit(record_ip=False)
    async with serve(make_app(kit), kit, client=("203.0.113.77", 4711)) as c:
        assert (await decide(c, "accept_all")).status_code == 200
        [record] = await all_records(kit)
    assert record.ip_prefix is None


async def test_record_user_agent_is_cut_at_512_characters(client, kit):
    long_ua = "Mozilla/5.0 " + "x" * 700
    r = await decide(client, "accept_all", headers={"user-agent": long_ua})
    assert r.status_code == 200
    r = await decide(client, "reject_all", headers={"user-agent": "Short/1.0"})
    assert r.status_code == 200
    first, second = await all_records(kit)
    assert first.user_agent == long_ua[:512]
    assert second.user_agent == "Short/1.0"


async def test_record_user_agent_false_keeps_none(make_kit):
    kit = make_kit(record_user_agent=False)
    async with serve(make_app(kit), kit) as c:
        assert (await decide(c, "accept_all", headers={"user-agent": "Agent/1"})).status_code == 200
        [record] = await all_records(kit)
    assert record.user_agent is None


async def test_record_names_the_policy_shown(client, kit):
    await decide(client, "accept_all")
    [record] = await all_records(kit)
    assert record.policy_revision == kit.policy.revision
    assert record.policy_version == kit.policy.version
    assert record.policy_digest == kit.policy.digest
    assert record.gpc is False


async def test_subject_id_stays_the_same_across_one_visitors_decisions(client, kit):
    first = (await decide(client, "accept_all")).json()["subject_id"]
    assert first
    second = (await post_form(client, {"action": "save", "granted": ["analytics"], "next": "/"})).status_code
    assert second == 303
    third = (await decide(client, "withdraw")).json()["subject_id"]
    assert third == first
    assert (await client.get("/consent")).json()["subject_id"] == first

    records = await all_records(kit)
    assert [r.action for r in records] == ["accept_all", "save", "withdraw"]
    assert {r.subject_id for r in records} == {first}
    assert [r.seq for r in await kit.ledger.history(first)] == [r.seq for r in records]


async def test_two_visitors_get_different_subject_ids(app, kit):
    async with serve(app) as a, serve(app) as b:
        sa = (await decide(a, "accept_all")).json()["subject_id"]
        sb = (await decide(b, "accept_all")).json()["subject_id"]
    await kit.aclose()
    assert sa != sb


# -- bad input -----------------------------------------------------------------------------------


def _json(body: object) -> dict[str, object]:
    return {
        "content": json.dumps(body).encode(),
        "headers": {**SAME_ORIGIN, "content-type": "application/json"},
    }


def _form(pairs: list[tuple[str, str]]) -> dict[str, object]:
    return {"content": urlencode(pairs).encode(), "headers": {**SAME_ORIGIN, "content-type": FORM}}


def _raw(content: bytes, content_type: str | None) -> dict[str, object]:
    headers = dict(SAME_ORIGIN)
    if content_type is not None:
        headers["content-type"] = content_type
    return {"content": content, "headers": headers}


def _chunked(content: bytes, content_type: str) -> dict[str, object]:
    async def body():
        for i in range(0, len(content), 1000):
            yield content[i : i + 1000]

    return {"content": body(), "headers": {**SAME_ORIGIN, "content-type": content_type}}


BIG_JSON = b'{"action": "accept_all"}' + b" " * 17000
BIG_FORM = b"action=accept_all&next=/" + b"a" * 17000

BAD_INPUT = {
    "unknown action (json)": (lambda: _json({"action": "accept_some"}), 400, ["accept_some"]),
    "unknown action (form)": (lambda: _form([("action", "accept_some")]), 400, ["accept_some"]),
    "missing action (json)": (lambda: _json({"granted": ["analytics"]}), 400, ["action", "missing"]),
    "missing action (form)": (lambda: _form([("next", "/")]), 400, ["action", "missing"]),
    "action not a string": (lambda: _json({"action": ["accept_all"]}), 400, ["action"]),
    "unknown purpose (json)": (
        lambda: _json({"action": "save", "granted": ["analytic"]}),
        400,
        ["analytic", "purpose"],
    ),
    "unknown purpose (form)": (
        lambda: _form([("action", "save"), ("granted", "analytics"), ("granted", "adz")]),
        400,
        ["adz"],
    ),
    "unknown purpose with accept_all": (
        lambda: _json({"action": "accept_all", "granted": ["marketing"]}),
        400,
        ["marketing"],
    ),
    "granted a string": (lambda: _json({"action": "save", "granted": "analytics"}), 400, ["granted", "list"]),
    "granted an object": (lambda: _json({"action": "save", "granted": {"analytics": True}}), 400, ["list"]),
    "granted of numbers": (lambda: _json({"action": "save", "granted": [1]}), 400, ["granted"]),
    "malformed json": (lambda: _raw(b'{"action": "accept_all"', "application/json"), 400, ["JSON"]),
    "empty json body": (lambda: _raw(b"", "application/json"), 400, ["JSON"]),
    "json array": (lambda: _json(["accept_all"]), 400, ["JSON object"]),
    "json string": (lambda: _json("accept_all"), 400, ["JSON object"]),
    "unknown json field": (lambda: _json({"action": "accept_all", "admin": True}), 400, ["admin"]),
    "unknown form field": (lambda: _form([("action", "accept_all"), ("admin", "1")]), 400, ["admin"]),
    "json method not offered": (lambda: _json({"action": "accept_all", "method": "api"}), 400, ["method"]),
    "text/plain": (lambda: _raw(b'{"action": "accept_all"}', "text/plain"), 415, ["text/plain"]),
    "multipart": (
        lambda: _raw(
            b'--XyZ\r\nContent-Disposition: form-data; name="action"\r\n\r\naccept_all\r\n--XyZ--\r\n',
            "multipart/form-data; boundary=XyZ",
        ),
        415,
        ["multipart/form-data"],
    ),
    "no content type": (lambda: _raw(b"action=accept_all", None), 415, ["Content-Type"]),
    "json over 16 KiB with Content-Length": (lambda: _raw(BIG_JSON, "application/json"), 413, ["16384"]),
    "form over 16 KiB with Content-Length": (lambda: _raw(BIG_FORM, FORM), 413, ["16384"]),
    "json over 16 KiB streamed without length": (
        lambda: _chunked(BIG_JSON, "application/json"),
        413,
        ["16384"],
    ),
    "form over 16 KiB streamed without length": (lambda: _chunked(BIG_FORM, FORM), 413, ["16384"]),
    "form not UTF-8": (lambda: _raw(b"action=accept_all&next=/caf\xe9", FORM), 400, ["UTF-8"]),
    "json not UTF-8": (
        lambda: _raw(b'{"action": "accept_all", "next": "/\xff"}', "application/json"),
        400,
        ["UTF-8"],
    ),
    "percent-encoded non-UTF-8 in form": (lambda: _raw(b"action=accept_all&next=/caf%E9", FORM), 400, []),
    "repeated action": (lambda: _form([("action", "reject_all"), ("action", "accept_all")]), 400, ["action"]),
    "repeated next": (
        lambda: _form([("action", "reject_all"), ("next", "/"), ("next", "/a")]),
        400,
        ["next"],
    ),
    "next absolute url": (
        lambda: _form([("action", "reject_all"), ("next", "https://evil.example/")]),
        400,
        ["next"],
    ),
    "next scheme-relative": (
        lambda: _form([("action", "reject_all"), ("next", "//evil.example/x")]),
        400,
        ["next"],
    ),
    "next backslash host": (
        lambda: _form([("action", "reject_all"), ("next", "/\\evil.example")]),
        400,
        ["next"],
    ),
    "next javascript": (
        lambda: _form([("action", "reject_all"), ("next", "javascript:alert(1)")]),
        400,
        ["next"],
    ),
    "next relative path": (lambda: _form([("action", "reject_all"), ("next", "privacy")]), 400, ["next"]),
    "next with CRLF": (
        lambda: _form([("action", "reject_all"), ("next", "/ok\r\nSet-Cookie: IDE=1")]),
        400,
        ["next"],
    ),
    "next with NUL": (lambda: _form([("action", "reject_all"), ("next", "/ok\x00")]), 400, ["next"]),
    "next with tab": (lambda: _form([("action", "reject_all"), ("next", "/\t/evil.example")]), 400, ["next"]),
    "json next leaves the site": (
        lambda: _json({"action": "reject_all", "next": "https://evil.example/"}),
        400,
        ["next"],
    ),
    "json nested thousands deep": (lambda: _raw(b"[" * 10000, "application/json"), 400, ["nested"]),
    "json objects nested thousands deep": (
        lambda: _raw(b'{"a":' * 3000, "application/json"),
        400,
        ["JSON"],
    ),
    "too many form fields": (
        lambda: _form([("action", "save")] + [("granted", "analytics")] * 150),
        400,
        [],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
async def test_bad_input_is_refused_with_a_message_and_writes_nothing(client, kit, case):
    build, status, words = BAD_INPUT[case]
    r = await client.post("/consent", **build())
    await assert_refused(kit, r, status, *words)
    assert message(r).strip()
    assert "no-store" in r.headers["cache-control"]


async def test_json_errors_answer_json_and_form_errors_answer_text(client, kit):
    r = await client.post("/consent", **_json({"action": "nope"}))
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] and "nope" in r.json()["message"]
    r = await client.post("/consent", **_form([("action", "nope")]))
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert "nope" in r.text


async def test_body_of_exactly_16_kib_is_accepted(client, kit):
    body = b'{"action": "accept_all"}'
    r = await client.post("/consent", **_raw(body + b" " * (16384 - len(body)), "application/json"))
    assert r.status_code == 200, r.text
    r = await client.post("/consent", **_raw(body + b" " * (16385 - len(body)), "application/json"))
    assert r.status_code == 413
    assert len(await all_records(kit)) == 1


async def test_max_body_option_is_honoured(make_kit):
    kit = make_kit(max_body=64)
    async with serve(make_app(kit), kit) as c:
        r = await c.post("/consent", **_raw(b'{"action": "accept_all"}' + b" " * 60, "application/json"))
        await assert_refused(kit, r, 413, "64")
        r = await decide(c, "accept_all")
        assert r.status_code == 200


async def test_bad_input_leaves_an_earlier_decision_in_force(client, kit):
    assert (await decide(client, "save", ["analytics"])).status_code == 200
    r = await client.post("/consent", **_json({"action": "save", "granted": ["analytics", "adz"]}))
    assert r.status_code == 400
    assert set_cookies(r) == []
    assert len(await all_records(kit)) == 1
    assert (await client.get("/")).text == "necessary=1 analytics=1 ads=0"


# -- methods and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_on_consent_answer_405_with_allow(client, kit, method):
    r = await client.request(method, "/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
    assert r.status_code == 405
    allow = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allow
    assert method not in allow
    assert await all_records(kit) == []
    assert set_cookies(r) == []


async def test_post_on_history_answers_405(client):
    r = await client.post("/consent/history", headers=SAME_ORIGIN)
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]
    assert "POST" not in r.headers["allow"]


@pytest.mark.parametrize(
    "path", ["/consent/whatever", "/consent/audit", "/consent/audit/export", "/consent/x/y"]
)
async def test_unknown_consent_paths_answer_404(client, path):
    r = await client.get(path)
    assert r.status_code == 404
    r = await client.post(path, json={"action": "accept_all"}, headers=SAME_ORIGIN)
    assert r.status_code == 404
    assert set_cookies(r) == []


async def test_trailing_slash_reaches_the_same_endpoint(client):
    r = await client.get("/consent/")
    assert r.status_code == 200
    assert r.json()["decided"] is False


async def test_paths_that_only_start_like_the_prefix_belong_to_the_site(client):
    r = await client.get("/consentfoo")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/plain")  # Starlette's own 404, not ours
    assert "consent endpoint" not in r.text


async def test_custom_prefix(make_kit):
    kit = make_kit(prefix="/privacy/choices")
    async with serve(make_app(kit), kit) as c:
        r = await c.post("/privacy/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        assert r.status_code == 200
        assert (await c.get("/privacy/choices")).json()["decided"] is True
        assert (await c.get("/consent")).status_code == 404


# -- the ledger cannot be written ---------------------------------------------------------------------


@pytest.fixture(params=["missing-directory", "path-is-a-directory"])
def broken_ledger_url(request, tmp_path):
    if request.param == "missing-directory":
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.db'}"
    directory = tmp_path / "ledger.db"
    directory.mkdir()
    return f"sqlite:///{directory}"


async def test_unwritable_ledger_answers_503_sets_no_cookie_and_pages_still_work(make_kit, broken_ledger_url):
    kit = make_kit(ledger=broken_ledger_url)
    async with serve(make_app(kit), kit) as c:
        r = await decide(c, "accept_all")
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) > 0
        assert set_cookies(r) == []
        assert "try again" in message(r)
        assert r.headers["content-type"].startswith("application/json")

        r = await post_form(c, {"action": "reject_all", "next": "/"})
        assert r.status_code == 503
        assert "retry-after" in r.headers
        assert set_cookies(r) == []

        assert (await c.get("/")).status_code == 200
        assert (await c.get("/")).text == "necessary=1 analytics=0 ads=0"
        assert (await c.get("/plain")).text == "hello"
        state = await c.get("/consent")
        assert state.status_code == 200
        assert state.json()["decided"] is False


async def test_decision_succeeds_once_the_ledger_is_writable_again(make_kit, tmp_path):
    directory = tmp_path / "later"
    kit = make_kit(ledger=f"sqlite:///{directory / 'ledger.db'}")
    async with serve(make_app(kit), kit) as c:
        assert (await decide(c, "accept_all")).status_code == 503
        directory.mkdir()
        r = await decide(c, "accept_all")
        assert r.status_code == 200
        consent_cookie(r)
        records = await all_records(kit)
    assert [r.action for r in records] == ["accept_all"]


# -- GET /consent ---------------------------------------------------------------------------------------


async def test_state_of_an_undecided_visitor(client, kit):
    r = await client.get("/consent")
    assert r.status_code == 200
    body = r.json()
    assert body["decided"] is False
    assert body["needs_prompt"] is True
    assert body["purposes"] == NONE
    assert body["subject_id"] is None
    assert body["revision"] == kit.policy.revision
    assert body["gpc"] is False
    assert body["receipt"] is None
    assert "no-store" in r.headers["cache-control"] or "private" in r.headers["cache-control"]
    assert "previous" not in body


async def test_state_of_a_decided_visitor(client, kit):
    decision = (await decide(client, "save", ["analytics"])).json()
    r = await client.get("/consent")
    body = r.json()
    assert body["decided"] is True
    assert body["needs_prompt"] is False
    assert body["purposes"] == ANALYTICS
    assert body["subject_id"] == decision["subject_id"]
    assert body["revision"] == kit.policy.revision
    assert body["gpc"] is False
    [record] = await all_records(kit)
    assert body["receipt"] == record.receipt
    lifetime = _parse_iso(body["expires_at"]) - _parse_iso(body["decided_at"])
    assert lifetime.total_seconds() == kit.policy.consent_lifetime_days * 86400
    assert "cookie" in r.headers.get("vary", "").lower() or "no-store" in r.headers["cache-control"]


async def test_state_after_a_policy_revision_bump_offers_the_previous_choice(kit, make_kit, policy):
    async with serve(make_app(kit), kit) as c:
        old = (await decide(c, "save", ["analytics"])).json()
        cookie = c.cookies["consentkit"]
    bumped = Policy.model_validate({**policy.model_dump(), "revision": policy.revision + 1})
    kit2 = make_kit(policy=bumped)
    async with serve(make_app(kit2), kit2) as c:
        c.cookies.set("consentkit", cookie)
        body = (await c.get("/consent")).json()
        assert body["decided"] is False
        assert body["needs_prompt"] is True
        assert body["purposes"] == NONE
        assert body["previous"] == {"analytics": True, "ads": False}
        assert body["subject_id"] == old["subject_id"]
        # Deciding again keeps the visitor's pseudonym.
        again = (await decide(c, "reject_all")).json()
        assert again["subject_id"] == old["subject_id"]


# -- GET /consent/history -------------------------------------------------------------------------------


async def test_history_lists_only_this_visitors_records_with_their_receipts(app, kit):
    async with serve(app) as a, serve(app) as b:
        await decide(a, "accept_all")
        await decide(b, "accept_all", headers={"user-agent": "Visitor-B"})
        await decide(a, "save", ["analytics"])
        await decide(b, "reject_all", headers={"user-agent": "Visitor-B"})
        await decide(a, "withdraw")

        ra = await a.get("/consent/history")
        state_a = (await a.get("/consent")).json()
        rb = await b.get("/consent/history")
        state_b = (await b.get("/consent")).json()
    await kit.aclose()

    assert ra.status_code == 200
    hist = ra.json()
    assert hist["subject_id"] == state_a["subject_id"]
    assert [r["action"] for r in hist["records"]] == ["accept_all", "save", "withdraw"]
    assert hist["records"][-1]["receipt"] == state_a["receipt"]
    assert hist["records"][1]["purposes"] == ANALYTICS
    assert all(r["user_agent"] != "Visitor-B" for r in hist["records"])
    assert state_b["subject_id"] not in ra.text

    ledger_a = await kit.ledger.history(state_a["subject_id"])
    assert [r["receipt"] for r in hist["records"]] == [r.receipt for r in ledger_a]
    assert [r["seq"] for r in hist["records"]] == [r.seq for r in ledger_a]

    hist_b = rb.json()
    assert [r["action"] for r in hist_b["records"]] == ["accept_all", "reject_all"]
    assert hist_b["records"][-1]["receipt"] == state_b["receipt"]
    assert state_a["subject_id"] not in rb.text
    assert "private" in ra.headers["cache-control"] or "no-store" in ra.headers["cache-control"]


async def test_history_as_csv(client, kit):
    await decide(client, "accept_all")
    await decide(client, "save", ["ads"])
    state = (await client.get("/consent")).json()

    r = await client.get("/consent/history", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == ["accept_all", "save"]
    assert rows[-1]["receipt"] == state["receipt"]
    assert json.loads(rows[-1]["purposes"]) == {"necessary": True, "analytics": False, "ads": True}
    records = await kit.ledger.history(state["subject_id"])
    assert [row["receipt"] for row in rows] == [rec.receipt for rec in records]


async def test_history_csv_keeps_formula_like_user_agents_inert(client):
    await decide(client, "accept_all", headers={"user-agent": '=HYPERLINK("http://evil")'})
    r = await client.get("/consent/history", params={"format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert not row["user_agent"].startswith("=")
    assert "HYPERLINK" in row["user_agent"]


async def test_history_of_a_visitor_without_cookie_is_empty(client, app):
    async with serve(app) as other:  # someone else has decided
        await decide(other, "accept_all")
    r = await client.get("/consent/history")
    assert r.status_code == 200
    assert r.json()["records"] == []
    r = await client.get("/consent/history", params={"format": "csv"})
    assert r.status_code == 200
    assert list(csv.DictReader(io.StringIO(r.text))) == []


async def test_history_with_a_forged_cookie_shows_nothing(client, app):
    await decide(client, "accept_all")
    stolen = client.cookies["consentkit"]
    forged = stolen[:-3] + ("AAA" if not stolen.endswith("AAA") else "BBB")
    async with serve(app) as other:
        other.cookies.set("consentkit", forged)
        r = await other.get("/consent/history")
    assert r.json()["records"] == []


async def test_history_unknown_format_is_400(client):
    r = await client.get("/consent/history", params={"format": "xml"})
    assert r.status_code == 400
    assert "csv" in r.text


async def test_history_endpoint_answers_503_when_the_ledger_cannot_be_read(make_kit, tmp_path):
    good = make_kit()
    async with serve(make_app(good), good) as c:
        await decide(c, "accept_all")
        cookie = c.cookies["consentkit"]
    broken = make_kit(ledger=f"sqlite:///{tmp_path / 'gone' / 'ledger.db'}")
    async with serve(make_app(broken), broken) as c:
        c.cookies.set("consentkit", cookie)
        r = await c.get("/consent/history")
    assert r.status_code == 503
