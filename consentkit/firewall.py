"""The cookie firewall: no cookie of a refused purpose leaves the server (the README's "How
consent is decided")."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Literal

from .consent import Consent
from .policy import Policy

log = logging.getLogger("consentkit.firewall")

UndeclaredMode = Literal["report", "block", "allow"]
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


class CookieFirewall:
    """Filters ``Set-Cookie`` headers against a visitor's consent."""

    def __init__(self, policy: Policy, own_cookies: Iterable[str], undeclared: UndeclaredMode) -> None:
        if undeclared not in ("report", "block", "allow"):
            raise ValueError("undeclared_cookies must be 'report', 'block' or 'allow'")
        self._policy = policy
        self._own = frozenset(own_cookies)
        self._mode = undeclared
        self.undeclared: set[str] = set()  # names seen that no purpose declares (for operators)
        self.dropped = 0

    def filter(
        self, headers: list[tuple[bytes, bytes]], consent: Consent
    ) -> list[tuple[bytes, bytes]] | None:
        """A new header list without the cookies ``consent`` does not allow; ``None`` if unchanged."""
        kept: list[tuple[bytes, bytes]] | None = None
        for i, (key, value) in enumerate(headers):
            if key.lower() == b"set-cookie" and not self._allowed(value, consent):
                if kept is None:
                    kept = list(headers[:i])
                continue
            if kept is not None:
                kept.append((key, value))
        return kept

    def _allowed(self, header: bytes, consent: Consent) -> bool:
        text = header.decode("latin-1")
        name = text.split("=", 1)[0].strip()
        if name in self._own:
            return True
        purpose = self._policy.cookie_purpose(name)
        if purpose is None:
            if self._mode == "allow":
                return True
            if name not in self.undeclared:
                self.undeclared.add(name)
                log.warning(
                    "cookie %r is set by the site but declared by no purpose of the consent policy; "
                    "add it to a purpose's cookies (undeclared_cookies=%r)",
                    name,
                    self._mode,
                )
            return self._mode == "report" or _is_deletion(text)
        if purpose in consent.granted or _is_deletion(text):
            return True
        self.dropped += 1
        log.debug("dropped cookie %r: purpose %r is not granted", name, purpose)
        return False

    def expiring_headers(
        self,
        request_cookies: dict[str, str],
        denied: frozenset[str],
        host: str | None,
        secure: bool,
    ) -> list[tuple[bytes, bytes]]:
        """``Set-Cookie`` headers expiring every request cookie of a denied purpose.

        Third-party tags often set cookies on the parent domain (``_ga`` on ``.example.com``), so
        each is expired for the host-only scope and for the host and its parent domains.
        """
        names = [
            n for n in request_cookies if n not in self._own and self._policy.cookie_purpose(n) in denied
        ]
        if not names:
            return []
        domains: list[str | None] = [None, *_parent_domains(host)]
        suffix = "; Secure" if secure else ""
        headers = []
        for name in names:
            for domain in domains:
                scope = f"; Domain={domain}" if domain else ""
                value = f"{name}=; Max-Age=0; Expires={_EPOCH}; Path=/{scope}{suffix}"
                headers.append((b"set-cookie", value.encode("latin-1")))
        return headers


def _is_deletion(set_cookie: str) -> bool:
    """Whether a ``Set-Cookie`` value removes its cookie (deleting is always allowed).

    RFC 6265 §5.3: the last ``Max-Age`` wins over any ``Expires``, whatever their order.
    """
    max_age: str | None = None
    expires: str | None = None
    for attr in set_cookie.split(";")[1:]:
        key, _, value = attr.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age":
            max_age = value.strip()
        elif key == "expires":
            expires = value.strip()
    if max_age is not None:
        try:
            return int(max_age) <= 0
        except ValueError:
            return False
    if expires is not None:
        try:
            return parsedate_to_datetime(expires).timestamp() < time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _parent_domains(host: str | None) -> list[str]:
    if not host:
        return []
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else ""
    if not name or "." not in name:
        return []
    try:
        ipaddress.ip_address(name)
        return []
    except ValueError:
        pass
    labels = name.split(".")
    # The host itself and each parent with at least two labels; browsers refuse public suffixes.
    return [".".join(labels[i:]) for i in range(len(labels) - 1)][:4]
