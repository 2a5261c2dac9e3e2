"""``ConsentKit``: the one object a site configures (the README's "Quickstart").

It holds the configuration and wires the parts together, handing each what it uses when it is
built — the policy, the cookie codec, the ledger, the renderer — so that no part knows the kit.
What each part does is in its own module; ``docs/architecture.md`` shows how a request flows
through them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import BaseLoader
from markupsafe import Markup
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp

from .audit import AuditDesk
from .cookie import DEVELOPMENT_KEY, ConsentCookie, CookieCodec
from .decisions import Decisions, RequestFacts
from .errors import ConfigurationError, LedgerCorrupt, LedgerUnavailable
from .firewall import CookieFirewall, UndeclaredMode
from .gating import Fallback, Hooks, consent_of, default_fallback, make_requires
from .http.client import ClientAddresses
from .http.csrf import CsrfGuard
from .http.decision_form import DecisionReader
from .http.endpoints import Endpoints
from .http.facts import FactsRecorder
from .http.limits import RateLimiter
from .http.middleware import ConsentMiddleware
from .http.paths import is_safe_next
from .http.reading import ConsentReader
from .http.responses import vary_on
from .http.static import WidgetAssets
from .ledger import Ledger, LedgerRecord, open_ledger
from .ledger.publisher import CheckpointPublisher, Sink
from .policy import Policy
from .ui.languages import Languages
from .ui.rendering import Renderer, state_nonce
from .ui.shown import ShownContents

log = logging.getLogger("consentkit")

F = TypeVar("F", bound=Callable[..., Any])
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
#: ``decision_rate_limit``'s default: 60 decisions per client address (IPv6: per /64) per 60 s.
#: A person decides a few times in a visit, and even an office or a carrier's shared address
#: rarely sees more than a handful of first visits a minute, so no visitor meets it; one machine,
#: which could otherwise post thousands a second, is held to one a second on average.
DECISION_RATE_LIMIT = (60, 60.0)
#: Client addresses whose recent decisions are remembered (see ``http/limits.py``).
DECISION_LIMIT_CLIENTS = 20_000


class ConsentKit:
    """Consent for one site: policy, keys, ledger, and the middleware that enforces them.

    ``secret_keys`` lists the cookie signing keys, newest first; cookies signed with an older
    key still verify and are re-signed with the newest. ``development=True`` uses a public
    development key when no key is given, for local work only. ``trusted_proxies`` are the
    site's own reverse proxies (addresses or networks): ``X-Forwarded-For`` is believed from them
    and nobody else. ``decision_rate_limit=(decisions, seconds)`` bounds decisions per client
    address (IPv6: per /64); ``None`` turns it off. The README's "Options" has them all.
    """

    def __init__(
        self,
        policy: Policy | str | Path,
        secret_keys: Sequence[str | bytes] | None = None,
        ledger: str | Ledger = "sqlite:///consent-ledger.db",
        *,
        development: bool = False,
        prefix: str = "/consent",
        cookie_name: str = "consentkit",
        cookie_secure: bool = True,
        undeclared_cookies: UndeclaredMode = "report",
        requires_fallback: Fallback | None = None,
        record_ip: bool = True,
        record_user_agent: bool = True,
        trusted_origins: Sequence[str] = (),
        max_body: int = 16 * 1024,
        inject: bool = True,
        template_loader: BaseLoader | None = None,
        audit_users: Mapping[str, str] | None = None,
        audit_token: str | None = None,
        trusted_proxies: Sequence[str] = (),
        decision_rate_limit: tuple[int, float] | None = DECISION_RATE_LIMIT,
        checkpoint_key: str | Path | None = None,
        checkpoint_every: float = 3600.0,
        checkpoint_sinks: Sequence[Sink] = (),
    ) -> None:
        self.policy = policy = policy if isinstance(policy, Policy) else Policy.from_toml(policy)
        keys = _signing_keys(secret_keys, development)
        _check_prefix(prefix)
        _check_cookie_name(policy, cookie_name)
        self.prefix = prefix
        self.inject = inject
        self.clients = ClientAddresses(trusted_proxies)
        self.decision_limit = _decision_limit(decision_rate_limit)
        self.codec = CookieCodec(keys)
        self.csrf = CsrfGuard(keys, trusted_origins)
        self.ledger = open_ledger(ledger)
        self.cookie = ConsentCookie(
            cookie_name, self.codec, policy.consent_lifetime_days * 86400, cookie_secure
        )
        self.reader = ConsentReader(policy, self.codec, cookie_name)
        self.firewall = CookieFirewall(policy, [cookie_name], undeclared_cookies)
        self.hooks = Hooks(policy)
        self.languages = Languages(policy.locales)
        self.facts = FactsRecorder(
            self.languages, record_ip=record_ip, record_user_agent=record_user_agent, clients=self.clients
        )
        self.assets = WidgetAssets()
        self.renderer = Renderer(
            policy,
            languages=self.languages,
            csrf=self.csrf,
            assets=self.assets,
            prefix=prefix,
            loader=template_loader,
        )
        self.decisions = Decisions(policy, self.ledger, ShownContents(self.renderer).of)
        self.audit = self._audit_desk(audit_users, audit_token)
        self.endpoints = self._endpoints(max_body)
        # Signed checkpoints on a schedule, handed to the site's sinks (the README's auditor section).
        self.checkpoints = (
            CheckpointPublisher(self.ledger, checkpoint_key, checkpoint_every, checkpoint_sinks)
            if checkpoint_key is not None
            else None
        )
        self._requires_fallback = requires_fallback

    def _audit_desk(self, users: Mapping[str, str] | None, token_hash: str | None) -> AuditDesk:
        return AuditDesk(
            ledger=self.ledger,
            policy=self.policy,
            base=f"{self.prefix}/audit",
            csrf=self.csrf,
            templates=lambda: self.renderer.env("en"),
            users=users,
            token_hash=token_hash,
            clients=self.clients,
        )

    def _endpoints(self, max_body: int) -> Endpoints:
        return Endpoints(
            self.policy,
            prefix=self.prefix,
            reader=self.reader,
            decision_reader=DecisionReader(self.policy, self.csrf, max_body),
            decisions=self.decisions,
            facts=self.facts,
            cookie=self.cookie,
            firewall=self.firewall,
            renderer=self.renderer,
            assets=self.assets,
            ledger=self.ledger,
            audit=self.audit,
            clients=self.clients,
            decision_limit=self.decision_limit,
        )

    # -- mounting ---------------------------------------------------------------------------

    @property
    def middleware(self) -> Middleware:
        """The entry for ``Starlette(middleware=[...])``."""
        return Middleware(ConsentMiddleware, **self._middleware_parts())

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Wrap any ASGI application (FastAPI, Litestar, Django's ASGI handler...)."""
        return ConsentMiddleware(app, **self._middleware_parts())

    def _middleware_parts(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "endpoints": self.endpoints,
            "gpc_json": self.endpoints.gpc_json if self.policy.gpc_ids else None,
            "reader": self.reader,
            "firewall": self.firewall,
            "cookie": self.cookie,
            "renderer": self.renderer if self.inject else None,
            "vary": vary_on(self.policy),
            "startup": self.startup,
            "shutdown": self.aclose,
        }

    async def startup(self) -> None:
        """Open the ledger now. A foreign or newer ledger raises; an unreachable one only warns."""
        try:
            await self.ledger.open()
        except LedgerCorrupt:
            raise
        except LedgerUnavailable as exc:
            log.warning("consent ledger unavailable at startup (decisions will answer 503): %s", exc)
        if self.checkpoints is not None:
            self.checkpoints.start()

    async def aclose(self) -> None:
        """Stop making checkpoints, finish pending ledger writes and close it."""
        if self.checkpoints is not None:
            await self.checkpoints.aclose()
        await self.ledger.close()

    # -- gating -----------------------------------------------------------------------------

    def requires(self, purpose: str, *, fallback: Fallback | None = None) -> Callable[[F], F]:
        """Guard a route: without ``purpose`` it answers ``fallback`` (default: a 403 page)."""
        title = self.policy.purpose(purpose).text(
            "title", self.policy.default_locale, self.policy.default_locale
        )
        return make_requires(
            self.policy,
            purpose,
            fallback if fallback is not None else self._requires_fallback,
            lambda: default_fallback(title, self.prefix),
        )

    # -- templates ------------------------------------------------------------------------------

    def context_processor(self, request: Request) -> dict[str, Any]:
        """Template context for sites that place the banner themselves (``inject=False``).

        With Starlette: ``Jinja2Templates(directory=..., context_processors=[kit.context_processor])``.
        Templates then have ``consent``, ``{{ consent_head() }}`` (at the top of ``<head>``),
        ``{{ consent_banner() }}`` (before ``</body>``) and ``<script {{ consent_scripts("ads") }}
        src=…>`` — a script that runs at once where the purpose is allowed, and otherwise waits
        inert (``type="text/plain"``) for the widget to start it after consent.
        """
        consent = consent_of(request)
        renderer = self.renderer
        locale = renderer.locale(request.headers.get("accept-language"))
        nonce = state_nonce(request.scope.get("state"))
        query = request.url.query
        here = request.url.path + (f"?{query}" if query else "")
        here = here if is_safe_next(here) else "/"
        return {
            "consent": consent,
            "consent_locale": locale,
            "consent_head": lambda: Markup(renderer.head_tags(consent, nonce)),
            "consent_banner": lambda: Markup(renderer.body_tags(consent, locale, here, nonce)),
            "consent_scripts": lambda purpose: renderer.script_attrs(consent, purpose),
        }

    # -- consents that are not cookies -------------------------------------------------------

    async def record(
        self,
        subject_id: str,
        purposes: Mapping[str, bool],
        *,
        method: str = "api",
        evidence: Mapping[str, Any] | None = None,
        locale: str | None = None,
        action: str = "record",
        request: HTTPConnection | None = None,
    ) -> LedgerRecord:
        """Append a consent that is not a cookie (an SMS or e-mail opt-in, call recording...).

        ``purposes`` are ids of the same form as the policy's (they need not be banner purposes),
        ``evidence`` is a JSON object of what the person was shown and how they agreed. With
        ``request`` (the form post that carried the consent), the record keeps its truncated
        address and user agent like a banner decision, and its language when ``locale`` is not
        given. Returns the committed record (its ``receipt`` identifies it) once it is durable.
        """
        if request is not None:
            facts = self.facts.of(request, False, locale)
        else:
            facts = RequestFacts(locale=locale or self.policy.default_locale)
        return await self.decisions.record(
            subject_id, purposes, facts, action=action, method=method, evidence=evidence
        )

    async def current(self, subject_id: str) -> dict[str, bool]:
        """A subject's standing consents, purpose by purpose, from their records (latest wins).

        For consents recorded with ``record`` (an account's SMS opt-in...); for a browser's
        cookie choices use ``get_consent(request)``.
        """
        standing: dict[str, bool] = {}
        for rec in await self.ledger.history(subject_id):
            standing.update(rec.purposes)
        return standing

    def form_problem(self, request: HTTPConnection, token: str | None) -> str | None:
        """Why a form post of the site's own (an opt-in form…) must be refused as a forgery, or
        ``None``: the same rule as decisions (``consentkit/http/csrf.py``) — a browser's
        Origin/Sec-Fetch-Site must say this site, and without either header the form must carry
        ``kit.csrf.token(subject_id)``."""
        return self.csrf.problem(request.headers, token, consent_of(request).subject_id)


