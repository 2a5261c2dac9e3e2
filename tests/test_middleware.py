"""The middleware: consent on every request, Vary, key rotation, broken cookies, lifespan, websockets."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from typing import Any

import pytest
from conftest import SAME_ORIGIN, SECRET, decide, make_app
from http_helpers import consent_cookie, run_raw, serve, set_cookie_names, set_cookies
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from consentkit import ConfigurationError, get_consent

NEW_SECRET = "brand-new-secret-key-0123456789"
OTHER_SECRET = "somebody-elses-secret-key-987654"


def _vary(response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()}


# -- consent on the request -------------------------------------------------------------------------


async def both_ways(request: Request) -> PlainTextResponse:
    via_state = request.state.consent
    via_function = get_consent(request)
    return PlainTextResponse(
        f"same={via_state is via_function} decided={via_function.decided} "
        f"analytics={via_function.allows('analytics')}"
    )


async def test_request_state_and_get_consent_give_the_same_consent(kit):
    async with serve(make_app(kit, [Route("/both", both_ways)]), kit) as c:
        assert (await c.get("/both")).text == "same=True decided=False analytics=False"
        await decide(c, "save", ["analytics"])
        assert (await c.get("/both")).text == "same=True decided=True analytics=True"


async def test_get_consent_without_the_middleware_says_how_to_mount_it():
    async def page(request: Request) -> PlainTextResponse:
        get_consent(request)
        return PlainTextResponse("unreachable")

    app = Starlette(routes=[Route("/", page)])
    async with serve(app) as c:
        with pytest.raises(ConfigurationError) as info:
            await c.get("/")
    text = str(info.value)
    assert "kit.middleware" in text
    assert "kit.wrap" in text


async def test_allows_an_undeclared_purpose_raises(kit):
    from consentkit import UnknownPurposeError

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(get_consent(request).allows("analytic")))

    async with serve(make_app(kit, [Route("/typo", page)]), kit) as c:
        with pytest.raises(UnknownPurposeError, match="analytic"):
            await c.get("/typo")


# -- Vary ------------------------------------------------------------------------------------------


async def sets_session(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("session set")
    response.set_cookie("session", "abc")
    return response


async def reads_with_vary(request: Request) -> PlainTextResponse:
    get_consent(request)
    return PlainTextResponse("x", headers={"vary": "Accept-Encoding"})


VARY_ROUTES = [Route("/session", sets_session), Route("/vary", reads_with_vary)]


async def test_responses_that_read_consent_vary_on_cookie(kit):
    async with serve(make_app(kit, VARY_ROUTES), kit) as c:
        assert "cookie" in _vary(await c.get("/"))
        await decide(c, "accept_all")
        assert "cookie" in _vary(await c.get("/"))


async def test_a_plain_page_gets_no_vary_and_no_cookie(kit):
    async with serve(make_app(kit, VARY_ROUTES), kit) as c:
        r = await c.get("/plain")
        assert r.text == "hello"
        assert "vary" not in r.headers
        assert set_cookies(r) == []
        await decide(c, "accept_all")
        r = await c.get("/plain")
        assert "vary" not in r.headers
        assert set_cookies(r) == []


async def test_a_page_that_only_sets_cookies_varies_on_cookie(kit):
    async with serve(make_app(kit, VARY_ROUTES), kit) as c:
        r = await c.get("/session")
        assert set_cookie_names(r) == ["session"]
        assert "cookie" in _vary(r)


async def test_the_sites_own_vary_is_kept(kit):
    async with serve(make_app(kit, VARY_ROUTES), kit) as c:
        r = await c.get("/vary")
    assert {"accept-encoding", "cookie"} <= _vary(r)
    assert len(r.headers.get_list("vary")) == 1


@pytest.mark.parametrize("name", [b"vary", b"Vary", b"VARY"])
async def test_a_vary_header_in_any_case_is_merged_not_doubled(kit, name):
    async def app(scope, receive, send):
        get_consent(Request(scope))
        await send({"type": "http.response.start", "status": 200, "headers": [(name, b"Accept-Encoding")]})
        await send({"type": "http.response.body", "body": b"x"})

    sent = await run_raw(kit.wrap(app))
    varies = [v for k, v in sent[0]["headers"] if k.lower() == b"vary"]
    assert len(varies) == 1
    assert {v.strip().lower() for v in varies[0].split(b",")} >= {b"accept-encoding", b"cookie"}


# -- key rotation ------------------------------------------------------------------------------------


async def test_a_cookie_signed_with_an_older_key_is_honoured_and_re_signed(make_kit):
    old = make_kit(secret_keys=[SECRET])
    async with serve(make_app(old), old) as c:
        decided = (await decide(c, "save", ["analytics"])).json()
        old_cookie = c.cookies["consentkit"]

    new_only = make_kit(secret_keys=[NEW_SECRET])
    async with serve(make_app(new_only), new_only) as c:
        c.cookies.set("consentkit", old_cookie)
        assert (await c.get("/consent")).json()["decided"] is False  # the new key alone refuses it

    rotated = make_kit(secret_keys=[NEW_SECRET, SECRET])
    async with serve(make_app(rotated), rotated) as c:
        c.cookies.set("consentkit", old_cookie)
        r = await c.get("/")
        assert r.text == "necessary=1 analytics=1 ads=0"
        new_cookie, attrs = consent_cookie(r)
        assert new_cookie != old_cookie
        assert "httponly" in attrs and attrs["path"] == "/" and attrs["samesite"].lower() == "lax"
        lifetime = rotated.policy.consent_lifetime_days * 86400
        assert lifetime - 10 <= int(attrs["max-age"]) <= lifetime

        # Once re-signed, nothing more to do.
        r = await c.get("/", headers={"cookie": f"consentkit={new_cookie}"})
        assert r.text == "necessary=1 analytics=1 ads=0"
        assert set_cookies(r) == []

    async with serve(make_app(new_only), new_only) as c:
        c.cookies.set("consentkit", new_cookie)
        state = (await c.get("/consent")).json()
    assert state["decided"] is True
    assert state["subject_id"] == decided["subject_id"]
    assert state["receipt"] == decided["receipt"]
    assert state["purposes"] == decided["purposes"]


async def test_pages_that_set_cookies_re_sign_an_old_cookie_too(make_kit):
    old = make_kit(secret_keys=[SECRET])
    async with serve(make_app(old), old) as c:
        await decide(c, "accept_all")
        old_cookie = c.cookies["consentkit"]
    rotated = make_kit(secret_keys=[NEW_SECRET, SECRET])
    async with serve(make_app(rotated, VARY_ROUTES), rotated) as c:
        c.cookies.set("consentkit", old_cookie)
        r = await c.get("/session")
        assert set(set_cookie_names(r)) == {"session", "consentkit"}


# -- broken cookies -----------------------------------------------------------------------------------


async def _valid_cookie(make_kit, secret=SECRET) -> str:
    k = make_kit(secret_keys=[secret])
    async with serve(make_app(k), k) as c:
        await decide(c, "save", ["analytics"])
        return c.cookies["consentkit"]


def _tamper_grants(value: str) -> str:
    payload, _, rest = value.partition(".")
    parts = payload.split("~")
    parts[3], parts[4] = "ads-analytics", ""  # claim both granted, nothing denied
    return "~".join(parts) + "." + rest


BROKEN = {
    "tampered payload": lambda v: _tamper_grants(v),
    "tampered signature": lambda v: v[:-2] + ("AA" if v[-2:] != "AA" else "BB"),
    "truncated": lambda v: v[: len(v) // 2],
    "signature only": lambda v: v.rpartition(".")[2],
    "garbage": lambda v: "garbage!!not-a-cookie",
    "empty": lambda v: "",
    "dots": lambda v: "...",
    "huge": lambda v: "A" * 6000,
    "valid plus huge tail": lambda v: v + "x" * 5000,
    "percent-encoded": lambda v: "%FF%FE%00",
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
async def test_a_broken_cookie_means_undecided_never_500(make_kit, case):
    value = BROKEN[case](await _valid_cookie(make_kit))
    kit = make_kit()
    async with serve(make_app(kit), kit) as c:
        headers = {"cookie": f"consentkit={value}"}
        r = await c.get("/", headers=headers)
        assert r.status_code == 200
        assert r.text == "necessary=1 analytics=0 ads=0"
        state = (await c.get("/consent", headers=headers)).json()
        assert state["decided"] is False
        assert state["subject_id"] is None
        assert "previous" not in state
        assert (await c.get("/consent/history", headers=headers)).json()["records"] == []
        # The visitor can still decide; a new pseudonym is issued.
        r = await c.post("/consent", json={"action": "reject_all"}, headers={**SAME_ORIGIN, **headers})
        assert r.status_code == 200
        assert r.json()["subject_id"]


async def test_non_ascii_cookie_bytes_mean_undecided(kit):
    async with serve(make_app(kit), kit) as c:
        r = await c.get("/", headers={"cookie": b"consentkit=\xc3\xa9t\xc3\xa9\xff; other=1"})
        assert r.status_code == 200
        assert r.text == "necessary=1 analytics=0 ads=0"


async def test_a_cookie_signed_with_an_unknown_key_means_undecided(make_kit):
    foreign = await _valid_cookie(make_kit, secret=OTHER_SECRET)
    kit = make_kit()
    async with serve(make_app(kit), kit) as c:
        r = await c.get("/", headers={"cookie": f"consentkit={foreign}"})
        assert r.text == "necessary=1 analytics=0 ads=0"


async def test_a_broken_duplicate_does_not_hide_a_valid_cookie(make_kit):
    valid = await _valid_cookie(make_kit)
    kit = make_kit()
    async with serve(make_app(kit), kit) as c:
        for header in (f"consentkit=garbage; consentkit={valid}", f"consentkit={valid}; consentkit=garbage"):
            assert (await c.get("/", headers={"cookie": header})).text == "necessary=1 analytics=1 ads=0"


# -- kit.wrap on a raw ASGI app --------------------------------------------------------------------------


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    consent = scope["state"]["consent"]
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/tags":
        headers += [(b"set-cookie", b"IDE=1; Path=/"), (b"set-cookie", b"_ga=1; Path=/")]
    extra = scope["state"].get("db", "-")
    body = f"analytics={consent.allows('analytics')} ads={consent.allows('ads')} db={extra}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_wrap_serves_endpoints_and_enforces_on_a_raw_asgi_app(kit):
    app = kit.wrap(raw_app)
    async with serve(app, kit) as c:
        assert (await c.get("/")).text == "analytics=False ads=False db=-"
        r = await c.get("/tags")
        assert set_cookies(r) == []
        assert "cookie" in _vary(r)

        r = await decide(c, "save", ["analytics"])
        assert r.status_code == 200
        assert (await c.get("/")).text == "analytics=True ads=False db=-"
        assert set_cookie_names(await c.get("/tags")) == ["_ga"]
        assert (await c.get("/.well-known/gpc.json")).json()["gpc"] is True


async def test_lifespan_state_on_the_request_is_kept(kit):
    sent = await run_raw(kit.wrap(raw_app), {"state": {"db": "pool-1"}})
    await kit.aclose()
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"analytics=False ads=False db=pool-1"


# -- websockets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws", "/consent"])
async def test_websocket_scopes_pass_through_untouched(kit, path):
    seen: list[dict[str, Any]] = []

    async def inner(scope, receive, send):
        seen.append(scope)
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hi"})
        await send({"type": "websocket.close", "code": 1000})

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"cookie", b"consentkit=garbage"), (b"sec-gpc", b"1")],
        "subprotocols": [],
    }
    snapshot = dict(scope)
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    await kit.wrap(inner)(scope, receive, send)
    await kit.aclose()
    assert seen == [snapshot]
    assert seen[0] is scope
    assert "state" not in seen[0]
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "hi"},
        {"type": "websocket.close", "code": 1000},
    ]


async def test_starlette_websocket_route_works_under_the_middleware(kit):
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app = make_app(kit, [WebSocketRoute("/ws", ws)])
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    sent = []

    async def send(message):
        sent.append(message)
        if message["type"] == "websocket.close":
            await inbox.put({"type": "websocket.disconnect", "code": 1000})

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "subprotocols": [],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
    }
    await asyncio.wait_for(app(scope, inbox.get, send), 5)
    await kit.aclose()
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "hello"


# -- lifespan ------------------------------------------------------------------------------------------


async def _lifespan(app: Any) -> list[dict[str, Any]]:
    """Run startup then shutdown as a server does; return what the app sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"].startswith("lifespan.startup."):
            await inbox.put({"type": "lifespan.shutdown"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    await asyncio.wait_for(app(scope, inbox.get, send), 10)
    return sent


async def test_startup_opens_the_ledger(make_kit, ledger_path):
    kit = make_kit()
    sent = await _lifespan(make_app(kit))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ledger_path.exists()
    tables = {r[0] for r in sqlite3.connect(ledger_path).execute("SELECT name FROM sqlite_master")}
    assert "consentkit_ledger" in tables


async def test_startup_fails_on_a_ledger_that_is_not_sqlite(make_kit, tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my meeting notes, not a database\n" * 20)
    kit = make_kit(ledger=f"sqlite:///{bogus}")
    sent = await _lifespan(make_app(kit))
    [failed] = [m for m in sent if m["type"] == "lifespan.startup.failed"]
    assert str(bogus) in failed["message"]
    assert "not" in failed["message"]
    assert not any(m["type"] == "lifespan.startup.complete" for m in sent)
    assert bogus.read_text().startswith("these are my meeting notes")


async def test_startup_fails_on_an_sqlite_file_of_another_application(make_kit, tmp_path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    kit = make_kit(ledger=f"sqlite:///{other}")
    sent = await _lifespan(kit.wrap(Starlette()))  # any ASGI app, wrapped
    [failed] = [m for m in sent if m["type"] == "lifespan.startup.failed"]
    assert str(other) in failed["message"]
    assert "users" in failed["message"]


async def test_startup_with_an_unreachable_ledger_still_starts(make_kit, tmp_path, caplog):
    kit = make_kit(ledger=f"sqlite:///{tmp_path / 'not-yet' / 'ledger.db'}")
    sent = await _lifespan(make_app(kit))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert any("unavailable" in r.getMessage() for r in caplog.records)


# -- no garbage left behind ---------------------------------------------------------------------------


async def test_requests_leave_no_reference_cycles_behind(kit, tmp_path):
    # A request whose objects refer to one another in a cycle is freed only by the cyclic garbage
    # collector, which then runs every few hundred requests over everything they held: the
    # middleware must leave no more of them than the bare application does.
    from starlette.responses import FileResponse, HTMLResponse, StreamingResponse

    page = "<!doctype html><html><head><title>t</title></head><body><h1>Plans</h1></body></html>"
    (tmp_path / "page.html").write_text(page)

    async def html(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def streamed(request: Request) -> StreamingResponse:
        async def chunks():
            yield page[:40].encode()
            yield page[40:].encode()

        return StreamingResponse(chunks(), media_type="text/html")

    async def reads(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(get_consent(request).allows("analytics")))

    async def sets_cookies(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("ok")
        response.set_cookie("_ga", "GA1.2.3")
        response.set_cookie("session", "s")
        return response

    async def file(request: Request) -> FileResponse:
        return FileResponse(tmp_path / "page.html")

    routes = [
        Route("/plain", lambda request: PlainTextResponse("hello")),
        Route("/html", html),
        Route("/stream", streamed),
        Route("/reads", reads),
        Route("/cookies", sets_cookies),
        Route("/file", file),
    ]
    async with serve(make_app(kit, routes), kit) as c:
        decided = consent_cookie(await decide(c, "save", ["analytics"]))[0]
        visitors = {"undecided": [], "decided": [(b"cookie", f"consentkit={decided}".encode())]}
        bare = Starlette(routes=routes)
        ours = make_app(kit, routes)
        for path in ("/plain", "/html", "/stream", "/reads", "/cookies", "/file"):
            for visitor, headers in visitors.items():
                for extensions in ({}, {"extensions": {"http.response.pathsend": {}}}):
                    left = {}
                    for name, app in (("bare", bare), ("consentkit", ours)):
                        # get_consent needs the middleware: the bare app's /plain is the baseline
                        # for /reads (whatever else the process collects meanwhile counts on both).
                        where = "/plain" if name == "bare" and path == "/reads" else path
                        scope = {"path": where, "raw_path": where.encode(), **extensions}
                        sent = await run_raw(app, scope, headers)
                        assert sent[0]["status"] == 200, (path, sent[0])
                        # The fewest of three tries: garbage that something else in the process
                        # (a finishing test's threads) leaves meanwhile comes once, a cycle per
                        # request every time.
                        counts = []
                        for _ in range(3):
                            gc.collect()
                            gc.disable()
                            try:
                                for _ in range(20):
                                    await run_raw(app, scope, headers)
                                counts.append(gc.collect())
                            finally:
                                gc.enable()
                        left[name] = min(counts)
                    assert left["consentkit"] <= left["bare"], (path, visitor, extensions, left)
