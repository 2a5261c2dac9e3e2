"""The pure ASGI middleware (DESIGN §3).

It is on every request of every page, so it does the least it can up front: it only replaces
``scope["state"]`` with a dict that reads the consent cookie the first time somebody asks for
``consent``, and wraps ``send``. At the start of the response it does more only when the
response sets cookies (the firewall) or somebody read the consent (``Vary`` and key rotation).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ConsentkitError
from .inject import Injector, insert_parts

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .consent import Consent
    from .kit import ConsentKit

log = logging.getLogger("consentkit")


class _Done:
    """An awaitable that is already done: what ``send`` answers while we hold a message."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()


class RequestState(dict[str, Any]):
    """``scope["state"]`` that works out ``consent`` on first access (``request.state.consent``).

    Each middleware makes a subclass that knows its kit, so that creating one per request runs
    no Python ``__init__``.
    """

    __slots__ = ("_scope",)
    _kit: ConsentKit
    _scope: Scope

    def __missing__(self, key: str) -> Any:
        if key != "consent":
            raise KeyError(key)
        consent = self._kit.consent_for_scope(self._scope)
        self["consent"] = consent
        return consent


def _add_vary(headers: list[tuple[bytes, bytes]], vary: bytes) -> None:
    for i, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            present = {v.strip().lower() for v in value.split(b",")}
            missing = [v for v in vary.split(b", ") if v.lower() not in present]
            if missing:
                headers[i] = (key, b", ".join([value, *missing]))
            return
    headers.append((b"vary", vary))


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
        state._scope = scope
        previous = scope.get("state")
        if previous:
            state.update(previous)
        scope["state"] = state

        held: Message | None = None  # an HTML page's start, until its body shows what to do
        cookies = False
        injector: Injector | None = None

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal held, cookies, injector
            if injector is not None:
                return injector.body(message)
            if held is not None:
                start, held = held, None
                if not message.get("more_body", False):
                    # The usual case: the whole page in one message.
                    return self._inject_whole(scope, state, start, message, send, cookies)
                injector = Injector(
                    send,
                    lambda m: self._enforce(state, m, send, cookies, self.vary_page),
                    lambda: self._tag_bytes(scope, state),
                )
                return injector.begin(start, message)
            if message["type"] == "http.response.start":
                html = False
                for key, value in message["headers"]:
                    if key == b"content-type":
                        html = value.startswith(b"text/html")
                    # ASGI says lower case, but some apps send "Set-Cookie" or worse: the
                    # firewall must see them all (a page with an odd spelling of its content
                    # type merely goes without the banner).
                    elif len(key) == 10 and key.lower() == b"set-cookie":
                        cookies = True
                if html and self.inject and scope["method"] == "GET" and state.get("consent_banner", True):
                    held = message
                    return _DONE
                if cookies or "consent" in state:
                    return self._enforce(state, message, send, cookies)
            return send(message)

        return self.app(scope, receive, send_wrapper)

    def _enforce(
        self, state: RequestState, message: Message, send: Send, cookies: bool, vary: bytes | None = None
    ) -> Awaitable[None]:
        consent: Consent = state["consent"]
        headers = list(message["headers"])
        if cookies:
            filtered = self.kit.firewall.filter(headers, consent)
            if filtered is not None:
                headers = filtered
        # The answer depended on the visitor's cookie (and signal): keep it out of shared caches.
        _add_vary(headers, vary or self.vary)
        stored = consent.stored
        if stored is not None and stored.old_key:
            headers.append(self.kit.cookie_header(stored))
        message["headers"] = headers
        return send(message)

    def _tags(self, scope: Scope, state: RequestState) -> tuple[list[bytes], list[bytes]]:
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
        return renderer.tag_parts(
            consent, renderer.locale(accept_language), here, nonce if isinstance(nonce, str) else None
        )

    async def _pass(
        self, state: RequestState, start: Message, body: Message, send: Send, cookies: bool
    ) -> None:
        """Send a page that does not get the banner as it came (with the usual enforcement)."""
        if cookies or "consent" in state:
            await self._enforce(state, start, send, cookies)
        else:
            await send(start)
        await send(body)

    def _tag_bytes(self, scope: Scope, state: RequestState) -> tuple[bytes, bytes]:
        head, body = self._tags(scope, state)
        return b"".join(head), b"".join(body)

    async def _inject_whole(
        self, scope: Scope, state: RequestState, start: Message, body: Message, send: Send, cookies: bool
    ) -> None:
        page = body.get("body", b"")
        status = start["status"]
        if not page or status in (204, 304) or status < 200 or 300 <= status < 400:
            await self._pass(state, start, body, send, cookies)
            return
        try:
            head, tail = self._tags(scope, state)
        except Exception:
            # A broken template override must not take the site's pages down with it: the page
            # goes out without the banner, and the operator hears about it.
            log.exception("consentkit could not render the banner; the page is sent without it")
            await self._pass(state, start, body, send, cookies)
            return
        html = insert_parts(page, head, tail)
        consent: Consent = state["consent"]
        headers = start["headers"]
        if cookies:
            headers = self.kit.firewall.filter(list(headers), consent) or headers
        # One pass: the new length, and Vary — the page now shows the banner in the visitor's
        # language, or the settings control.
        length = str(len(html)).encode()
        out: list[tuple[bytes, bytes]] = []
        vary = None
        for pair in headers:
            key = pair[0]
            if key == b"content-length" or (len(key) == 14 and key.lower() == b"content-length"):
                pair = (key, length)
            elif len(key) == 4 and key.lower() == b"vary":
                vary = len(out)
            elif (
                len(key) == 16
                and key.lower() == b"content-encoding"
                and pair[1].strip().lower() not in (b"", b"identity")
            ):
                # Compressed: we would have to decompress it. The page goes as it came.
                await self._pass(state, start, body, send, cookies)
                return
            out.append(pair)
        if vary is None:
            out.append(self.vary_page_header)
        else:
            _add_vary(out, self.vary_page)
        if consent.stored is not None and consent.stored.old_key:
            out.append(self.kit.cookie_header(consent.stored))
        start["headers"] = out
        await send(start)
        await send({"type": "http.response.body", "body": html, "more_body": False})

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
