"""The cookie firewall: Set-Cookie headers of refused purposes never leave the server."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import decide, make_app
from http_helpers import cookies_named, parse_set_cookie, post_form, serve, set_cookie_names, set_cookies
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

ESSENTIAL = {"session", "csrftoken"}
ANALYTICS = {"_ga", "_ga_ABC123"}
ADS = {"IDE", "_gcl_au"}
UNDECLARED = {"tracker"}
EVERY = ESSENTIAL | ANALYTICS | ADS | UNDECLARED
PAST = "Thu, 01 Jan 1970 00:00:00 GMT"


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


async def set_named(request: Request) -> PlainTextResponse:
    """Sets each ``?c=`` cookie the way a Starlette site does."""
    response = PlainTextResponse("ok", headers={"x-app": "kept"})
    for name in request.query_params.getlist("c"):
        response.set_cookie(name, "v1", max_age=3600)
    return response


async def set_raw(request: Request) -> PlainTextResponse:
    """Sends each ``?h=`` value as a raw Set-Cookie header."""
    response = PlainTextResponse("ok")
    for header in request.query_params.getlist("h"):
        response.raw_headers.append((b"set-cookie", header.encode("latin-1")))
    return response


async def delete_named(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("ok")
    for name in request.query_params.getlist("c"):
        response.delete_cookie(name)
    return response


async def streamed(request: Request) -> StreamingResponse:
    async def body():
        yield b"part one, "
        yield b"part two"

    response = StreamingResponse(body(), media_type="text/plain")
    response.set_cookie("IDE", "v1")
    response.set_cookie("session", "s1")
    return response


ROUTES = [
    Route("/set", set_named),
    Route("/raw", set_raw),
    Route("/delete", delete_named),
    Route("/stream", streamed),
]


@pytest.fixture
def app(kit):
    return make_app(kit, ROUTES)


def _kit_app(kit):
    return make_app(kit, ROUTES)


async def _set(client, names):
    r = await client.get("/set", params={"c": sorted(names)})
    assert r.status_code == 200
    assert r.text == "ok"
    return r


@pytest.mark.parametrize(
    ("decision", "granted", "kept"),
    [
        (None, None, ESSENTIAL | UNDECLARED),
        ("reject_all", None, ESSENTIAL | UNDECLARED),
        ("save", ["analytics"], ESSENTIAL | UNDECLARED | ANALYTICS),
        ("save", ["ads"], ESSENTIAL | UNDECLARED | ADS),
        ("accept_all", None, EVERY),
        ("withdraw", None, ESSENTIAL | UNDECLARED),
    ],
    ids=["undecided", "reject_all", "analytics only", "ads only", "accept_all", "withdrawn"],
)
async def test_cookies_of_refused_purposes_are_dropped(client, decision, granted, kept):
    if decision is not None:
        assert (await decide(client, decision, granted)).status_code == 200
    r = await _set(client, EVERY)
    assert set(set_cookie_names(r)) == kept
    assert r.headers["x-app"] == "kept"
    # What was kept is what the site set, attributes included.
    for header in set_cookies(r):
        _, value, attrs = parse_set_cookie(header)
        assert value == "v1"
        assert attrs["max-age"] == "3600"


async def test_firewall_works_on_streamed_responses(client):
    r = await client.get("/stream")
    assert r.text == "part one, part two"
    assert set_cookie_names(r) == ["session"]


async def test_dropped_cookies_never_reach_the_browser(client):
    await decide(client, "save", ["analytics"])
    await _set(client, EVERY)
    jar = set(client.cookies.keys())
    assert jar >= ANALYTICS | ESSENTIAL
    assert not ADS & jar


@pytest.mark.parametrize(
    "header",
    [
        "IDE=; Max-Age=0; Path=/",
        "IDE=; Max-Age=-1; Path=/",
        f"IDE=; Expires={PAST}; Path=/",
        "_gcl_au=x; expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/; Domain=example.com",
        f"_ga=; Path=/; Expires={PAST}; Max-Age=0",
    ],
)
async def test_deletions_of_refused_purposes_always_pass(client, header):
    await decide(client, "reject_all")
    r = await client.get("/raw", params={"h": header})
    assert set_cookies(r) == [header]


async def test_starlette_delete_cookie_passes(client):
    await decide(client, "reject_all")
    r = await client.get("/delete", params={"c": sorted(ADS | ANALYTICS)})
    assert set(set_cookie_names(r)) == ADS | ANALYTICS


@pytest.mark.parametrize(
    "header",
    [
        "IDE=1",
        "IDE=1; Max-Age=3600; Path=/",
        "IDE=1; Max-Age=nonsense; Path=/",
        f"IDE=1; Expires={_http_date(timedelta(days=30))}; Path=/",
        f"IDE=1; Max-Age=3600; Expires={PAST}",
        "_ga_XYZ=1; Expires=not a date",
    ],
)
async def test_cookies_that_are_not_deletions_are_dropped(client, header):
    await decide(client, "reject_all")
    r = await client.get("/raw", params={"h": header})
    assert set_cookies(r) == []


@pytest.mark.parametrize(
    "header",
    [f"IDE=1; Expires={PAST}; Max-Age=3600; Path=/", "IDE=1; Max-Age=0; Max-Age=3600; Path=/"],
    ids=["expires-before-max-age", "last-max-age-counts"],
)
async def test_a_live_cookie_disguised_as_a_deletion_is_dropped(client, header):
    await decide(client, "reject_all")
    r = await client.get("/raw", params={"h": header})
    assert set_cookies(r) == []


async def test_firewall_responses_vary_on_cookie(client):
    r = await _set(client, {"IDE"})
    assert "cookie" in r.headers["vary"].lower()


# -- undeclared cookies ------------------------------------------------------------------------------


def _undeclared_warnings(caplog):
    return [
        rec for rec in caplog.records if rec.name.startswith("consentkit") and rec.levelno >= logging.WARNING
    ]


async def test_undeclared_cookies_are_reported_once_per_name_and_passed(make_kit, caplog):
    kit = make_kit()
    caplog.set_level(logging.WARNING, logger="consentkit")
    async with serve(_kit_app(kit), kit) as c:
        for _ in range(3):
            r = await _set(c, {"tracker", "abtest", "session"})
            assert set(set_cookie_names(r)) == {"tracker", "abtest", "session"}
    assert kit.firewall.undeclared == {"tracker", "abtest"}
    warnings = _undeclared_warnings(caplog)
    assert sorted(w.getMessage().split("'")[1] for w in warnings) == ["abtest", "tracker"]
    assert all("declared by no purpose" in w.getMessage() for w in warnings)


async def test_undeclared_cookies_are_dropped_in_block_mode(make_kit, caplog):
    kit = make_kit(undeclared_cookies="block")
    caplog.set_level(logging.WARNING, logger="consentkit")
    async with serve(_kit_app(kit), kit) as c:
        await decide(c, "accept_all")
        r = await _set(c, {"tracker", "session", "_ga", "IDE"})
        assert set(set_cookie_names(r)) == {"session", "_ga", "IDE"}
        # Deleting an undeclared cookie is still allowed.
        r = await c.get("/delete", params={"c": "tracker"})
        assert set_cookie_names(r) == ["tracker"]
    assert kit.firewall.undeclared == {"tracker"}
    assert len(_undeclared_warnings(caplog)) == 1


async def test_undeclared_cookies_pass_silently_in_allow_mode(make_kit, caplog):
    kit = make_kit(undeclared_cookies="allow")
    caplog.set_level(logging.DEBUG, logger="consentkit")
    async with serve(_kit_app(kit), kit) as c:
        r = await _set(c, {"tracker", "IDE"})
        assert set_cookie_names(r) == ["tracker"]
    assert kit.firewall.undeclared == set()
    assert _undeclared_warnings(caplog) == []


def test_unknown_undeclared_mode_is_refused(make_kit):
    with pytest.raises(ValueError, match="undeclared_cookies"):
        make_kit(undeclared_cookies="warn")


# -- expiring cookies on withdrawal --------------------------------------------------------------------


def _expired(response, name):
    """The Domain attributes (None for host-only) of the expiries of ``name`` in a response."""
    domains = []
    for value, attrs in cookies_named(response, name):
        assert value == ""
        assert attrs["max-age"] == "0"
        assert attrs["path"] == "/"
        domains.append(attrs.get("domain"))
    return domains


def _plant(client, names):
    for name in names:
        client.cookies.set(name, "planted")


@pytest.mark.parametrize("via", ["json", "form"])
async def test_withdrawal_expires_the_cookies_of_withdrawn_purposes(client, via):
    await decide(client, "accept_all")
    await _set(client, EVERY)  # the site's pages and tags set them while they were allowed
    assert set(client.cookies.keys()) >= EVERY

    if via == "json":
        r = await decide(client, "withdraw")
        assert r.status_code == 200
    else:
        r = await post_form(client, {"action": "withdraw", "next": "/"})
        assert r.status_code == 303

    for name in ANALYTICS | ADS:
        assert _expired(r, name) == [None], name
    expired = {n for n in set_cookie_names(r) if n != "consentkit"}
    assert expired == ANALYTICS | ADS
    jar = set(client.cookies.keys())
    assert not (ANALYTICS | ADS) & jar
    assert jar >= ESSENTIAL | UNDECLARED


async def test_partial_withdrawal_expires_only_the_denied_purpose(client):
    await decide(client, "accept_all")
    _plant(client, EVERY)
    r = await decide(client, "save", ["analytics"])
    assert {n for n in set_cookie_names(r) if n != "consentkit"} == ADS


async def test_refusing_expires_cookies_set_before_the_visitor_decided(client):
    _plant(client, {"_ga", "IDE", "session"})
    r = await decide(client, "reject_all")
    assert {n for n in set_cookie_names(r) if n != "consentkit"} == {"_ga", "IDE"}


async def test_granting_expires_nothing(client):
    _plant(client, EVERY)
    r = await decide(client, "accept_all")
    assert set_cookie_names(r) == ["consentkit"]


@pytest.mark.parametrize(
    ("base_url", "domains"),
    [
        ("http://www.example.com", [None, "www.example.com", "example.com"]),
        ("http://www.example.com:8443", [None, "www.example.com", "example.com"]),
        ("http://shop.eu.example.com", [None, "shop.eu.example.com", "eu.example.com", "example.com"]),
        ("http://127.0.0.1:8000", [None]),
        ("http://localhost:8000", [None]),
    ],
)
async def test_withdrawal_expires_cookies_for_parent_domains_too(make_kit, base_url, domains):
    kit = make_kit()
    async with serve(_kit_app(kit), kit, base_url=base_url) as c:
        origin = {"origin": base_url}
        r = await c.post("/consent", json={"action": "accept_all"}, headers=origin)
        assert r.status_code == 200
        _plant(c, {"_ga", "_ga_ABC123", "IDE", "session"})
        r = await c.post("/consent", json={"action": "withdraw"}, headers=origin)
        assert r.status_code == 200, r.text
    for name in ("_ga", "_ga_ABC123", "IDE"):
        assert sorted(_expired(r, name), key=str) == sorted(domains, key=str), name
    assert _expired(r, "session") == []


async def test_expiries_are_secure_when_the_cookie_is(make_kit):
    kit = make_kit(cookie_secure=True)
    async with serve(_kit_app(kit), kit) as c:
        r = await c.post(
            "/consent",
            json={"action": "withdraw"},
            headers={"origin": "http://testserver", "cookie": "_ga=1"},
        )
    [(_, attrs)] = cookies_named(r, "_ga")
    assert "secure" in attrs


# -- raw ASGI apps that do not lower-case header names ---------------------------------------------------


def _raw_cookie_app(header_name: bytes):
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (header_name, b"IDE=1; Path=/")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize("header_name", [b"set-cookie", b"Set-Cookie"])
async def test_raw_asgi_apps_cookies_are_filtered(kit, header_name):
    async with serve(kit.wrap(_raw_cookie_app(header_name)), kit) as c:
        r = await c.get("/")
        assert r.text == "ok"
        assert set_cookies(r) == []
        await decide(c, "accept_all")
        assert set_cookie_names(await c.get("/")) == ["IDE"]


@pytest.mark.parametrize("header_name", [b"SET-COOKIE", b"Set-cookie"])
async def test_raw_asgi_apps_cookies_are_filtered_whatever_the_header_case(kit, header_name):
    async with serve(kit.wrap(_raw_cookie_app(header_name)), kit) as c:
        r = await c.get("/")
        assert set_cookies(r) == []
