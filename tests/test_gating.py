"""Server-side gating: hooks that run only where allowed, and @kit.requires on routes."""

from __future__ import annotations

import threading

import pytest
from conftest import decide, make_app
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from http_helpers import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consentkit import UnknownPurposeError, get_consent

# -- hooks -------------------------------------------------------------------------------------------


@pytest.fixture
def hooked(kit):
    """A site with sync and async hooks for analytics and one for ads; ``calls`` records runs."""
    calls: list[tuple[str, str, dict[str, object], bool]] = []
    loop_thread = threading.get_ident()

    @kit.hooks.on("analytics")
    async def count_view(request, **data):
        calls.append(("async-analytics", request.url.path, data, threading.get_ident() == loop_thread))

    @kit.hooks.on("analytics")
    def count_view_sync(request, **data):
        calls.append(("sync-analytics", request.url.path, data, threading.get_ident() == loop_thread))

    @kit.hooks.on("ads")
    def ad_pixel(request, **data):
        calls.append(("sync-ads", request.url.path, data, threading.get_ident() == loop_thread))

    async def fire(request: Request) -> JSONResponse:
        results = {}
        for purpose in request.query_params.getlist("p"):
            results[purpose] = await kit.hooks.fire(purpose, request, path=request.url.path, n=1)
        return JSONResponse(results)

    return make_app(kit, [Route("/fire", fire)]), calls, (count_view, count_view_sync, ad_pixel)


async def test_hooks_do_not_run_for_an_undecided_visitor(kit, hooked):
    app, calls, _ = hooked
    async with serve(app, kit) as c:
        r = await c.get("/fire", params={"p": ["analytics", "ads", "necessary"]})
    assert r.json() == {"analytics": False, "ads": False, "necessary": True}
    assert calls == []


async def test_hooks_run_only_for_allowed_purposes(kit, hooked):
    app, calls, _ = hooked
    async with serve(app, kit) as c:
        await decide(c, "save", ["analytics"])
        r = await c.get("/fire", params={"p": ["analytics", "ads"]})
    assert r.json() == {"analytics": True, "ads": False}
    assert [(name, path, data) for name, path, data, _ in calls] == [
        ("async-analytics", "/fire", {"path": "/fire", "n": 1}),
        ("sync-analytics", "/fire", {"path": "/fire", "n": 1}),
    ]
    on_loop = {name: flag for name, _, _, flag in calls}
    assert on_loop["async-analytics"] is True
    assert on_loop["sync-analytics"] is False  # sync hooks run in the thread pool


async def test_hooks_run_for_every_allowed_purpose(kit, hooked):
    app, calls, _ = hooked
    async with serve(app, kit) as c:
        await decide(c, "accept_all")
        r = await c.get("/fire", params={"p": ["analytics", "ads"]})
    assert r.json() == {"analytics": True, "ads": True}
    assert sorted(name for name, *_ in calls) == ["async-analytics", "sync-ads", "sync-analytics"]


async def test_hooks_stop_after_withdrawal(kit, hooked):
    app, calls, _ = hooked
    async with serve(app, kit) as c:
        await decide(c, "accept_all")
        await decide(c, "withdraw")
        r = await c.get("/fire", params={"p": ["analytics", "ads"]})
    assert r.json() == {"analytics": False, "ads": False}
    assert calls == []


def test_on_returns_the_function_and_keeps_registration_order(kit, hooked):
    _, _, (count_view, count_view_sync, ad_pixel) = hooked
    assert kit.hooks.registered("analytics") == [count_view, count_view_sync]
    assert kit.hooks.registered("ads") == [ad_pixel]
    assert callable(count_view) and callable(ad_pixel)


def test_on_with_an_unknown_purpose_raises_at_registration(kit):
    with pytest.raises(UnknownPurposeError) as info:

        @kit.hooks.on("analytic")
        def typo(request):  # pragma: no cover - never registered
            pass

    assert "analytic" in str(info.value)
    assert "analytics" in str(info.value)  # it lists what the policy declares
    assert kit.hooks.registered("analytics") == []


