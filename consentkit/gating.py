"""Running the site's own analytics and ad code only where the visitor said yes (the README's
"How consent is decided")."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response

from .errors import ConfigurationError
from .policy import Policy

if TYPE_CHECKING:
    from .consent import Consent

Hook = Callable[..., Any]
F = TypeVar("F", bound=Callable[..., Any])
Fallback = Response | Callable[[Request], Response | Awaitable[Response]]


def consent_of(conn: HTTPConnection) -> Consent:
    """The consent of the request ``conn`` belongs to (set up by the middleware)."""
    state = conn.scope.get("state")
    try:
        consent: Consent = state["consent"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ConfigurationError(
            "no consent on this request: mount kit.middleware on the application "
            "(Starlette(..., middleware=[kit.middleware]) or app = kit.wrap(app))"
        ) from None
    return consent


class Hooks:
    """Server-side hooks per purpose: ``on`` registers, ``fire`` runs them where allowed."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._hooks: dict[str, list[Hook]] = {}

    def on(self, purpose: str) -> Callable[[F], F]:
        """Register the decorated function (sync or async, ``fn(request, **data)``) for ``purpose``."""
        self._policy.purpose(purpose)  # fail at import time on a typo

        def register(fn: F) -> F:
            self._hooks.setdefault(purpose, []).append(fn)
            return fn

        return register

    def registered(self, purpose: str) -> list[Hook]:
        """The hooks registered for a purpose, in registration order."""
        return list(self._hooks.get(purpose, ()))

    async def fire(self, purpose: str, request: HTTPConnection, **data: Any) -> bool:
        """Run ``purpose``'s hooks if the visitor allows it; return whether they ran.

        Sync hooks run in the thread pool, as Starlette runs sync endpoints. A hook's exception
        propagates to the caller.
        """
        if not consent_of(request).allows(purpose):
            return False
        for hook in self._hooks.get(purpose, ()):
            if inspect.iscoroutinefunction(hook):
                await hook(request, **data)
            else:
                await run_in_threadpool(hook, request, **data)
        return True


def default_fallback(purpose_title: str, prefix: str) -> Response:
    """What a guarded route answers by default when consent is missing."""
    return PlainTextResponse(
        f"This content needs your consent to “{purpose_title}”. "
        f"You can change your choices at any time: {prefix}/banner",
        status_code=403,
    )


def make_requires(
    policy: Policy, purpose: str, fallback: Fallback | None, default: Callable[[], Response]
) -> Callable[[F], F]:
    """Build the ``@kit.requires(purpose)`` decorator."""
    policy.purpose(purpose)

    # The middleware adds "Vary: Cookie" to every response that read the visitor's consent, so
    # neither the refusal nor the guarded response needs to say it here.
    def refuse(request: Request) -> Response | Awaitable[Response]:
        if fallback is None:
            return default()
        if isinstance(fallback, Response):
            return fallback
        return fallback(request)

    def decorate(endpoint: F) -> F:
        sig = inspect.signature(endpoint)
        request_param = _request_parameter(sig)
        # FastAPI builds its dependency injection from the signature: when the endpoint takes no
        # Request, offer it one under a private name and hide it from the endpoint.
        find = _RequestFinder(
            request_param or "_consentkit_request", request_param is None, purpose, endpoint
        )
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                request = find(args, kwargs)
                if not consent_of(request).allows(purpose):
                    result = refuse(request)
                    return await result if inspect.isawaitable(result) else result
                return await endpoint(*args, **kwargs)

        else:

            @functools.wraps(endpoint)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                request = find(args, kwargs)
                if not consent_of(request).allows(purpose):
                    result = refuse(request)
                    if inspect.isawaitable(result):
                        # Sync endpoints run in anyio's thread pool: hop back to the loop.
                        return anyio.from_thread.run(_await, result)
                    return result
                return endpoint(*args, **kwargs)

        if request_param is None:
            guarded.__signature__ = _with_request(sig, find.name)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


class _RequestFinder:
    """Finds the request among a guarded endpoint's arguments (removing one we injected)."""

    def __init__(self, name: str, injected: bool, purpose: str, endpoint: Callable[..., Any]) -> None:
        self.name, self.injected, self.purpose, self.endpoint = name, injected, purpose, endpoint

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
        if self.name in kwargs:
            return kwargs.pop(self.name) if self.injected else kwargs[self.name]  # type: ignore[no-any-return]
        for arg in args:
            if isinstance(arg, HTTPConnection):
                return arg  # type: ignore[return-value]
        raise ConfigurationError(
            f"@requires({self.purpose!r}) on {self.endpoint.__qualname__}: no request found"
        )


def _with_request(sig: inspect.Signature, name: str) -> inspect.Signature:
    """``sig`` with a keyword-only ``Request`` parameter that FastAPI will fill in."""
    params = [*sig.parameters.values()]
    extra = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    # Keyword-only parameters must come before **kwargs.
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    params.insert(at, extra)
    return sig.replace(parameters=params)


def _request_parameter(sig: inspect.Signature) -> str | None:
    for p in sig.parameters.values():
        ann = p.annotation
        if isinstance(ann, type) and issubclass(ann, HTTPConnection):
            return p.name
    for p in sig.parameters.values():
        if p.name == "request":
            return p.name
    return None


async def _await(awaitable: Awaitable[Response]) -> Response:
    return await awaitable
