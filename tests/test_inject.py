"""The banner injected into the site's HTML pages, and what is left alone."""

from __future__ import annotations

import itertools
import re
from html.parser import HTMLParser

import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, decide
from http_helpers import run_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from consentkit import Policy

PAGE = "<!doctype html><html lang='en'><head><title>Plans</title><script src='/tag.js'></script></head><body><h1>Plans</h1></body></html>"


async def html_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def streamed(request: Request) -> StreamingResponse:
    split = request.query_params.get("split", "</bo")

    async def chunks():
        head, _, tail = PAGE.partition(split)
        yield head.encode()
        yield (split + tail).encode()

    return StreamingResponse(chunks(), media_type="text/html")


async def streamed_without_body_end(request: Request) -> StreamingResponse:
    async def chunks():
        yield b"<p>fragment one</p>"
        yield b"<p>fragment two</p>"

    return StreamingResponse(chunks(), media_type="text/html")


LARGE = b"<html><head></head><body>" + b"x" * (4 * 1024 * 1024 + 10) + b"</body></html>"


async def large(request: Request) -> StreamingResponse:
    # A large page arriving in chunks with its length announced.
    body = LARGE

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    return StreamingResponse(chunks(), media_type="text/html", headers={"content-length": str(len(body))})


async def json_page(request: Request) -> JSONResponse:
    return JSONResponse({"html": "</body>"})


async def empty(request: Request) -> Response:
    return Response(status_code=204, media_type="text/html")


async def redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("/", status_code=302)


ROUTES = [
    Route("/page", html_page),
    Route("/stream", streamed),
    Route("/fragments", streamed_without_body_end),
    Route("/large", large),
    Route("/json", json_page),
    Route("/empty", empty),
    Route("/redirect", redirect),
]


@pytest.fixture
def site(kit):
    return Starlette(routes=ROUTES, middleware=[kit.middleware])


@pytest.fixture
async def browser(site, kit):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url=BASE) as c:
        yield c
    await kit.aclose()


