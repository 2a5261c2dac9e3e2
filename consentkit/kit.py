"""``ConsentKit``: the one object a site configures (DESIGN §3)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import BaseLoader
from markupsafe import Markup
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Scope

from .audit import AuditDesk
from .banner import Renderer, scope_nonce
from .canonical import canonical_json
from .consent import Consent, evaluate
from .cookie import DEVELOPMENT_KEY, CookieCodec, StoredDecision
from .csrf import CsrfGuard
from .decisions import is_safe_next
from .errors import ConfigurationError, InvalidRecordError, LedgerCorrupt, LedgerUnavailable
from .firewall import CookieFirewall, UndeclaredMode
from .gating import Fallback, Hooks, default_fallback, make_requires
from .ledger import Ledger, LedgerRecord, NewRecord, open_ledger
from .netaddr import ip_prefix
from .policy import PURPOSE_ID_PATTERN, Policy

log = logging.getLogger("consentkit")

F = TypeVar("F", bound=Callable[..., Any])
_CONSENT_CACHE_SIZE = 16384
_MAX_CACHED_HEADER = 1024
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")


class ConsentKit:
    """Consent for one site: policy, keys, ledger, and the middleware that enforces them.

    ``secret_keys`` lists the cookie signing keys, newest first; cookies signed with an older
    key still verify and are re-signed with the newest. ``development=True`` uses a public
    development key when no key is given, for local work only.
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
    ) -> None:
        self.policy = policy if isinstance(policy, Policy) else Policy.from_toml(policy)
        keys = list(secret_keys or [])
        if not keys and development:
            log.warning("consentkit is using the public development key: never do this in production")
            keys = [DEVELOPMENT_KEY]
        self.codec = CookieCodec(keys)
        self.csrf = CsrfGuard(keys, trusted_origins)
        self.ledger = open_ledger(ledger)
        if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
            raise ConfigurationError(
                f"prefix {prefix!r} must look like '/consent' (leading slash, none trailing)"
            )
        if not _COOKIE_NAME.match(cookie_name):
            raise ConfigurationError(f"cookie_name {cookie_name!r} is not a valid cookie name")
        if self.policy.cookie_purpose(cookie_name) is not None:
            raise ConfigurationError(
                f"cookie_name {cookie_name!r} is also declared by a purpose of the policy"
            )
        self.prefix = prefix
        self.cookie_name = cookie_name
        self.cookie_secure = cookie_secure
        self.record_ip = record_ip
        self.record_user_agent = record_user_agent
        self.max_body = max_body
        self.firewall = CookieFirewall(self.policy, [cookie_name], undeclared_cookies)
        self.hooks = Hooks(self.policy)
        self._requires_fallback = requires_fallback
        self._consents: dict[tuple[str, bool], Consent] = {}
        # One cache per GPC signal, keyed by the raw header: no key tuple to build per request.
        self._by_header: dict[bool, dict[bytes, Consent]] = {False: {}, True: {}}
        self._undecided = {gpc: evaluate(self.policy, None, gpc, 0.0) for gpc in (False, True)}
        self.inject = inject
        self.audit = AuditDesk(self, audit_users, audit_token)
        self.renderer = Renderer(self, template_loader)
        self._cookie_rx = re.compile(rf"(?:^|;)\s*{re.escape(cookie_name)}=([^;]*)")
        self.max_age = self.policy.consent_lifetime_days * 86400

    # -- mounting ---------------------------------------------------------------------------

    @property
    def middleware(self) -> Middleware:
        """The entry for ``Starlette(middleware=[...])``."""
        from .middleware import ConsentMiddleware

        return Middleware(ConsentMiddleware, kit=self)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Wrap any ASGI application (FastAPI, Litestar, Django's ASGI handler...)."""
        from .middleware import ConsentMiddleware

        return ConsentMiddleware(app, kit=self)

    async def startup(self) -> None:
        """Open the ledger now. A foreign or newer ledger raises; an unreachable one only warns."""
        try:
            await self.ledger.open()
        except LedgerCorrupt:
            raise
        except LedgerUnavailable as exc:
            log.warning("consent ledger unavailable at startup (decisions will answer 503): %s", exc)

    async def aclose(self) -> None:
        """Finish pending ledger writes and close it."""
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
        from .gating import consent_of

        consent = consent_of(request)
        renderer = self.renderer
        locale = renderer.locale(request.headers.get("accept-language"))
        nonce = scope_nonce(request.scope)
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

    # -- consent of a request -----------------------------------------------------------------

    def consent_for_scope(self, scope: Scope) -> Consent:
        """Read the request's consent cookie and GPC signal (cached, never raises)."""
        return self.consent_for_request_headers(scope["headers"])

    def consent_for_request_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Consent:
        """``consent_for_scope`` for a request's raw ASGI headers."""
        cookie_header: bytes | None = None
        gpc = False
        for key, value in headers:
            if key == b"cookie":
                cookie_header = value if cookie_header is None else cookie_header + b"; " + value
            elif key == b"sec-gpc" and value.strip() == b"1":
                gpc = True
        return self.consent_for_headers(cookie_header, gpc)

    def consent_for_headers(self, cookie_header: bytes | None, gpc: bool) -> Consent:
        """The consent of a raw ``Cookie`` header (all of them joined) and the GPC signal."""
        if cookie_header is None:
            return self._undecided[gpc]
        # A visitor sends the same Cookie header on request after request: remember the answer
        # for the whole header (short ones only, to bound memory), revalidating only its age.
        by_header = self._by_header[gpc]
        hit = by_header.get(cookie_header)
        if hit is not None and (not hit.decided or time.time() < hit.valid_until):
            return hit
        consent = self.consent_for_cookie(cookie_header.decode("latin-1"), gpc)
        if len(cookie_header) <= _MAX_CACHED_HEADER and (consent.decided or consent.subject_id is None):
            if len(by_header) >= _CONSENT_CACHE_SIZE:
                by_header.clear()
            by_header[cookie_header] = consent
        return consent

    def consent_for_cookie(self, cookie_header: str, gpc: bool) -> Consent:
        """The consent a ``Cookie`` header carries; the first valid consent cookie wins."""
        values = self._cookie_rx.findall(cookie_header)
        if not values:
            return self._undecided[gpc]
        now = time.time()
        fallback: Consent | None = None
        for raw in values:
            value = raw.strip().strip('"')
            hit = self._consents.get((value, gpc))
            if hit is not None and now < hit.valid_until:
                return hit
            stored = self.codec.decode(value)
            if stored is None:
                continue
            consent = evaluate(self.policy, stored, gpc, now)
            if consent.decided:
                if len(self._consents) >= _CONSENT_CACHE_SIZE:
                    self._consents.clear()
                self._consents[(value, gpc)] = consent
                return consent
            fallback = fallback or consent
        return fallback or self._undecided[gpc]

    def stored_for(self, consent: Consent) -> StoredDecision | None:
        """The cookie decision behind a consent, decided or remembered."""
        return consent.previous if not consent.decided else consent.stored

    # -- cookies ------------------------------------------------------------------------------

    def cookie_header(self, stored: StoredDecision) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header that carries a decision, for its remaining lifetime."""
        remaining = max(0, stored.decided_at + self.max_age - int(time.time()))
        value = (
            f"{self.cookie_name}={self.codec.encode(stored)}; Max-Age={remaining}; Path=/; "
            "HttpOnly; SameSite=Lax"
        )
        if self.cookie_secure:
            value += "; Secure"
        return (b"set-cookie", value.encode("latin-1"))

    # -- the ledger ---------------------------------------------------------------------------

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
        address = ua = None
        if request is not None:
            if self.record_ip and request.client is not None:
                address = ip_prefix(request.client.host)
            if self.record_user_agent:
                ua = (request.headers.get("user-agent") or "")[:512] or None
            locale = locale or self.renderer.locale(request.headers.get("accept-language"))
        entry = self.new_record(
            subject_id=_check_subject(subject_id),
            action=_check_choice("action", action, ("record", "withdraw")),
            purposes=_check_purposes(purposes),
            method=_check_choice("method", method, ("api", "signal", "operator")),
            locale=locale or self.policy.default_locale,
            evidence=_check_evidence(evidence),
            ip_prefix=address,
            user_agent=ua,
        )
        return await self.ledger.append(entry)

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
        ``None``: the same rule as decisions — a browser's Origin/Sec-Fetch-Site must say this
        site, and without either header the form must carry ``kit.csrf.token(subject_id)``."""
        from .gating import consent_of

        headers = request.headers
        fetch_site, origin = headers.get("sec-fetch-site"), headers.get("origin")
        problem = self.csrf.origin_problem(fetch_site, origin, headers.get("host"))
        if problem:
            return problem
        if (
            fetch_site is None
            and origin is None
            and not self.csrf.token_ok(token, consent_of(request).subject_id)
        ):
            return "this form has no valid anti-forgery token (it may have expired): reload the page"
        return None

    def new_record(self, **fields: Any) -> NewRecord:
        """A record of the current policy."""
        return NewRecord(
            policy_revision=self.policy.revision,
            policy_version=self.policy.version,
            policy_digest=self.policy.digest,
            policy_json=self.policy.canonical_json,
            **fields,
        )


def _check_subject(subject_id: str) -> str:
    if not isinstance(subject_id, str) or not subject_id.strip() or len(subject_id) > 256:
        raise InvalidRecordError("subject_id must be a non-empty string of at most 256 characters")
    return subject_id


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidRecordError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _check_purposes(purposes: Mapping[str, bool]) -> dict[str, bool]:
    if not isinstance(purposes, Mapping) or not purposes:
        raise InvalidRecordError("purposes must be a non-empty mapping of purpose id to True/False")
    for pid, granted in purposes.items():
        if not isinstance(pid, str) or not PURPOSE_ID_PATTERN.match(pid):
            raise InvalidRecordError(f"purpose id {pid!r} must be 1 to 32 of a-z, 0-9 and _")
        if not isinstance(granted, bool):
            raise InvalidRecordError(f"purposes[{pid!r}] must be True or False, not {granted!r}")
    return dict(purposes)


def _check_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    if not isinstance(evidence, Mapping):
        raise InvalidRecordError("evidence must be a mapping (a JSON object)")
    try:
        text = canonical_json(dict(evidence))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"evidence must be JSON-serialisable: {exc}") from None
    if len(text) > 64 * 1024:
        raise InvalidRecordError(
            "evidence is over 64 KiB: store large documents elsewhere and record their digest"
        )
    return dict(evidence)
