"""Cross-site request forgery protection of POST /consent."""

from __future__ import annotations

import pytest
from conftest import BASE, SECRET, make_app
from http_helpers import all_records, assert_refused, consent_cookie, post_form, serve

OTHER_SECRET = "another-secret-key-fedcba9876543210"

CROSS_SITE = {
    "origin of another site": ({"origin": "https://evil.example"}, ["evil.example"]),
    "origin of another port": ({"origin": f"{BASE}:8080"}, ["not this site"]),
    "origin of a sibling subdomain": ({"origin": "http://shop.testserver"}, ["shop.testserver"]),
    "same-site fetch from a sibling subdomain": (
        {"sec-fetch-site": "same-site", "origin": "http://shop.testserver"},
        ["refused"],
    ),
    "origin null": ({"origin": "null"}, ["null"]),
    "sec-fetch-site cross-site": ({"sec-fetch-site": "cross-site"}, ["cross-site"]),
    "sec-fetch-site same-site": ({"sec-fetch-site": "same-site"}, ["same-site"]),
    "sec-fetch-site none": ({"sec-fetch-site": "none"}, ["Sec-Fetch-Site"]),
    "same-origin fetch-site but foreign origin": (
        {"sec-fetch-site": "same-origin", "origin": "https://evil.example"},
        ["evil.example"],
    ),
    "own origin but cross-site fetch-site": (
        {"sec-fetch-site": "cross-site", "origin": BASE},
        ["cross-site"],
    ),
}


@pytest.mark.parametrize("case", list(CROSS_SITE), ids=list(CROSS_SITE))
@pytest.mark.parametrize("kind", ["json", "form"])
async def test_cross_site_decisions_are_refused(client, kit, case, kind):
    headers, words = CROSS_SITE[case]
    if kind == "json":
        r = await client.post("/consent", json={"action": "accept_all"}, headers=headers)
    else:
        # A forged form may even carry a valid token: the browser's word about the origin wins.
        data = {"action": "accept_all", "next": "/", "csrf_token": kit.csrf.token(None)}
        r = await post_form(client, data, headers=headers)
    await assert_refused(kit, r, 403, *words)
    assert (await client.get("/")).text == "necessary=1 analytics=0 ads=0"


async def test_cross_site_withdrawal_of_an_existing_decision_is_refused(client, kit):
    assert (await post_form(client, {"action": "accept_all", "next": "/"})).status_code == 303
    r = await post_form(
        client, {"action": "withdraw", "next": "/"}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.headers.get_list("set-cookie") == []
    assert [rec.action for rec in await all_records(kit)] == ["accept_all"]
    assert (await client.get("/")).text == "necessary=1 analytics=1 ads=1"


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": BASE},
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "same-origin", "origin": BASE},
        {"origin": "https://testserver"},  # behind a TLS-terminating proxy the app sees http
        {"origin": "http://TESTSERVER:80"},
    ],
    ids=["origin", "fetch-site", "both", "https origin behind proxy", "default port"],
)
async def test_same_origin_forms_need_no_token(client, kit, headers):
    r = await post_form(client, {"action": "accept_all", "next": "/"}, headers=headers)
    assert r.status_code == 303, r.text
    consent_cookie(r)
    assert len(await all_records(kit)) == 1


async def test_form_without_origin_headers_or_token_is_refused(client, kit):
    r = await post_form(client, {"action": "accept_all", "next": "/"}, headers={})
    await assert_refused(kit, r, 403, "token")


@pytest.mark.parametrize("token", ["", "garbage", "-.abc.def"])
async def test_form_with_a_bad_token_is_refused(client, kit, token):
    r = await post_form(client, {"action": "accept_all", "next": "/", "csrf_token": token}, headers={})
    await assert_refused(kit, r, 403, "token")


async def test_form_with_a_token_for_nobody_is_accepted(client, kit):
    token = kit.csrf.token(None)
    r = await post_form(client, {"action": "save", "granted": ["analytics"], "csrf_token": token}, headers={})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"
    consent_cookie(r)
    [record] = await all_records(kit)
    assert record.method == "no_js_form"
    assert record.purposes == {"necessary": True, "analytics": True, "ads": False}


