"""The pure ASGI middleware (DESIGN §3).

It is on every request of every page, so it does the least it can up front: it only replaces
``scope["state"]`` with a dict that reads the consent cookie the first time somebody asks for
``consent``, and wraps ``send``. At the start of the response it does more only when the
response sets cookies (the firewall), somebody read the consent (``Vary`` and key rotation), or
it is an HTML page that gets the banner (the new length is known then, so nothing is held back).

Nothing it keeps for a request refers back to the scope or to the wrapper: a reference cycle
per request would leave every request's objects to the cyclic garbage collector, which costs
more than all the rest (``tests/test_middleware.py`` checks).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ConsentkitError
from .inject import StreamInserter, insert

if TYPE_CHECKING:
    from .consent import Consent
    from .kit import ConsentKit

log = logging.getLogger("consentkit")


class _Done:
    """An awaitable that is already done: what ``send`` answers while we hold a message."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()
# Servers that may send a response's body from a file themselves (ASGI extensions).
_PATHSEND = "http.response.pathsend"
_ZEROCOPY = "http.response.zerocopysend"


async def _in_order(first: Awaitable[None], send: Send, message: Message) -> None:
    await first
    await send(message)


class RequestState(dict[str, Any]):
    """``scope["state"]`` that works out ``consent`` on first access (``request.state.consent``).

    Each middleware makes a subclass that knows its kit, so that creating one per request runs
    no Python ``__init__``.
    """

    __slots__ = ("_headers",)
    _kit: ConsentKit
    # The request's headers, not its scope: the scope holds this dict, and a reference cycle
    # would leave every request's objects to the cyclic garbage collector.
    _headers: list[tuple[bytes, bytes]]

    def __missing__(self, key: str) -> Any:
        if key != "consent":
            raise KeyError(key)
        consent = self._kit.consent_for_request_headers(self._headers)
        self["consent"] = consent
        return consent


def _is_vary(key: bytes) -> bool:
    return len(key) == 4 and key.lower() == b"vary"


def _merge_vary(value: bytes, vary: bytes) -> bytes:
    """A ``Vary`` value that also names the fields of ``vary`` (``b"Cookie, Sec-GPC"``)."""
    present = {v.strip().lower() for v in value.split(b",")}
    missing = [v for v in vary.split(b", ") if v.lower() not in present]
    return b", ".join([value, *missing]) if missing else value


class _Page:
    """Where a page that gets the banner is: its start held back, or the bytes still to insert."""

    __slots__ = ("cookies", "held", "stream", "tags")

    def __init__(
        self, cookies: bool, held: Message | None = None, tags: tuple[bytes, bytes] | None = None
    ) -> None:
        self.cookies = cookies  # whether its start sets cookies (the firewall's business)
        self.held = held
        self.tags = tags
        self.stream: StreamInserter | None = None