def _decision_limit(setting: tuple[int, float] | None) -> RateLimiter | None:
    """The limiter for ``decision_rate_limit=(decisions, seconds)``; ``None`` turns it off."""
    if setting is None:
        return None
    try:
        count, seconds = setting
        valid = isinstance(count, int) and not isinstance(count, bool) and count >= 1 and seconds > 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigurationError(
            f"decision_rate_limit must be (decisions, seconds) such as (60, 60), or None; got {setting!r}"
        )
    return RateLimiter(count, float(seconds), DECISION_LIMIT_CLIENTS)


def _signing_keys(secret_keys: Sequence[str | bytes] | None, development: bool) -> list[str | bytes]:
    keys = list(secret_keys or [])
    if not keys and development:
        log.warning("consentkit is using the public development key: never do this in production")
        keys = [DEVELOPMENT_KEY]
    return keys


def _check_prefix(prefix: str) -> None:
    if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise ConfigurationError(
            f"prefix {prefix!r} must look like '/consent' (leading slash, none trailing)"
        )


def _check_cookie_name(policy: Policy, cookie_name: str) -> None:
    if not _COOKIE_NAME.match(cookie_name):
        raise ConfigurationError(f"cookie_name {cookie_name!r} is not a valid cookie name")
    if policy.cookie_purpose(cookie_name) is not None:
        raise ConfigurationError(f"cookie_name {cookie_name!r} is also declared by a purpose of the policy")