async def test_form_with_the_visitors_own_token_is_accepted(client, kit):
    subject = (await client.post("/consent", json={"action": "accept_all"}, headers={"origin": BASE})).json()[
        "subject_id"
    ]
    token = kit.csrf.token(subject)
    r = await post_form(client, {"action": "withdraw", "next": "/", "csrf_token": token}, headers={})
    assert r.status_code == 303, r.text
    assert [rec.action for rec in await all_records(kit)] == ["accept_all", "withdraw"]


async def test_token_issued_to_another_subject_is_refused(client, kit):
    r = await client.post("/consent", json={"action": "accept_all"}, headers={"origin": BASE})
    assert r.status_code == 200
    token = kit.csrf.token("someone-else-entirely")
    r = await post_form(client, {"action": "withdraw", "next": "/", "csrf_token": token}, headers={})
    assert r.status_code == 403
    assert "token" in r.text
    assert r.headers.get_list("set-cookie") == []
    assert [rec.action for rec in await all_records(kit)] == ["accept_all"]


async def test_a_token_anyone_can_fetch_does_not_speak_for_a_known_visitor(client, kit):
    # A forger can fetch a token for nobody from the site; it must not change a known visitor's choice.
    r = await client.post("/consent", json={"action": "reject_all"}, headers={"origin": BASE})
    assert r.status_code == 200
    token = kit.csrf.token(None)
    r = await post_form(client, {"action": "accept_all", "next": "/", "csrf_token": token}, headers={})
    assert r.status_code == 403 and "token" in r.text
    assert r.headers.get_list("set-cookie") == []
    assert [rec.action for rec in await all_records(kit)] == ["reject_all"]


async def test_subject_bound_token_does_not_work_for_a_visitor_without_cookie(client, kit):
    token = kit.csrf.token("some-subject")
    r = await post_form(client, {"action": "accept_all", "next": "/", "csrf_token": token}, headers={})
    await assert_refused(kit, r, 403, "token")


async def test_token_signed_with_another_key_is_refused(make_kit, kit, client):
    stranger = make_kit(secret_keys=[OTHER_SECRET])
    try:
        token = stranger.csrf.token(None)
    finally:
        await stranger.aclose()
    r = await post_form(client, {"action": "accept_all", "next": "/", "csrf_token": token}, headers={})
    await assert_refused(kit, r, 403, "token")


async def test_token_of_an_older_key_still_works_after_rotation(make_kit):
    old = make_kit(secret_keys=[SECRET])
    token = old.csrf.token(None)
    await old.aclose()
    kit = make_kit(secret_keys=[OTHER_SECRET, SECRET])
    async with serve(make_app(kit), kit) as c:
        r = await post_form(c, {"action": "accept_all", "next": "/", "csrf_token": token}, headers={})
        assert r.status_code == 303, r.text


async def test_token_is_not_a_json_field(client, kit):
    r = await client.post(
        "/consent",
        json={"action": "accept_all", "csrf_token": kit.csrf.token(None)},
        headers={"origin": BASE},
    )
    await assert_refused(kit, r, 400, "csrf_token")


async def test_trusted_origin_may_post_decisions(make_kit):
    kit = make_kit(trusted_origins=["https://shop.example.com"])
    async with serve(make_app(kit), kit) as c:
        r = await c.post(
            "/consent", json={"action": "accept_all"}, headers={"origin": "https://shop.example.com"}
        )
        assert r.status_code == 200, r.text
        consent_cookie(r)
        r = await c.post(
            "/consent", json={"action": "reject_all"}, headers={"origin": "https://other.example.com"}
        )
        assert r.status_code == 403
        assert [rec.action for rec in await all_records(kit)] == ["accept_all"]


@pytest.mark.parametrize("fetch_site", ["same-site", "cross-site"])
async def test_trusted_origin_is_accepted_from_a_real_browser(make_kit, fetch_site):
    # What Chrome, Firefox and Safari send for a fetch from https://shop.example.com to
    # www.example.com (same-site) or from https://shop.example.net (cross-site).
    origin = "https://shop.example.com" if fetch_site == "same-site" else "https://shop.example.net"
    kit = make_kit(trusted_origins=[origin])
    async with serve(make_app(kit), kit, base_url="http://www.example.com") as c:
        r = await c.post(
            "/consent",
            json={"action": "accept_all"},
            headers={"origin": origin, "sec-fetch-site": fetch_site},
        )
        assert r.status_code == 200, r.text
