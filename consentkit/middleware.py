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

from .banner import scope_nonce
from .decisions import is_safe_next
from .errors import ConsentkitError
from .inject import Injector

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .consent import Consent
    from .kit import ConsentKit

log = logging.getLogger("consentkit")


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

        injector: Injector | None = None

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal injector
            if injector is not None:
                return injector.body(message)
            if message["type"] == "http.response.start":
                cookies = False
                html = False
                for key, value in message["headers"]:
                    # ASGI says lower case, but some apps send "Set-Cookie" or worse.
                    if len(key) == 10:
                        if key.lower() == b"set-cookie":
                            cookies = True
                    elif len(key) == 12 and key.lower() == b"content-type":
                        html = value[:9].lower() == b"text/html"
                if html and self.inject and scope["method"] == "GET":
                    injector = self._injector(scope, state, send, cookies)
                    return injector.start(message)
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
            headers.append(self.kit.cookie_header(stored, secure=self.kit.cookie_secure))
        message["headers"] = headers
        return send(message)

    def _injector(self, scope: Scope, state: RequestState, send: Send, cookies: bool) -> Injector:
        renderer = self.kit.renderer

        def make_tags() -> tuple[bytes, bytes]:
            consent: Consent = state["consent"]
            accept_language = None
            for key, value in scope["headers"]:
                if key == b"accept-language":
                    accept_language = value.decode("latin-1")
            locale = renderer.locale(accept_language)
            query = scope.get("query_string", b"")
            here = scope["path"] + ("?" + query.decode("latin-1") if query else "")
            return renderer.tags(consent, locale, here if is_safe_next(here) else "/", scope_nonce(scope))

        def send_start(message: Message) -> Awaitable[None]:
            # The page now shows the banner in the visitor's language, or the settings control.
            return self._enforce(state, message, send, cookies, self.vary_page)

        return Injector(send, send_start, make_tags)

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
