"""The pure ASGI middleware (DESIGN §3).

It is on every request of every page, so it does the least it can up front: it only replaces
``scope["state"]`` with a dict that reads the consent cookie the first time somebody asks for
``consent``, and wraps ``send``. At the start of the response it does more only when the
response sets cookies (the firewall) or somebody read the consent (``Vary`` and key rotation).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ConsentkitError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .consent import Consent
    from .kit import ConsentKit

log = logging.getLogger("consentkit")


class RequestState(dict[str, Any]):
    """``scope["state"]`` that works out ``consent`` on first access (``request.state.consent``)."""

    __slots__ = ("_kit", "_scope")

    def __init__(self, kit: ConsentKit, scope: Scope) -> None:
        self._kit = kit
        self._scope = scope

    def __missing__(self, key: str) -> Any:
        if key != "consent":
            raise KeyError(key)
        consent = self._kit.consent_for_scope(self._scope)
        self["consent"] = consent
        return consent


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
        self.vary = "Cookie, Sec-GPC" if kit.policy.gpc_ids else "Cookie"

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
        state = RequestState(self.kit, scope)
        previous = scope.get("state")
        if previous:
            state.update(previous)
        scope["state"] = state

        def send_wrapper(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = message["headers"]
                if "consent" in state or any(k.lower() == b"set-cookie" for k, _ in headers):
                    return self._enforce(scope, state, message, send)
            return send(message)

        return self.app(scope, receive, send_wrapper)

    async def _enforce(self, scope: Scope, state: RequestState, message: Message, send: Send) -> None:
        consent: Consent = state["consent"]
        raw = list(message["headers"])
        filtered = self.kit.firewall.filter(raw, consent)
        message["headers"] = raw if filtered is None else filtered
        headers = MutableHeaders(scope=message)
        # The answer depended on the visitor's cookie (and signal): keep it out of shared caches.
        headers.add_vary_header(self.vary)
        stored = consent.stored
        if stored is not None and stored.old_key:
            key, value = self.kit.cookie_header(stored, secure=self._secure(scope))
            headers.append(key.decode("latin-1"), value.decode("latin-1"))
        await send(message)

    def _secure(self, scope: Scope) -> bool:
        return self.kit.cookie_secure

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