async def test_fire_with_an_unknown_purpose_raises(kit):
    async def page(request: Request) -> PlainTextResponse:
        await kit.hooks.fire("marketing", request)
        return PlainTextResponse("unreachable")

    async with serve(make_app(kit, [Route("/x", page)]), kit) as c:
        with pytest.raises(UnknownPurposeError):
            await c.get("/x")


async def test_a_hooks_exception_reaches_the_caller(kit):
    @kit.hooks.on("necessary")
    async def broken(request):
        raise RuntimeError("hook failed")

    async def page(request: Request) -> PlainTextResponse:
        try:
            await kit.hooks.fire("necessary", request)
        except RuntimeError as exc:
            return PlainTextResponse(f"caught {exc}")
        return PlainTextResponse("not raised")

    async with serve(make_app(kit, [Route("/x", page)]), kit) as c:
        assert (await c.get("/x")).text == "caught hook failed"


# -- @kit.requires on Starlette -------------------------------------------------------------------------


def _starlette_guarded(kit, **requires_kw):
    @kit.requires("ads", **requires_kw)
    async def ad_async(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"ad for {get_consent(request).subject_id is not None}")

    @kit.requires("ads", **requires_kw)
    def ad_sync(request):
        return PlainTextResponse("sync ad")

    return make_app(kit, [Route("/ad", ad_async), Route("/ad-sync", ad_sync)])


@pytest.mark.parametrize("path", ["/ad", "/ad-sync"])
async def test_requires_refuses_with_403_by_default(kit, path):
    async with serve(_starlette_guarded(kit), kit) as c:
        r = await c.get(path)
        assert r.status_code == 403
        assert kit.policy.purpose("ads").title["en"] in r.text
        assert "/consent" in r.text
        assert "cookie" in r.headers["vary"].lower()

        await decide(c, "save", ["analytics"])
        assert (await c.get(path)).status_code == 403


@pytest.mark.parametrize(("path", "text"), [("/ad", "ad for True"), ("/ad-sync", "sync ad")])
async def test_requires_runs_the_endpoint_when_allowed(kit, path, text):
    async with serve(_starlette_guarded(kit), kit) as c:
        await decide(c, "accept_all")
        r = await c.get(path)
        assert r.status_code == 200
        assert r.text == text
        assert "cookie" in r.headers["vary"].lower()


def test_requires_with_an_unknown_purpose_raises_at_decoration(kit):
    with pytest.raises(UnknownPurposeError):
        kit.requires("advertising")


def test_requires_keeps_the_endpoint_name(kit):
    @kit.requires("ads")
    async def ad_slot(request):
        """Doc."""

    assert ad_slot.__name__ == "ad_slot"
    assert ad_slot.__doc__ == "Doc."


ASK = PlainTextResponse("please allow ads", status_code=451)


async def _async_fallback(request: Request) -> Response:
    return RedirectResponse(f"/consent/banner?from={request.url.path}", status_code=303)


def _sync_fallback(request: Request) -> Response:
    return PlainTextResponse(f"no ads on {request.url.path}", status_code=402)


@pytest.mark.parametrize("path", ["/ad", "/ad-sync"])
@pytest.mark.parametrize(
    ("fallback", "status", "check"),
    [
        (ASK, 451, lambda r, path: r.text == "please allow ads"),
        (_sync_fallback, 402, lambda r, path: r.text == f"no ads on {path}"),
        (_async_fallback, 303, lambda r, path: r.headers["location"] == f"/consent/banner?from={path}"),
    ],
    ids=["response", "sync-callable", "async-callable"],
)
@pytest.mark.parametrize("level", ["route", "kit"])
async def test_requires_fallbacks(make_kit, path, fallback, status, check, level):
    if level == "route":
        kit = make_kit()
        app = _starlette_guarded(kit, fallback=fallback)
    else:
        kit = make_kit(requires_fallback=fallback)
        app = _starlette_guarded(kit)
    async with serve(app, kit) as c:
        r = await c.get(path)
        assert r.status_code == status
        assert check(r, path)
        await decide(c, "accept_all")
        assert (await c.get(path)).status_code == 200


