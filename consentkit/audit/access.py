"""Who may open the auditor's desk (the README's "The auditor's desk").

Access is HTTP Basic (over the site's TLS) against ``audit_users`` — user names with scrypt
password hashes made by ``consentkit hash-password`` — or a bearer ``audit_token`` (also kept as
a hash). There is no default password. Failed attempts are rate-limited per client (an IPv4
address, an IPv6 /64: :func:`consentkit.http.client.limit_key`).

Each attempt that carries credentials is counted *before* its scrypt check runs (~40 ms), and
un-counted when it succeeds: concurrent wrong guesses beyond the limit are refused at once, not
all checked while the first are still running.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from ..errors import ConfigurationError
from ..http.limits import RateLimiter

#: scrypt's cost parameters for new hashes (about 50 ms and 16 MiB per check).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_FAILURES = 5  # per client address within WINDOW before it must wait
WINDOW = 300.0  # seconds
MIN_PASSWORD = 12
MAX_CLIENTS = 10000  # clients whose failures are kept (the quietest go first: http/limits.py)

#: A parsed hash: scrypt's parameters, the salt and the digest.
StoredHash = tuple[dict[str, int], bytes, bytes]


def hash_password(password: str) -> str:
    """A hash for ``audit_users`` (scrypt, random salt): ``scrypt$n$r$p$salt$hash``."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"use an audit password of at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def parse_hash(value: str) -> StoredHash:
    """A hash made by :func:`hash_password`, split into parameters, salt and digest.

    Raises :class:`~consentkit.errors.ConfigurationError` for anything else — above all for a
    password configured in clear.
    """
    try:
        scheme, n, r, p, salt, digest = value.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        return {"n": int(n), "r": int(r), "p": int(p)}, base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, binascii.Error):
        raise ConfigurationError(
            "audit_users values must be hashes made by `consentkit hash-password` (scrypt$…), never passwords"
        ) from None


def check_password(password: str, stored: StoredHash) -> bool:
    """Whether ``password`` matches a parsed hash, compared in constant time."""
    params, salt, digest = stored
    candidate = hashlib.scrypt(password.encode(), salt=salt, dklen=len(digest), maxmem=2**26, **params)
    return hmac.compare_digest(candidate, digest)


class AuditAccess:
    """Who may open the desk, and the rate limit on those who may not."""

    def __init__(self, users: Mapping[str, str] | None, token_hash: str | None) -> None:
        self.users = {name: parse_hash(h) for name, h in (users or {}).items()}
        self.token = parse_hash(token_hash) if token_hash else None
        self._decoy: StoredHash | None = None
        self.failures = RateLimiter(MAX_FAILURES, WINDOW, MAX_CLIENTS)

    @property
    def decoy(self) -> StoredHash:
        """A hash unknown users are checked against, so that timing does not tell who exists
        (made on first use: scrypt takes ~50 ms, which every kit would otherwise pay)."""
        if self._decoy is None:
            self._decoy = parse_hash(hash_password(secrets.token_urlsafe(24)))
        return self._decoy

    @property
    def enabled(self) -> bool:
        """Off (404) unless a user or a token is configured."""
        return bool(self.users) or self.token is not None

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait after too many failures (0: may try); counts nothing."""
        wait = self.failures.wait(client)
        return int(self.failures.retry_after(wait)) if wait else 0

    def reserve(self, client: str) -> int:
        """Count an attempt of this client as failed *before* checking it (0), or the seconds it
        must wait (nothing counted). Call :meth:`succeeded` when the check passes."""
        wait = self.failures.acquire(client)
        return int(self.failures.retry_after(wait)) if wait else 0

    def succeeded(self, client: str) -> None:
        """An attempt reserved with :meth:`reserve` was right after all: it does not count."""
        self.failures.release(client)

    def authenticate(self, authorization: str | None) -> str | None:
        """The user (or ``"token"``) an ``Authorization`` header proves, else ``None``.

        Slow on purpose (scrypt): call it off the event loop.
        """
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return "token" if check_password(value.strip(), self.token) else None
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        stored = self.users.get(user)
        ok = check_password(password, stored or self.decoy)
        return user if ok and stored is not None else None
