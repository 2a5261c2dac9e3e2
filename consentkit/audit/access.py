"""Who may open the auditor's desk (the README's "The auditor's desk").

Access is HTTP Basic (over the site's TLS) against ``audit_users`` — user names with scrypt
password hashes made by ``consentkit hash-password`` — or a bearer ``audit_token`` (also kept as
a hash). There is no default password. Failed attempts are rate-limited per client address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from ..errors import ConfigurationError

#: scrypt's cost parameters for new hashes (about 50 ms and 16 MiB per check).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_FAILURES = 5  # per client address within WINDOW before it must wait
WINDOW = 300.0  # seconds
MIN_PASSWORD = 12
MAX_CLIENTS = 10000  # failure lists kept before all are forgotten

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
        self._failures: dict[str, list[float]] = {}

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
        """Seconds this client must wait after too many failures (0: may try)."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, ()) if now - t < WINDOW]
        self._failures[client] = recent
        if len(recent) < MAX_FAILURES:
            return 0
        return int(WINDOW - (now - recent[0])) + 1

    def failed(self, client: str) -> None:
        """Count a failed attempt."""
        self._failures.setdefault(client, []).append(time.monotonic())
        if len(self._failures) > MAX_CLIENTS:  # bound memory under a spray of addresses
            self._failures.clear()

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