async def test_route_fallback_overrides_the_kit_fallback(make_kit):
    kit = make_kit(requires_fallback=PlainTextResponse("kit says no", status_code=451))

    @kit.requires("ads", fallback=PlainTextResponse("route says no", status_code=402))
    async def special(request):
        return PlainTextResponse("ad")

    @kit.requires("ads")
    async def ordinary(request):
        return PlainTextResponse("ad")

    async with serve(make_app(kit, [Route("/special", special), Route("/ordinary", ordinary)]), kit) as c:
        r = await c.get("/special")
        assert (r.status_code, r.text) == (402, "route says no")
        r = await c.get("/ordinary")
        assert (r.status_code, r.text) == (451, "kit says no")


# -- @kit.requires on FastAPI ---------------------------------------------------------------------------


def _fastapi_app(kit):
    app = FastAPI(middleware=[kit.middleware])

    @app.get("/with-request")
    @kit.requires("ads")
    async def with_request(request: FastAPIRequest):
        return {"ad": True, "analytics": get_consent(request).allows("analytics")}

    @app.get("/without-request")
    @kit.requires("ads")
    async def without_request():
        return {"ad": True}

    @app.get("/items/{item_id}")
    @kit.requires("analytics")
    async def item(item_id: int, q: str = "none"):
        return {"item": item_id, "q": q}

    @app.get("/sync")
    @kit.requires("ads")
    def sync_endpoint():
        return {"sync": True}

    @app.get("/sync-with-request")
    @kit.requires("ads")
    def sync_with_request(request: FastAPIRequest):
        return {"state": request.state.consent.decided}

    @app.get("/consent-info")
    async def info(request: FastAPIRequest):
        consent = get_consent(request)
        return {"decided": consent.decided, "same": consent is request.state.consent}

    return app


FASTAPI_ROUTES = {
    "/with-request": {"ad": True, "analytics": True},
    "/without-request": {"ad": True},
    "/sync": {"sync": True},
    "/sync-with-request": {"state": True},
}


@pytest.mark.parametrize("path", list(FASTAPI_ROUTES))
async def test_fastapi_requires_with_and_without_request(kit, path):
    async with serve(_fastapi_app(kit), kit) as c:
        r = await c.get(path)
        assert r.status_code == 403
        assert "Targeted advertising" in r.text
        await decide(c, "accept_all")
        r = await c.get(path)
        assert r.status_code == 200, r.text
        assert r.json() == FASTAPI_ROUTES[path]


async def test_fastapi_requires_keeps_path_and_query_parameters(kit):
    async with serve(_fastapi_app(kit), kit) as c:
        assert (await c.get("/items/7")).status_code == 403
        await decide(c, "save", ["analytics"])
        r = await c.get("/items/7", params={"q": "blue"})
        assert r.status_code == 200, r.text
        assert r.json() == {"item": 7, "q": "blue"}
        assert (await c.get("/items/seven")).status_code == 422


async def test_fastapi_get_consent_and_request_state(kit):
    async with serve(_fastapi_app(kit), kit) as c:
        assert (await c.get("/consent-info")).json() == {"decided": False, "same": True}
        await decide(c, "reject_all")
        assert (await c.get("/consent-info")).json() == {"decided": True, "same": True}


def test_fastapi_openapi_does_not_show_the_injected_request(kit):
    schema = _fastapi_app(kit).openapi()
    for path in ("/without-request", "/sync", "/items/{item_id}"):
        params = schema["paths"][path]["get"].get("parameters", [])
        assert all("consentkit" not in p["name"] for p in params), params
    item_params = {p["name"] for p in schema["paths"]["/items/{item_id}"]["get"]["parameters"]}
    assert item_params == {"item_id", "q"}


async def test_fastapi_requires_fallback(make_kit):
    kit = make_kit(requires_fallback=JSONResponse({"error": "consent needed"}, status_code=403))
    async with serve(_fastapi_app(kit), kit) as c:
        r = await c.get("/without-request")
        assert r.status_code == 403
        assert r.json() == {"error": "consent needed"}
