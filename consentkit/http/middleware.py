"""The pure ASGI middleware (the README's "Quickstart" mounts it).

Like Starlette's own (``GZipMiddleware``), it keeps one object per request, a
:class:`Responder`, and the request's path reads top to bottom:

1. anything that is not HTTP passes through (the lifespan opens and closes the ledger);
2. the consent endpoints under the mount and ``/.well-known/gpc.json`` are answered here;
3. every other request gets a ``scope["state"]`` that reads the consent cookie the first time
   somebody asks for ``request.state.consent``, and a ``send`` that sees the response start:
   cookies of refused purposes are dropped (the firewall), ``Vary`` is added where the answer
   depended on the visitor, an old key's cookie is signed again, and an HTML page gets the
   banner or the settings control (:mod:`consentkit.http.injection`).

It is on every request of every page, so the cheap checks come first and nothing is done for
a response that sets no cookie and did not read consent. Nothing kept for a request refers back
to its scope: a reference cycle per request would leave every request's objects to the cyclic
garbage collector, which costs more than all the rest (``tests/test_middleware.py`` checks).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..consent import Consent
from ..cookie import ConsentCookie
from ..errors import ConsentkitError
from ..firewall import CookieFirewall
from ..ui.rendering import Renderer, state_nonce
from .injection import StreamInserter, insert
from .paths import here
from .reading import ConsentReader, scan

log = logging.getLogger("consentkit")

# Servers that may send a response's body from a file themselves (ASGI extensions).
_PATHSEND = "http.response.pathsend"
_ZEROCOPY = "http.response.zerocopysend"
_Tags = tuple[bytes, bytes]


class RequestState(dict[str, Any]):
    """``scope["state"]`` that works out ``consent`` on first access (``request.state.consent``).

    It keeps the request's headers, not its scope: the scope holds this dict, and a cycle would
    leave every request to the garbage collector.
    """

    __slots__ = ("_headers", "_reader")
    _headers: list[tuple[bytes, bytes]]
    _reader: ConsentReader

    def __missing__(self, key: str) -> Any:
        if key != "consent":
            raise KeyError(key)
        consent = self["consent"] = self._reader.of_headers(self._headers)
        return consent


class ConsentMiddleware:
    """Reads consent, serves the consent endpoints, and enforces consent on responses.

    Built by ``kit.middleware`` / ``kit.wrap(app)`` with the parts it uses; sites do not build
    it themselves.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        endpoints: ASGIApp,
        gpc_json: ASGIApp | None,
        reader: ConsentReader,
        firewall: CookieFirewall,
        cookie: ConsentCookie,
        renderer: Renderer | None,
        vary: str,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.prefix_slash = prefix + "/"
        self.endpoints = endpoints
        self.gpc_json = gpc_json
        self.reader = reader
        self.firewall = firewall
        self.cookie = cookie
        self.renderer = renderer  # None: the site places the banner itself (inject=False)
        self.vary = vary.encode("latin-1")  # http/responses.py: vary_on
        # A page with the banner also depends on the visitor's language.
        self.vary_page = self.vary + b", Accept-Language"
        self._vary_headers = ((b"vary", self.vary), (b"vary", self.vary_page))
        self.startup = startup
        self.shutdown = shutdown

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the awaitable: one coroutine frame fewer per request.
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return self._lifespan(scope, receive, send)
            return self.app(scope, receive, send)
        path: str = scope["path"]
        if path.startswith(self.prefix) and (path == self.prefix or path.startswith(self.prefix_slash)):
            return self.endpoints(scope, receive, send)
        if path == "/.well-known/gpc.json" and self.gpc_json is not None:
            return self.gpc_json(scope, receive, send)
        state = RequestState()
        state._headers = scope["headers"]
        state._reader = self.reader
        previous = scope.get("state")
        if previous:
            state.update(previous)
        scope["state"] = state
        return self.app(scope, receive, Responder(self, scope, state, send).send)

    def rewrite_start(
        self, start: Message, consent: Consent, cookies: bool, added: int = 0, *, vary: bool = True
    ) -> bool:
        """Rewrite a response's start for this visitor, in one pass over its headers.

        The firewall drops cookies of refused purposes (when the response sets any); ``Vary``
        names what the answer depended on; an old key's cookie is signed again. ``added`` is
        the number of bytes a page that gets the banner will grow by: its ``Content-Length``
        grows with it, and ``False`` is returned (nothing changed) for a page that cannot take
        them (compressed, or with a length that is not one). ``vary=False`` says the caller saw
        no ``Vary`` header: then a response that sets no cookie and gets no banner (the page that
        merely read consent, the usual case) needs no pass over its headers at all.
        """
        headers = start["headers"]
        stored = consent.stored
        if not (cookies or added or vary):
            start["headers"] = (
                [*headers, self._vary_headers[0], self.cookie.header(stored)]
                if stored is not None and stored.old_key
                else [*headers, self._vary_headers[0]]
            )
            return True
        if cookies:
            headers = self.firewall.filter(headers, consent) or headers
        vary_value = self.vary_page if added else self.vary
        out: list[tuple[bytes, bytes]] = []
        seen_vary = False
        for pair in headers:
            key = pair[0]
            if key == b"content-type":  # on every page, and none of our business here
                pass
            elif key == b"vary" or (len(key) == 4 and key.lower() == b"vary"):
                seen_vary = True
                pair = (key, _merge_vary(pair[1], vary_value))
            elif added and (
                key == b"content-length" or (len(key) == 14 and key.lower() == b"content-length")
            ):
                try:
                    length = int(pair[1])
                except ValueError:
                    return False
                if length <= 0:
                    return False
                pair = (key, b"%d" % (length + added))
            elif (
                added
                and len(key) == 16
                and key.lower() == b"content-encoding"
                and pair[1].strip().lower() not in (b"", b"identity")
            ):
                return False  # compressed: we would have to decompress it
            out.append(pair)
        if not seen_vary:
            out.append(self._vary_headers[added > 0])
        if stored is not None and stored.old_key:
            out.append(self.cookie.header(stored))
        start["headers"] = out
        return True

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    await self.startup()
                except ConsentkitError as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"consentkit: {exc}"})
                    return
            elif message["type"] == "lifespan.shutdown.complete":
                try:
                    await self.shutdown()
                except Exception:  # shutting down: report, do not mask the app's own outcome
                    log.exception("closing the consent ledger failed")
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Responder:
    """One request's response on its way out (the ``send`` the application gets)."""

    __slots__ = ("mw", "page", "scope", "state", "to")

    def __init__(self, mw: ConsentMiddleware, scope: Scope, state: RequestState, send: Send) -> None:
        self.mw = mw
        self.scope = scope
        self.state = state
        self.to = send
        # An HTML page that gets the banner: its body's rewriter, or (rarely) its start, held
        # back until we know whether the server will send the body from a file.
        self.page: Page | tuple[Message, bool] | None = None

    def send(self, message: Message) -> Awaitable[None]:
        """Pass a message on, rewriting the response's start (and a page's body) for the visitor."""
        page = self.page
        if page is not None:
            if isinstance(page, Page):
                return page.send(message)
            return self._release(page[0], page[1], message)
        if message["type"] != "http.response.start":
            return self.to(message)
        html = cookies = vary = False
        for key, value in message["headers"]:
            if key == b"content-type":
                html = value[:9] == b"text/html"
            elif key != b"content-length":  # the other header every response has: one test
                # ASGI says lower case, but some apps send "Set-Cookie" or worse: the firewall
                # must see them all (a page with an odd spelling of its content type merely goes
                # without the banner).
                size = len(key)
                if size == 10:
                    if key.lower() == b"set-cookie":
                        cookies = True
                elif size == 4 and key.lower() == b"vary":
                    vary = True
        state = self.state
        if (
            html
            and self.mw.renderer is not None
            and self.scope["method"] == "GET"
            and state.get("consent_banner", True)
        ):
            extensions = self.scope.get("extensions")
            if extensions and (_PATHSEND in extensions or _ZEROCOPY in extensions):
                # The body may come as a file the server sends itself, which we cannot rewrite:
                # see the next message before announcing a new length.
                self.page = (message, cookies)
                return _done()
            tags = self._begin_page(message, cookies)
            if tags is not None:
                self.page = Page(self.to, tags)
                return self.to(message)
        if cookies or "consent" in state:
            self.mw.rewrite_start(message, state["consent"], cookies, vary=vary)
        return self.to(message)

    def _begin_page(self, start: Message, cookies: bool) -> _Tags | None:
        """Prepare an HTML page's start for the banner: the bytes to insert into its body, or
        ``None`` to leave the page alone (not a 2xx with a body, compressed, or a banner that
        cannot be rendered)."""
        status = start["status"]
        if status < 200 or status in (204, 304) or 300 <= status < 400:
            return None
        mw, scope, state = self.mw, self.scope, self.state
        renderer = mw.renderer
        assert renderer is not None
        try:
            cookie, gpc, language = scan(scope["headers"])
            consent = state.get("consent")
            if consent is None:
                reader = mw.reader
                consent = state["consent"] = (
                    reader.of(cookie, gpc) if reader.regions is None else reader.of_headers(scope["headers"])
                )
            locale = renderer.languages.best(language)
            tags = renderer.tags(consent, locale, here(scope), state_nonce(state))
        except Exception:
            # A broken template override must not take the site's pages down with it: the page
            # goes out without the banner, and the operator hears about it.
            log.exception("consentkit could not render the banner; the page is sent without it")
            return None
        if not mw.rewrite_start(start, consent, cookies, len(tags[0]) + len(tags[1])):
            return None
        return tags

    def _release(self, start: Message, cookies: bool, message: Message) -> Awaitable[None]:
        """The message after a held start: a body we can rewrite, or a file we cannot."""
        tags = self._begin_page(start, cookies) if message["type"] == "http.response.body" else None
        if tags is not None:
            page = self.page = Page(self.to, tags)
            return _in_order(self.to(start), page.send, message)
        self.page = None  # not a page we can rewrite after all: the rest passes through
        if cookies or "consent" in self.state:
            self.mw.rewrite_start(start, self.state["consent"], cookies)
        return _in_order(self.to(start), self.to, message)