class ConsentMiddleware:
    """Reads consent, serves the consent endpoints, and enforces consent on responses."""

    def __init__(self, app: ASGIApp, kit: ConsentKit) -> None:
        from .endpoints import Endpoints

        self.app = app
        self.kit = kit
        self.prefix = kit.prefix
        self.prefix_slash = kit.prefix + "/"
        self.endpoints = Endpoints(kit)
        self.gpc_json = "/.well-known/gpc.json" if kit.policy.gpc_ids else None
        self.vary = b"Cookie, Sec-GPC" if kit.policy.gpc_ids else b"Cookie"
        self.vary_header = (b"vary", self.vary)
        self.vary_page = self.vary + b", Accept-Language"
        self.vary_page_header = (b"vary", self.vary_page)
        self.inject = kit.inject
        self.state_class = type("RequestState", (RequestState,), {"_kit": kit, "__slots__": ()})

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the awaitable: one coroutine frame fewer per request.
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return self._lifespan(scope, receive, send)
            return self.app(scope, receive, send)
        path: str = scope["path"]
        if path.startswith(self.prefix) and (path == self.prefix or path.startswith(self.prefix_slash)):
            return self.endpoints(scope, receive, send)
        if path == self.gpc_json:
            return self.endpoints.gpc_json(scope, receive, send)
        state = self.state_class()
        state._headers = scope["headers"]
        previous = scope.get("state")
        if previous:
            state.update(previous)
        scope["state"] = state

        page: _Page | None = None  # an HTML page that gets the banner

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal page
            if page is not None:
                return self._page_message(page, scope, state, message, send)
            if message["type"] == "http.response.start":
                html = cookies = False
                for key, value in message["headers"]:
                    if key == b"content-type":
                        html = value.startswith(b"text/html")
                    # ASGI says lower case, but some apps send "Set-Cookie" or worse: the
                    # firewall must see them all (a page with an odd spelling of its content
                    # type merely goes without the banner).
                    elif len(key) == 10 and key.lower() == b"set-cookie":
                        cookies = True
                if html and self.inject and scope["method"] == "GET" and state.get("consent_banner", True):
                    extensions = scope.get("extensions")
                    if extensions and (_PATHSEND in extensions or _ZEROCOPY in extensions):
                        # The body may come as a file the server sends itself, which we cannot
                        # rewrite: see the next message before announcing a new length.
                        page = _Page(cookies, held=message)
                        return _DONE
                    tags = self._begin(scope, state, message, cookies)
                    if tags is not None:
                        page = _Page(cookies, tags=tags)
                        return send(message)
                if cookies or "consent" in state:
                    return self._enforce(state, message, send, cookies)
            return send(message)

        return self.app(scope, receive, send_wrapper)

    def _page_message(
        self, page: _Page, scope: Scope, state: RequestState, message: Message, send: Send
    ) -> Awaitable[None]:
        """A message after the start of a page that gets the banner."""
        first: Awaitable[None] | None = None  # a held start, to go out before this message
        if page.held is not None:
            start, page.held = page.held, None
            if message["type"] == "http.response.body":
                page.tags = self._begin(scope, state, start, page.cookies)
            if page.tags is None:
                if page.cookies or "consent" in state:
                    return _in_order(self._enforce(state, start, send, page.cookies), send, message)
                return _in_order(send(start), send, message)
            first = send(start)
        to: Send = send
        if page.stream is not None:
            to = page.stream
        elif page.tags is not None:
            if not message.get("more_body", False):
                # The usual case: the whole page in one message.
                body = message.get("body", b"")
                if body and message["type"] == "http.response.body":
                    message["body"] = insert(body, *page.tags)
                page.tags = None
            else:
                to = page.stream = StreamInserter(send, *page.tags)
        return to(message) if first is None else _in_order(first, to, message)

    def _enforce(self, state: RequestState, message: Message, send: Send, cookies: bool) -> Awaitable[None]:
        consent: Consent = state["consent"]
        headers = message["headers"]
        if cookies:
            headers = self.kit.firewall.filter(headers, consent) or headers
        # The answer depended on the visitor's cookie (and signal): keep it out of shared caches.
        for i, (key, value) in enumerate(headers):
            if _is_vary(key):
                out = list(headers)
                out[i] = (key, _merge_vary(value, self.vary))
                break
        else:
            out = [*headers, self.vary_header]
        stored = consent.stored
        if stored is not None and stored.old_key:
            out.append(self.kit.cookie_header(stored))
        message["headers"] = out
        return send(message)

    def _tags(self, scope: Scope, state: RequestState) -> tuple[bytes, bytes]:
        """What to put into this visitor's page: in their language, for their state."""
        # One pass over the request headers for the language and, if nobody has read it yet, the
        # consent (the page of a visitor who does not read consent is the common case).
        accept_language = cookie = None
        gpc = False
        for key, value in scope["headers"]:
            if key == b"accept-language":
                accept_language = value
            elif key == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif key == b"sec-gpc" and value.strip() == b"1":
                gpc = True
        consent: Consent | None = state.get("consent")
        if consent is None:
            consent = state["consent"] = self.kit.consent_for_headers(cookie, gpc)
        query = scope.get("query_string", b"")
        here = scope["path"] + ("?" + query.decode("latin-1") if query else "") if query else scope["path"]
        renderer = self.kit.renderer
        nonce = state.get("csp_nonce")  # .get: the state dict's own miss handler is for "consent"
        return renderer.tags(
            consent, renderer.locale(accept_language), here, nonce if isinstance(nonce, str) else None
        )

    def _begin(
        self, scope: Scope, state: RequestState, start: Message, cookies: bool
    ) -> tuple[bytes, bytes] | None:
        """Rewrite the start of an HTML page that gets the banner (new length, ``Vary``, the
        firewall): the ``(head, body)`` bytes to insert into it, or None to leave it alone."""
        status = start["status"]
        if status < 200 or status in (204, 304) or 300 <= status < 400:
            return None
        try:
            tags = self._tags(scope, state)
        except Exception:
            # A broken template override must not take the site's pages down with it: the page
            # goes out without the banner, and the operator hears about it.
            log.exception("consentkit could not render the banner; the page is sent without it")
            return None
        consent: Consent = state["consent"]
        headers = start["headers"]
        if cookies:
            headers = self.kit.firewall.filter(headers, consent) or headers
        # One pass: the new length, and Vary — the page now shows the banner in the visitor's
        # language, or the settings control.
        out: list[tuple[bytes, bytes]] = []
        vary = False
        for pair in headers:
            key = pair[0]
            if key == b"content-length" or (len(key) == 14 and key.lower() == b"content-length"):
                try:
                    length = int(pair[1])
                except ValueError:
                    return None
                if length <= 0:
                    return None
                pair = (key, b"%d" % (length + len(tags[0]) + len(tags[1])))
            elif _is_vary(key):
                vary = True
                pair = (key, _merge_vary(pair[1], self.vary_page))
            elif (
                len(key) == 16
                and key.lower() == b"content-encoding"
                and pair[1].strip().lower() not in (b"", b"identity")
            ):
                return None  # compressed: we would have to decompress it
            out.append(pair)
        if not vary:
            out.append(self.vary_page_header)
        if consent.stored is not None and consent.stored.old_key:
            out.append(self.kit.cookie_header(consent.stored))
        start["headers"] = out
        return tags

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    await self.kit.startup()
                except ConsentkitError as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"consentkit: {exc}"})
                    return
            elif message["type"] == "lifespan.shutdown.complete":
                try:
                    await self.kit.aclose()
                except Exception:  # shutting down: report, do not mask the app's own outcome
                    log.exception("closing the consent ledger failed")
            await send(message)

        await self.app(scope, receive, send_wrapper)
