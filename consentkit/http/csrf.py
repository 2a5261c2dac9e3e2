"""The one rule against cross-site request forgery, for every state-changing request: the
consent endpoint, the auditor's desk, ``kit.form_problem`` (a site's own forms) and the demo.

A browser says where a request comes from in ``Sec-Fetch-Site`` and ``Origin``; when it sends
either, that is what we check. A form that carries neither (old browsers, privacy proxies that
strip them) must carry an anti-forgery token from our own pages: an itsdangerous-signed,
timestamped value bound to whoever the form was shown to (the visitor's subject id, or the
auditor's name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner

from ..errors import ConfigurationError

TOKEN_MAX_AGE = 2 * 86400


class CsrfGuard:
    """Checks where a state-changing request comes from."""

    def __init__(self, secret_keys: list[str | bytes], trusted_origins: Iterable[str] = ()) -> None:
        keys = [k.encode("utf-8") if isinstance(k, str) else k for k in reversed(secret_keys)]
        self._signer = TimestampSigner(keys, salt="consentkit.csrf", digest_method=hashlib.sha256)
        self._trusted = frozenset(_netloc(o) for o in trusted_origins)
        if "" in self._trusted:
            raise ConfigurationError(
                "trusted_origins must be origins like 'https://shop.example.com' "
                "(scheme, host, optional port)"
            )

    def token(self, subject_id: str | None) -> str:
        """A token for the forms shown to this visitor."""
        return self._signer.sign(subject_id or "-").decode("ascii")

    def token_ok(self, token: str | None, subject_id: str | None) -> bool:
        """Whether a submitted token is ours, fresh, and issued to this visitor.

        A token issued to nobody (``-``) is good only for a visitor who has no subject yet:
        anybody can fetch one, so it must not speak for a visitor we already know.
        """
        if not token:
            return False
        try:
            value = self._signer.unsign(token, max_age=TOKEN_MAX_AGE).decode("ascii")
        except (BadSignature, UnicodeDecodeError, ValueError):
            return False
        return value == (subject_id or "-")

    def problem(
        self, headers: Mapping[str, str], token: str | None, bound_to: str | None, *, needs_token: bool = True
    ) -> str | None:
        """Why a state-changing request must be refused as a forgery, or ``None``.

        ``headers`` are the request's (lower-case names); ``token`` is the form's ``csrf_token``
        and ``bound_to`` whom it must have been issued to. A request that cannot come from a
        cross-site form (``needs_token=False``: a JSON body, which browsers send cross-site
        only after a CORS preflight that we never grant) needs no token.
        """
        fetch_site, origin = headers.get("sec-fetch-site"), headers.get("origin")
        problem = self.origin_problem(fetch_site, origin, headers.get("host"))
        without_headers = fetch_site is None and origin is None
        if problem is None and needs_token and without_headers and not self.token_ok(token, bound_to):
            problem = (
                "this form has no valid anti-forgery token (it may have expired): reload the page "
                "and try again"
            )
        return problem

    def origin_problem(self, fetch_site: str | None, origin: str | None, host: str | None) -> str | None:
        """Why the request's browser headers say it is cross-site, or ``None``."""
        trusted = origin is not None and _netloc(origin) in self._trusted
        if fetch_site is not None and fetch_site != "same-origin" and not trusted:
            return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
        if origin is not None:
            if origin == "null":
                return "request from an opaque origin refused (Origin: null)"
            own = _netloc(host) if host else None
            theirs = _netloc(origin)
            if (not theirs or theirs != own) and not trusted:
                return f"cross-site request refused (Origin {origin} is not this site)"
        return None


@lru_cache(maxsize=1024)
def _netloc(origin: str) -> str:
    """``scheme://host[:port]`` (or a bare ``host[:port]``) to ``host[:port]``, without the
    default ports; ``""`` for anything that does not parse.

    The scheme is left out on purpose: behind a TLS-terminating proxy the application often
    sees ``http`` while the browser's Origin says ``https``, and refusing every decision there
    would protect nothing (a forger cannot choose the Host a browser sends).
    """
    text = origin.strip().lower()
    try:
        parts = urlsplit(text if "://" in text else "//" + text)
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if port in (None, 80, 443) else f"{host}:{port}"