class Page:
    """The body of an HTML page on its way to a visitor, getting the banner's bytes."""

    __slots__ = ("stream", "tags", "to")

    def __init__(self, send: Send, tags: _Tags) -> None:
        self.to = send
        self.tags: _Tags | None = tags  # still to go in
        self.stream: StreamInserter | None = None  # set when the page comes in several messages

    def send(self, message: Message) -> Awaitable[None]:
        """A body message of the page."""
        if self.stream is not None:
            return self.stream(message)
        tags = self.tags
        if tags is None:
            return self.to(message)
        if message.get("more_body", False):
            self.stream = StreamInserter(self.to, *tags)
            return self.stream(message)
        # The usual case: the whole page in one message.
        body = message.get("body", b"")
        if body and message["type"] == "http.response.body":
            message["body"] = insert(body, *tags)
        self.tags = None
        return self.to(message)


async def _in_order(
    first: Awaitable[None], send: Callable[[Message], Awaitable[None]], message: Message
) -> None:
    await first
    await send(message)


async def _done_coroutine() -> None:
    return None


def _done() -> Awaitable[None]:
    """What ``send`` answers while we hold a message back."""
    return _done_coroutine()


def _merge_vary(value: bytes, vary: bytes) -> bytes:
    """A ``Vary`` value that also names the fields of ``vary`` (``b"Cookie, Sec-GPC"``)."""
    present = {v.strip().lower() for v in value.split(b",")}
    missing = [v for v in vary.split(b", ") if v.lower() not in present]
    return b", ".join([value, *missing]) if missing else value
