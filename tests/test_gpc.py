"""Global Privacy Control: Sec-GPC: 1 denies the purposes that honour it."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import decide, make_app
from http_helpers import all_records, post_form, serve, set_cookie_names
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from consentkit import Policy

GPC = {"sec-gpc": "1"}


def _vary(response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()}


async def test_gpc_denies_ads_for_a_visitor_who_accepted_all_without_it(client, kit):
    assert (await decide(client, "accept_all")).status_code == 200
    assert (await client.get("/")).text == "necessary=1 analytics=1 ads=1"

    r = await client.get("/", headers=GPC)
    assert r.text == "necessary=1 analytics=1 ads=0"

    state = (await client.get("/consent", headers=GPC)).json()
    assert state["gpc"] is True
    assert state["decided"] is True
    assert state["purposes"] == {"necessary": True, "analytics": True, "ads": False}
    assert state["gpc_purposes"] == ["ads"]

    # The signal is per request: without it the earlier grant applies again.
    assert (await client.get("/")).text == "necessary=1 analytics=1 ads=1"
    assert (await client.get("/consent")).json()["gpc"] is False


async def test_gpc_for_an_undecided_visitor_grants_nothing(client):
    r = await client.get("/", headers=GPC)
    assert r.text == "necessary=1 analytics=0 ads=0"
    state = (await client.get("/consent", headers=GPC)).json()
    assert state["gpc"] is True
    assert state["decided"] is False


@pytest.mark.parametrize("value", ["0", "true", "yes", "", "2", "1, 1", "11"])
async def test_other_gpc_values_state_no_preference(client, value):
    await decide(client, "accept_all")
    r = await client.get("/", headers={"sec-gpc": value})
    assert r.text == "necessary=1 analytics=1 ads=1"
    assert (await client.get("/consent", headers={"sec-gpc": value})).json()["gpc"] is False


@pytest.mark.parametrize(
    ("action", "granted"), [("accept_all", None), ("save", ["ads"]), ("save", ["analytics", "ads"])]
)
async def test_a_decision_made_while_sending_gpc_is_recorded_and_honoured(client, kit, action, granted):
    r = await decide(client, action, granted, headers=GPC)
    assert r.status_code == 200
    body = r.json()
    assert body["gpc"] is True
    assert body["purposes"]["ads"] is True
    [record] = await all_records(kit)
    assert record.gpc is True
    assert record.purposes["ads"] is True

    # The visitor's explicit choice, made after seeing the GPC notice, wins over the signal.
    assert (await client.get("/", headers=GPC)).text.endswith("ads=1")
    assert (await client.get("/consent", headers=GPC)).json()["purposes"]["ads"] is True


async def test_a_form_decision_made_while_sending_gpc_is_recorded_with_gpc(client, kit):
    r = await post_form(
        client, {"action": "accept_all", "next": "/"}, headers={"origin": "http://testserver", **GPC}
    )
    assert r.status_code == 303
    [record] = await all_records(kit)
    assert record.gpc is True
    assert record.method == "no_js_form"
    assert (await client.get("/", headers=GPC)).text == "necessary=1 analytics=1 ads=1"


async def test_a_decision_without_gpc_is_recorded_without_it(client, kit):
    await decide(client, "accept_all")
    [record] = await all_records(kit)
    assert record.gpc is False


async def test_refusing_while_sending_gpc_is_recorded(client, kit):
    r = await decide(client, "reject_all", headers=GPC)
    assert r.json()["purposes"] == {"necessary": True, "analytics": False, "ads": False}
    [record] = await all_records(kit)
    assert record.gpc is True
    assert record.action == "reject_all"


async def test_gpc_makes_the_firewall_drop_ad_cookies(kit):
    async def set_ad_cookies(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("ok")
        response.set_cookie("IDE", "1")
        response.set_cookie("_ga", "1")
        return response

    async with serve(make_app(kit, [Route("/tags", set_ad_cookies)]), kit) as c:
        await decide(c, "accept_all")
        assert set(set_cookie_names(await c.get("/tags"))) == {"IDE", "_ga"}
        assert set_cookie_names(await c.get("/tags", headers=GPC)) == ["_ga"]


async def test_gpc_keeps_ad_hooks_from_running(kit):
    ran = []

    @kit.hooks.on("ads")
    async def ad_hook(request):
        ran.append("ads")

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(await kit.hooks.fire("ads", request)))

    async with serve(make_app(kit, [Route("/ad", page)]), kit) as c:
        await decide(c, "accept_all")
        assert (await c.get("/ad", headers=GPC)).text == "False"
        assert ran == []
        assert (await c.get("/ad")).text == "True"
        assert ran == ["ads"]


async def test_well_known_gpc_json(client, kit):
    r = await client.get("/.well-known/gpc.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["gpc"] is True
    # The policy's version is a date: that is when the site last changed how it honours GPC.
    assert body["lastUpdate"] == date.fromisoformat(kit.policy.version).isoformat()
    assert set_cookie_names(r) == []


async def test_gpc_json_is_not_claimed_when_no_purpose_honours_gpc(make_kit, policy):
    data = policy.model_dump()
    for purpose in data["purposes"]:
        purpose["opt_out_signals"] = ()
    kit = make_kit(policy=Policy.model_validate(data))
    async with serve(make_app(kit), kit) as c:
        assert (await c.get("/.well-known/gpc.json")).status_code == 404
        await decide(c, "accept_all")
        r = await c.get("/", headers=GPC)
        assert r.text == "necessary=1 analytics=1 ads=1"
        assert "sec-gpc" not in _vary(r)
        assert "cookie" in _vary(r)


async def test_pages_that_read_consent_vary_on_sec_gpc(client):
    r = await client.get("/")
    assert {"cookie", "sec-gpc"} <= _vary(r)
    r = await client.get("/", headers=GPC)
    assert {"cookie", "sec-gpc"} <= _vary(r)


async def test_pages_that_only_set_cookies_vary_on_sec_gpc(kit):
    async def tags(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("ok")
        response.set_cookie("IDE", "1")
        return response

    async with serve(make_app(kit, [Route("/tags", tags)]), kit) as c:
        assert {"cookie", "sec-gpc"} <= _vary(await c.get("/tags"))
