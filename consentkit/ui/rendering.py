"""Rendering the banner, the preference center and the cookie-instructions page (the README's
"The banner").

Templates are Jinja2, in the package under ``consentkit/``; a site's own loader comes first, so
``consentkit/banner.html`` in the site's templates overrides ours. Texts go through gettext
catalogs (Babel) in the visitor's language.

The banner is on every page of every undecided visitor, so it is rendered once per language and
state (decided or not, GPC notice, revision notice, switches pre-filled) and kept; a request
only fills in its anti-forgery token and return path, and the site's CSP nonce.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jinja2 import BaseLoader, ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ..cache import BoundedCache
from ..http.csrf import CsrfGuard
from ..http.paths import is_safe_next
from ..http.static import WidgetAssets
from ..policy import Policy
from ..regions import Model
from . import browsers
from .languages import Languages, translations

if TYPE_CHECKING:
    from ..consent import Consent
# Placeholders filled per request in an otherwise cached rendering; they cannot occur in text.
_TOKEN = "\x00ck-token\x00"
_NEXT = "\x00ck-next\x00"
_NONCE = "\x00ck-nonce\x00"
_NONCE_ATTR = "\x00ck-nonce-attr\x00"
_BTOKEN, _BNEXT, _BNONCE_ATTR = (p.encode() for p in (_TOKEN, _NEXT, _NONCE_ATTR))
_PLACEHOLDERS = re.compile(b"(\x00ck-[a-z-]+\x00)")
#: The places in ``Renderer.banner_source`` that differ from visitor to visitor, and what
#: they hold: ``{placeholder: name}``.
PLACES = {_TOKEN: "csrf_token", _NEXT: "return_path"}
_TOKEN_TTL = 600.0  # reuse an anti-forgery token this long (it is valid for two days)
_CACHE_SIZE = 512
# Filled-in tags kept, per (consent, language, page): about 9 KB each, so at most ~18 MB
# whatever visitors and nonces come (a nonce is never part of the key).
_FILLED_SIZE = 2048
_Tags = tuple[bytes, bytes]  # (for the top of <head>, for just before </body>)


@dataclass(frozen=True, slots=True)
class PurposeView:
    """A purpose as one language shows it."""

    id: str
    title: str
    description: str
    cookies: tuple[str, ...]
    essential: bool
    gpc_denied: bool


# (token made at, head cut at its nonces, body cut at its nonces, both joined without a nonce)
_Filled = tuple[float, list[bytes], list[bytes], _Tags]


class Renderer:
    """Renders and caches the consent HTML in every language of a policy.

    It is handed what it shows: the policy, the languages, the anti-forgery guard whose tokens
    go into the forms, the widget's files, and the mount ``prefix`` the forms post to.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        languages: Languages,
        csrf: CsrfGuard,
        assets: WidgetAssets,
        prefix: str,
        loader: BaseLoader | None = None,
    ) -> None:
        self.policy = policy
        self.languages = languages
        self.csrf = csrf
        self.prefix = prefix
        loaders: list[BaseLoader] = [PackageLoader("consentkit", "templates")]
        if loader is not None:
            loaders.insert(0, loader)
        self._loader = ChoiceLoader(loaders)
        self._envs: dict[str, Environment] = {}  # one per policy language: bounded by the policy
        self._cache: BoundedCache[tuple[Any, ...], str] = BoundedCache(_CACHE_SIZE)
        self._tokens: BoundedCache[str | None, tuple[float, str]] = BoundedCache(_CACHE_SIZE * 8)
        self._tags: BoundedCache[tuple[Any, ...], tuple[_Filler, _Filler]] = BoundedCache(_CACHE_SIZE)
        # Per (consent, language, page): the tags with token and page filled in, cut where a
        # nonce goes. Never keyed by the nonce: a site that makes one per request (as CSP wants)
        # would otherwise never hit, and fill the cache with copies that differ by 22 bytes.
        self._filled: BoundedCache[tuple[Consent, str, str], _Filled] = BoundedCache(_FILLED_SIZE)
        self._filled_get = self._filled.get  # bound once: every page with the banner asks
        self.css_url = assets.url(prefix, "consentkit.css")
        self.js_url = assets.url(prefix, "consentkit.js")
        self.consent_mode_url = assets.url(prefix, "consent-mode.js")
        self.mode_map = {p.id: list(p.consent_mode) for p in self.policy.purposes if p.consent_mode}
        self.mode_types = sorted({t for types in self.mode_map.values() for t in types})

    # -- languages ----------------------------------------------------------------------------

    def locale(self, accept_language: str | bytes | None) -> str:
        """The policy language that fits the visitor best (the policy's default otherwise)."""
        return self.languages.best(accept_language)

    def env(self, locale: str) -> Environment:
        """The Jinja environment whose gettext speaks ``locale``."""
        env = self._envs.get(locale)
        if env is None:
            env = Environment(
                loader=self._loader,
                autoescape=select_autoescape(default=True, default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=False,
            )
            env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
            self._envs[locale] = env
        return env

    # -- the banner ---------------------------------------------------------------------------

    def purposes(self, locale: str, gpc_off: Iterable[str] = ()) -> list[PurposeView]:
        """The policy's purposes in ``locale``."""
        off = set(gpc_off)
        default = self.policy.default_locale
        return [
            PurposeView(
                id=p.id,
                title=p.text("title", locale, default),
                description=p.text("description", locale, default),
                cookies=p.cookies,
                essential=p.essential,
                gpc_denied=p.id in off,
            )
            for p in self.policy.purposes
        ]

    def banner(self, consent: Consent, locale: str, next_path: str, token: str | None = None) -> Markup:
        """The banner (undecided) or the settings control (decided), for one visitor."""
        html = self.banner_source(consent, locale)
        if token is None:
            token = self._token(consent.subject_id)
        if next_path != _NEXT:
            next_path = str(escape(next_path))
        return Markup(html.replace(_TOKEN, token).replace(_NEXT, next_path))

    def banner_source(self, consent: Consent, locale: str) -> str:
        """The banner or settings control a visitor in ``consent`` sees in ``locale``, rendered
        once and kept, with places for the anti-forgery token and the return path
        (``PLACES``): the same string object for every visitor in the same state."""
        policy = self.policy
        gpc_off = policy.gpc_ids if consent.gpc and not consent.gpc_confirmed else frozenset()
        if consent.decided:
            checked = consent.granted - policy.essential_ids
            revised = False
        else:
            prev = consent.previous
            if consent.model is not Model.OPT_IN:
                # Where the law is opt-out or a notice, what is allowed until the visitor refuses.
                checked = consent.granted - policy.essential_ids
            else:
                checked = (prev.granted & frozenset(policy.optional_ids)) - gpc_off if prev else frozenset()
            revised = prev is not None and prev.revision != policy.revision
        key = (
            locale,
            consent.decided,
            consent.model,
            tuple(sorted(gpc_off)),
            revised,
            tuple(sorted(checked)),
            consent.granted,
        )
        html = self._cache.get(key)
        if html is None:
            html = self._cache.put(key, self._render_banner(consent, locale, gpc_off, revised, checked))
        return html

    def _render_banner(
        self,
        consent: Consent,
        locale: str,
        gpc_off: frozenset[str],
        revised: bool,
        checked: frozenset[str],
    ) -> str:
        policy = self.policy
        views = self.purposes(locale, gpc_off)
        gpc_titles = ", ".join(v.title for v in views if v.gpc_denied)
        # Where the law is opt-out: what each one-click opt-out keeps (every other purpose as it
        # is). Without purposes that honour GPC, every purpose counts as "sale or sharing".
        on = consent.granted - policy.essential_ids
        sale = policy.gpc_ids or frozenset(policy.optional_ids)
        html = (
            self.env(locale)
            .get_template("consentkit/banner.html")
            .render(
                prefix=self.prefix,
                decided=consent.decided,
                model=str(consent.model),
                keep_without_sale=[p for p in policy.optional_ids if p in on and p not in sale],
                keep_without_sensitive=[p for p in policy.optional_ids if p in on - policy.sensitive_ids],
                sensitive=bool(policy.sensitive_ids),
                locale=locale,
                controller=policy.controller,
                privacy_url=policy.privacy_url,
                version=policy.version,
                purposes=views,
                checked=checked,
                revised=revised,
                gpc_applies=bool(gpc_off),
                gpc_titles=gpc_titles,
                csrf_token=_TOKEN,
                next=_NEXT,
            )
        )
        # The widget's state, on the root element: what is granted and what Consent Mode needs.
        data = (
            f' data-granted="{escape(" ".join(sorted(consent.granted)))}"'
            f" data-consent-mode='{escape(json.dumps(self.mode_map, separators=(',', ':')))}'"
        )
        return html.replace(" data-consentkit", " data-consentkit" + data, 1)

    def _token(self, subject_id: str | None) -> str:
        return self._token_entry(subject_id, time.monotonic())[1]

    def _token_entry(self, subject_id: str | None, now: float) -> tuple[float, str]:
        """``(made_at, token)``: a subject's anti-forgery token, made again after a while."""
        hit = self._tokens.get(subject_id)
        if hit is not None and now - hit[0] < _TOKEN_TTL:
            return hit
        return self._tokens.put(subject_id, (now, self.csrf.token(subject_id)))

    # -- tags around it -----------------------------------------------------------------------

    def tags(self, consent: Consent, locale: str, next_path: str, nonce: str | None) -> tuple[bytes, bytes]:
        """``(head, body)`` bytes to inject into one visitor's page; the hot path of injection.

        Everything but the anti-forgery token, the return path and a CSP nonce is rendered once
        per language and consent state and kept, already encoded; the copies with the token and
        the page filled in are kept per consent (``Consent`` objects are shared by every request
        with the same cookie, and hash by identity), language and page until the token is
        renewed, cut where the nonce goes: a request with a nonce only joins a few pieces.
        """
        now = time.monotonic()
        key = (consent, locale, next_path)
        filled = self._filled_get(key)
        if filled is None or now - filled[0] >= _TOKEN_TTL:
            filled = self._filled.put(key, self._fill(consent, locale, next_path, now))
        if not nonce:
            return filled[3]
        attr = _nonce_attr(nonce)
        return attr.join(filled[1]), attr.join(filled[2])

    def _fill(self, consent: Consent, locale: str, next_path: str, now: float) -> _Filled:
        """The tags of a consent state with this visitor's token and page filled in."""
        prev = consent.previous
        state = (
            consent.decided,
            consent.model,
            consent.gpc and not consent.gpc_confirmed,
            consent.granted,
            None if prev is None else (prev.granted, prev.revision),
        )
        key = (locale, state)
        entry = self._tags.get(key)
        if entry is None:
            head = self.head_tags(consent, _NONCE)
            banner = self.banner(consent, locale, _NEXT, _TOKEN)
            body = f'{banner}<script src="{self.js_url}" defer{_NONCE_ATTR}></script>'
            entry = self._tags.put(key, (_Filler(head), _Filler(body)))
        made_at, token = self._token_entry(consent.subject_id, now)
        nxt = _next_bytes(next_path)
        tok = token.encode()
        head_parts = entry[0].segments(tok, nxt)
        body_parts = entry[1].segments(tok, nxt)
        return made_at, head_parts, body_parts, (b"".join(head_parts), b"".join(body_parts))

    def head_tags(self, consent: Consent, nonce: str | None = None) -> str:
        """The stylesheet and the Consent Mode defaults, for the top of ``<head>``."""
        n = _NONCE_ATTR if nonce == _NONCE else f' nonce="{escape(nonce)}"' if nonce else ""
        tags = f'<link rel="stylesheet" href="{self.css_url}"{n}>'
        if self.mode_types:
            regions = self.policy.regions
            default: dict[str, str] | list[dict[str, Any]] = (
                {t: "denied" for t in self.mode_types}
                if regions is None
                else regions.consent_mode_defaults(self.mode_types)
            )
            attrs = f" data-default='{escape(json.dumps(default, separators=(',', ':')))}' data-wait=\"500\""
            # The server knows the visitor's state: decided, or allowed until they opt out.
            if consent.decided or consent.model is not Model.OPT_IN:
                update = {t: "denied" for t in self.mode_types}
                for pid in consent.granted:
                    for t in self.mode_map.get(pid, ()):
                        update[t] = "granted"
                attrs += f" data-update='{escape(json.dumps(update, separators=(',', ':')))}'"
            tags += f'<script src="{self.consent_mode_url}"{attrs}{n}></script>'
        return tags

    def body_tags(self, consent: Consent, locale: str, next_path: str, nonce: str | None = None) -> str:
        """The banner (or settings control) and the widget script, for just before ``</body>``."""
        n = f' nonce="{escape(nonce)}"' if nonce else ""
        return f'{self.banner(consent, locale, next_path)}<script src="{self.js_url}" defer{n}></script>'

    def script_attrs(self, consent: Consent, purpose: str) -> Markup:
        """Attributes for a ``<script>`` of ``purpose``: it runs now if allowed, else waits."""
        if consent.allows(purpose):
            return Markup("")
        return Markup(f'type="text/plain" data-consent="{escape(purpose)}"')

    # -- the cookie-instructions page ---------------------------------------------------------

    def cookies_page(
        self,
        consent: Consent,
        locale: str,
        user_agent: str | None,
        client_hints: str | None,
        browser: str | None,
    ) -> str:
        """``/consent/cookies``: the visitor's browser (or ``?browser=``) first, all the others below."""
        detected = browsers.detect(user_agent, client_hints)
        chosen = browser if browser in {b.id for b in browsers.catalogue()} else detected
        env = self.env(locale)
        gettext = translations(locale).gettext
        actions = [
            ("block_all", gettext("Block all cookies")),
            ("block_third_party", gettext("Block third-party cookies")),
            ("delete", gettext("Delete cookies")),
        ]
        views = []
        for b in browsers.catalogue(first=chosen):
            text = b.text(locale)
            views.append(
                {
                    "id": b.id,
                    "name": text.name,
                    "legacy": b.legacy,
                    "help_url": b.help_url,
                    "steps": {a: text.steps(a) for a, _ in actions},  # type: ignore[arg-type]
                }
            )
        return env.get_template("consentkit/cookies.html").render(
            locale=locale,
            controller=self.policy.controller,
            privacy_url=self.policy.privacy_url,
            browsers=views,
            chosen=chosen is not None,
            detected=detected,
            actions=actions,
            head_tags=Markup(self.head_tags(consent)),
            body_tags=Markup(self.body_tags(consent, locale, f"{self.prefix}/cookies")),
        )


class _Filler:
    """A rendering cut at its placeholders once, so that a request only joins a few pieces
    (``bytes.replace`` would scan the whole 4 KB once per placeholder)."""

    __slots__ = ("_next", "_nonce", "_parts", "_token")

    def __init__(self, html: str) -> None:
        self._parts: list[bytes] = _PLACEHOLDERS.split(html.encode())

        def where(placeholder: bytes) -> list[int]:
            return [i for i, part in enumerate(self._parts) if part == placeholder]

        self._token, self._next, self._nonce = where(_BTOKEN), where(_BNEXT), where(_BNONCE_ATTR)

    def segments(self, token: bytes, next_path: bytes) -> list[bytes]:
        """The rendering with ``token`` and ``next_path`` filled in, as the pieces between its
        nonce attributes: ``attr.join(pieces)`` puts a nonce in, ``b"".join`` leaves it out."""
        parts = self._parts.copy()
        for i in self._token:
            parts[i] = token
        for i in self._next:
            parts[i] = next_path
        pieces: list[bytes] = []
        start = 0
        for i in self._nonce:
            pieces.append(b"".join(parts[start:i]))
            start = i + 1
        pieces.append(b"".join(parts[start:]))
        return pieces


@lru_cache(maxsize=4096)
def _next_bytes(path: str) -> bytes:
    """The return path for the banner's forms, escaped; ``/`` for anything not on this site."""
    return str(escape(path)).encode() if is_safe_next(path) else b"/"


@lru_cache(maxsize=256)
def _nonce_attr(nonce: str) -> bytes:
    return b' nonce="' + str(escape(nonce)).encode() + b'"'


def state_nonce(state: Any) -> str | None:
    """A CSP nonce the site put on the request (``request.state.csp_nonce``), if any."""
    nonce = state.get("csp_nonce") if state else None  # .get: the state's own miss is for consent
    return nonce if isinstance(nonce, str) else None