class Forms(HTMLParser):
    """The forms of a page: their action, hidden fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict] = {}
        self.buttons: list[dict] = []
        self.switches: list[dict] = []
        self._form: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = a.get("id") or f"form{len(self.forms)}"
            self.forms[self._form] = {"action": a.get("action"), "hidden": {}}
        elif tag == "input" and a.get("type") == "hidden" and self._form:
            self.forms[self._form]["hidden"][a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("role") == "switch":
            self.switches.append(a)
        elif tag in ("button", "summary"):
            self.buttons.append({**a, "tag": tag, "form_owner": a.get("form") or self._form})

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def forms_of(html: str) -> Forms:
    parser = Forms()
    parser.feed(html)
    return parser


async def test_undecided_page_gets_the_banner_the_stylesheet_and_consent_mode_defaults(browser, kit):
    r = await browser.get("/page", headers={"accept-language": "en"})
    html = r.text
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    # The stylesheet and the Consent Mode defaults come first in <head>, before the page's own tag.
    head = html[html.index("<head>") : html.index("</head>")]
    assert head.index(kit.renderer.css_url) < head.index("/tag.js")
    assert head.index(kit.renderer.consent_mode_url) < head.index("/tag.js")
    assert "data-update" not in head  # nothing decided yet: defaults only
    # The banner and the widget just before </body>, after the page's content.
    assert html.index("<h1>Plans</h1>") < html.index('id="consentkit"') < html.index("</body>")
    assert f'<script src="{kit.renderer.js_url}" defer></script></body>' in html
    assert 'data-decided="false"' in html
    buttons = [
        b
        for b in forms_of(html).buttons
        if b.get("value") in ("accept_all", "reject_all") and b.get("form") == "ck-quick"
    ]
    assert [b["value"] for b in buttons] == ["accept_all", "reject_all"]
    assert "data-ck-customize" in html
    vary = {v.strip() for v in r.headers["vary"].split(",")}
    assert {"Cookie", "Accept-Language"} <= vary


async def test_no_switch_is_on_for_a_first_visit(browser):
    html = (await browser.get("/page")).text
    switches = forms_of(html).switches
    assert switches, "the preference center has switches"
    on = [s["value"] for s in switches if "checked" in s]
    assert set(on) == {"necessary"}  # only the essential one, locked
    assert all("disabled" in s for s in switches if s["value"] == "necessary")


async def test_decided_visitor_gets_the_settings_control_and_consent_mode_update(browser):
    await decide(browser, "save", ["analytics"])
    html = (await browser.get("/page")).text
    assert "data-ck-settings" in html and "data-ck-banner" not in html
    update = re.search(r"data-update='([^']*)'", html).group(1).replace("&#34;", '"')
    assert '"analytics_storage":"granted"' in update and '"ad_storage":"denied"' in update
    checked = {s["value"] for s in forms_of(html).switches if "checked" in s}
    assert checked == {"necessary", "analytics"}
    assert "Withdraw my consent" in html


async def test_the_banner_works_without_javascript(browser, kit):
    html = (await browser.get("/page?plan=home")).text
    form = forms_of(html).forms["ck-quick"]
    assert form["action"] == "/consent" and form["hidden"]["next"] == "/page?plan=home"
    # A browser without JS and without Origin headers posts the form as it is.
    r = await browser.post("/consent", data={**form["hidden"], "action": "reject_all"})
    assert r.status_code == 303 and r.headers["location"] == "/page?plan=home"
    records = [rec async for rec in kit.ledger.records()]
    assert [(rec.action, rec.method) for rec in records] == [("reject_all", "no_js_form")]
    after = (await browser.get("/page")).text
    assert "data-ck-settings" in after


async def test_the_preference_form_without_javascript_saves_choices(browser, kit):
    parser = forms_of((await browser.get("/page")).text)
    prefs = next(f for name, f in parser.forms.items() if name != "ck-quick")
    r = await browser.post("/consent", data={**prefs["hidden"], "granted": ["ads"], "action": "save"})
    assert r.status_code == 303
    record = [rec async for rec in kit.ledger.records()][-1]
    assert record.purposes == {"necessary": True, "analytics": False, "ads": True}


async def test_french_visitor_gets_french_texts_and_policy_texts(browser):
    html = (await browser.get("/page", headers={"accept-language": "fr-CA,fr;q=0.9,en;q=0.5"})).text
    assert 'lang="fr"' in html
    assert "Tout refuser" in html and "Tout accepter" in html and "Personnaliser" in html
    assert "Mesure d'audience" in html or "Mesure d&#39;audience" in html


async def test_gpc_notice_and_its_switch_off(browser):
    html = (await browser.get("/page", headers={"sec-gpc": "1"})).text
    assert "data-ck-gpc" in html and "Global Privacy Control" in html
    assert "Targeted advertising" in html[html.index("data-ck-gpc") :][:600]


async def test_policy_revision_notice_and_earlier_choices_prefilled(browser, make_kit, policy, site):
    await decide(browser, "save", ["analytics"])
    bumped = Policy.from_mapping(
        {
            "policy": {**policy.model_dump(exclude={"purposes"}), "revision": policy.revision + 1},
            "purposes": [p.model_dump() for p in policy.purposes],
        }
    )
    kit2 = make_kit(policy=bumped)
    app2 = Starlette(routes=ROUTES, middleware=[kit2.middleware])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app2), base_url=BASE, cookies=browser.cookies
    ) as c:
        html = (await c.get("/page")).text
    assert "data-ck-banner" in html and "changed on 2026-11-01" in html
    checked = {s["value"] for s in forms_of(html).switches if "checked" in s}
    assert checked == {"necessary", "analytics"}  # the earlier choice, to confirm or change
    await kit2.aclose()


async def test_streamed_html_gets_the_banner_even_when_body_end_is_split(browser):
    for split in ("</bo", "</", "<h1>"):
        r = await browser.get("/stream", params={"split": split})
        html = r.text
        assert html.count('id="consentkit"') == 1, split
        assert html.index('id="consentkit"') < html.index("</body>")
        assert html.endswith("</body></html>")


async def test_streamed_fragment_without_body_end_gets_the_banner_at_the_end(browser):
    html = (await browser.get("/fragments")).text
    assert html.startswith("<p>fragment one</p><p>fragment two</p>")
    assert 'id="consentkit"' in html


async def test_a_large_page_in_chunks_gets_the_banner_and_its_right_length(browser):
    r = await browser.get("/large")
    assert int(r.headers["content-length"]) == len(r.content) > len(LARGE)
    assert r.content.count(b'id="consentkit"') == 1
    assert r.content.endswith(b"</body></html>")
    assert r.content.index(b'id="consentkit"') > len(LARGE) - len(b"</body></html>")


@pytest.mark.parametrize("path", ["/json", "/empty", "/redirect"])
async def test_other_responses_are_left_alone(browser, path):
    r = await browser.get(path, follow_redirects=False)
    assert 'id="consentkit"' not in r.text


async def test_head_requests_and_compressed_pages_are_left_alone(kit):
    app = Starlette(routes=ROUTES, middleware=[kit.middleware, Middleware(GZipMiddleware, minimum_size=10)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/page", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.text == PAGE  # httpx decoded it: untouched
        head = await c.head("/page")
        assert head.status_code == 200 and head.content == b""
    await kit.aclose()


async def test_next_never_points_off_site(kit):
    async def anything(request):
        return HTMLResponse(PAGE)

    app = Starlette(routes=[Route("/{path:path}", anything)], middleware=[kit.middleware])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        html = (await c.get(httpx.URL(BASE + "//evil.example/page"))).text
    assert forms_of(html).forms["ck-quick"]["hidden"]["next"] == "/"
    await kit.aclose()


async def test_inject_false_and_the_template_helpers(make_kit, tmp_path):
    kit = make_kit(inject=False)
    loader = DictLoader(
        {
            "page.html": "<html><head>{{ consent_head() }}</head><body>"
            "<script {{ consent_scripts('ads') }} src='/ads.js'></script>"
            "<script {{ consent_scripts('necessary') }} src='/core.js'></script>"
            "{{ consent_banner() }}</body></html>"
        }
    )
    templates = Jinja2Templates(
        env=__import__("jinja2").Environment(loader=loader, autoescape=True),
        context_processors=[kit.context_processor],
    )

    async def page(request):
        return templates.TemplateResponse(request, "page.html")

    async def plain_page(request):
        return HTMLResponse(PAGE)

    app = Starlette(routes=[Route("/t", page), Route("/plain", plain_page)], middleware=[kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert 'id="consentkit"' not in (await c.get("/plain")).text  # nothing injected
        html = (await c.get("/t")).text
        assert html.count('id="consentkit"') == 1 and kit.renderer.css_url in html
        assert '<script type="text/plain" data-consent="ads" src=\'/ads.js\'>' in html
        assert "<script  src='/core.js'>" in html
        await c.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        html = (await c.get("/t")).text
        assert "<script  src='/ads.js'>" in html and "data-ck-settings" in html
    await kit.aclose()


async def test_csp_nonce_is_put_on_our_tags(kit):
    async def page(request):
        return HTMLResponse(PAGE)

    class Nonce:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            scope.setdefault("state", {})["csp_nonce"] = "r4nd0m"
            await self.app(scope, receive, send)

    app = Starlette(routes=[Route("/", page)], middleware=[Middleware(Nonce), kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        html = (await c.get("/")).text
    assert html.count('nonce="r4nd0m"') == 3  # stylesheet, Consent Mode defaults, widget
    await kit.aclose()


async def test_a_page_can_go_without_the_banner(kit):
    async def fragment(request):
        request.state.consent_banner = False  # an HTMX partial, an iframe document…
        return HTMLResponse("<li>item</li>")

    app = Starlette(routes=[Route("/fragment", fragment)], middleware=[kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert (await c.get("/fragment")).text == "<li>item</li>"
    await kit.aclose()


def test_head_tags_go_after_the_charset_declaration():
    from consentkit.http.injection import insert

    page = b'<!doctype html><html><head>\n  <meta charset="utf-8"><title>t</title></head><body></body></html>'
    out = insert(page, b"<HEAD-TAGS>", b"<BODY-TAGS>")
    assert out.index(b'<meta charset="utf-8">') < out.index(b"<HEAD-TAGS>") < out.index(b"<title>")
    assert out.index(b"<BODY-TAGS>") < out.index(b"</body>")
    # <header> is not <head>
    tricky = b"<html><body><header>x</header></body></html>"
    assert insert(tricky, b"<H>", b"<B>") == b"<html><body><header>x</header><H><B></body></html>"


async def test_a_page_with_the_banner_still_goes_through_the_firewall(kit):
    async def page_setting_cookies(request):
        response = HTMLResponse(PAGE)
        response.set_cookie("_ga", "GA1.2.3")  # analytics: refused until the visitor agrees
        response.set_cookie("session", "s")  # necessary
        return response

    app = Starlette(routes=[Route("/", page_setting_cookies)], middleware=[kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/")
        assert 'id="consentkit"' in r.text and int(r.headers["content-length"]) == len(r.content)
        names = [v.split("=", 1)[0] for v in r.headers.get_list("set-cookie")]
        assert names == ["session"]
        assert "Cookie" in r.headers["vary"]
    await kit.aclose()


async def test_a_broken_banner_template_does_not_take_the_page_down(make_kit, caplog):
    kit = make_kit(template_loader=DictLoader({"consentkit/banner.html": "{{ undefined_function() }}"}))
    app = Starlette(routes=ROUTES, middleware=[kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/page")
        assert r.status_code == 200 and r.text == PAGE
    assert "could not render the banner" in caplog.text
    await kit.aclose()


def chunked_page(chunks, announce_length=True):
    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        if announce_length:
            headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    return app


CHARSET_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <title>Plans</title>\n</head>'
    "\n<body>\n<main><h1>Plans</h1><p>" + "Unlimited calls. " * 40 + "</p></main>\n</body>\n</html>\n"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.sampled_from([PAGE, CHARSET_PAGE]),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=6),
    announce=st.booleans(),
)
async def test_a_page_in_any_chunks_gets_the_same_banner_and_its_announced_length(kit, text, cuts, announce):
    page = text.encode()
    edges = [0, *sorted(int(c * len(page)) for c in cuts), len(page)]
    chunks = [page[a:b] for a, b in itertools.pairwise(edges)]
    whole = await run_raw(kit.middleware.cls(chunked_page([page]), **kit.middleware.kwargs))
    split = await run_raw(kit.middleware.cls(chunked_page(chunks, announce), **kit.middleware.kwargs))
    expected = whole[1]["body"]
    assert expected != page and expected.count(b'id="consentkit"') == 1
    if b"charset" in page:  # the charset declaration stays first in <head>
        assert expected.index(b"charset") < expected.index(b"stylesheet")
    assert b"".join(m["body"] for m in split[1:]) == expected
    assert [m.get("more_body", False) for m in split[1:]][-1] is False
    length = dict(split[0]["headers"]).get(b"content-length")
    assert length == (str(len(expected)).encode() if announce else None)


async def test_a_server_that_sends_files_itself_gets_them_untouched(kit, tmp_path):
    # With the pathsend extension the server reads the file itself: the page cannot be
    # rewritten, so its length must not be changed either.
    (tmp_path / "page.html").write_text(PAGE)

    async def file_page(request: Request) -> FileResponse:
        return FileResponse(tmp_path / "page.html")

    app = Starlette(routes=[Route("/", file_page), Route("/page", html_page)], middleware=[kit.middleware])
    sent = await run_raw(app, {"extensions": {"http.response.pathsend": {}}})
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(PAGE)).encode()
    # An ordinary page on the same server still gets the banner, with its length right.
    sent = await run_raw(app, {"extensions": {"http.response.pathsend": {}}, "path": "/page"})
    body = b"".join(m["body"] for m in sent[1:])
    assert b'id="consentkit"' in body
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()
    await kit.aclose()


async def test_a_page_with_its_own_vary_keeps_it_and_adds_ours(kit):
    async def page_with_vary(request):
        return HTMLResponse(PAGE, headers={"Vary": "Accept-Encoding, cookie"})

    app = Starlette(routes=[Route("/", page_with_vary)], middleware=[kit.middleware])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/")
    assert 'id="consentkit"' in r.text and int(r.headers["content-length"]) == len(r.content)
    assert len(r.headers.get_list("vary")) == 1
    fields = [v.strip().lower() for v in r.headers["vary"].split(",")]
    assert sorted(fields) == ["accept-encoding", "accept-language", "cookie", "sec-gpc"]
    await kit.aclose()
