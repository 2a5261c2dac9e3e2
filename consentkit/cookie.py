"""The signed consent cookie (the README's "The consent cookie").

The value is an itsdangerous timestamped signature over a compact text payload::

    1~<subject>~<revision>~<granted>~<denied>~<decided_at>~<receipt>~<flags>

``granted`` and ``denied`` are purpose ids joined by ``-`` (ids never contain it), ``decided_at`` is
UNIX seconds, ``receipt`` the ledger record's hash prefix, ``flags`` holds ``g`` when the decision
was made while the browser sent a Global Privacy Control signal, and ``o`` or ``n`` when it was
made where the law is opt-out or a notice (none: opt-in). Every character is a cookie-octet,
so the value needs no quoting.

Decoding never raises: anything wrong means ``None`` (undecided). Verified values are cached by
their exact bytes, which is safe because the same bytes verify the same way under the same keys;
only age is rechecked on every use.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner

from .cache import BoundedCache
from .entropy import token_urlsafe
from .errors import ConfigurationError
from .regions import Model

FORMAT_VERSION = "1"
SEP = "~"
JOIN = "-"
SALT = "consentkit.cookie"
# A development key anyone can read: only ever used when asked for explicitly.
DEVELOPMENT_KEY = "consentkit-development-key-do-not-use-in-production"
MIN_KEY_LENGTH = 16
MAX_COOKIE_BYTES = 4096
_CACHE_SIZE = 16384


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """What a verified consent cookie says. Whether it is still *valid* is decided elsewhere."""

    subject_id: str
    revision: int
    granted: frozenset[str]
    denied: frozenset[str]
    decided_at: int
    receipt: str
    gpc: bool
    old_key: bool = False  # verified with an older key: re-sign on the next response
    # The law the choice was made under: a choice counts only where the law is no stricter.
    model: Model = Model.OPT_IN


def new_subject_id() -> str:
    """A random, URL-safe, 128-bit pseudonymous visitor id."""
    return token_urlsafe(16)


class CookieCodec:
    """Signs and verifies consent cookie values, with key rotation and a verification cache."""

    def __init__(self, secret_keys: list[str | bytes]) -> None:
        if not secret_keys:
            raise ConfigurationError(
                "no secret key: pass secret_keys=[...] (for example from the CONSENTKIT_SECRET "
                "environment variable); for local development only, pass development=True"
            )
        for key in secret_keys:
            if not isinstance(key, str | bytes) or len(key) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"each secret key must be a string of at least {MIN_KEY_LENGTH} characters; "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        self._signer = _signer(secret_keys[0])
        self._old_signers = [_signer(k) for k in secret_keys[1:]]
        self._cache: BoundedCache[str, StoredDecision] = BoundedCache(_CACHE_SIZE)

    def encode(self, decision: StoredDecision) -> str:
        """Sign ``decision`` with the newest key."""
        payload = SEP.join(
            (
                FORMAT_VERSION,
                decision.subject_id,
                str(decision.revision),
                JOIN.join(sorted(decision.granted)),
                JOIN.join(sorted(decision.denied)),
                str(decision.decided_at),
                decision.receipt,
                ("g" if decision.gpc else "") + _MODEL_FLAGS[decision.model],
            )
        )
        return self._signer.sign(payload).decode("ascii")

    def decode(self, value: str) -> StoredDecision | None:
        """The decision a cookie value carries, or ``None`` for anything wrong with it.

        The decision's age is not checked here: the caller compares ``decided_at`` (which the
        signature covers) with the policy's lifetime on every use, cached or not.
        """
        hit = self._cache.get(value)
        if hit is not None:
            return hit
        if len(value) > MAX_COOKIE_BYTES:
            return None
        decision = self._verify(value)
        if decision is not None:
            self._cache.put(value, decision)
        return decision

    def _verify(self, value: str) -> StoredDecision | None:
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            return None
        payload = _unsign(self._signer, raw)
        if payload is not None:
            return _parse(payload, old_key=False)
        for signer in self._old_signers:
            payload = _unsign(signer, raw)
            if payload is not None:
                return _parse(payload, old_key=True)
        return None


def _unsign(signer: TimestampSigner, raw: bytes) -> bytes | None:
    try:
        return signer.unsign(raw)
    except BadSignature:
        return None
    except Exception:
        # Values not even shaped like a signature can raise other errors inside itsdangerous.
        return None


_MODEL_FLAGS = {Model.OPT_IN: "", Model.OPT_OUT: "o", Model.NOTICE: "n"}


def _signer(key: str | bytes) -> TimestampSigner:
    return TimestampSigner(key, salt=SALT, sep=".", digest_method=hashlib.sha256)


def _parse(payload: bytes, old_key: bool) -> StoredDecision | None:
    try:
        parts = payload.decode("ascii").split(SEP)
        if len(parts) != 8 or parts[0] != FORMAT_VERSION:
            return None
        _, subject, revision, granted, denied, decided_at, receipt, flags = parts
        if not subject or not revision.isdigit() or not decided_at.isdigit():
            return None
        granted_ids = frozenset(granted.split(JOIN)) if granted else frozenset()
        denied_ids = frozenset(denied.split(JOIN)) if denied else frozenset()
        if granted_ids & denied_ids:
            return None
        return StoredDecision(
            subject_id=subject,
            revision=int(revision),
            granted=granted_ids,
            denied=denied_ids,
            decided_at=int(decided_at),
            receipt=receipt,
            gpc="g" in flags,
            old_key=old_key,
            model=Model.OPT_OUT if "o" in flags else Model.NOTICE if "n" in flags else Model.OPT_IN,
        )
    except (UnicodeDecodeError, ValueError):
        return None


class ConsentCookie:
    """The ``Set-Cookie`` header that carries a decision: ``Path=/; HttpOnly; SameSite=Lax``,
    ``Secure`` unless turned off for plain-http development, and a ``Max-Age`` that ends with
    the consent's lifetime (a re-signed cookie does not live longer than the decision)."""

    __slots__ = ("codec", "lifetime", "name", "secure")

    def __init__(self, name: str, codec: CookieCodec, lifetime_seconds: int, secure: bool) -> None:
        self.name = name
        self.codec = codec
        self.lifetime = lifetime_seconds
        self.secure = secure

    def header(self, stored: StoredDecision) -> tuple[bytes, bytes]:
        """``(b"set-cookie", value)`` for ``stored``, signed with the newest key."""
        remaining = max(0, stored.decided_at + self.lifetime - int(time.time()))
        value = (
            f"{self.name}={self.codec.encode(stored)}; Max-Age={remaining}; Path=/; HttpOnly; SameSite=Lax"
        )
        if self.secure:
            value += "; Secure"
        return (b"set-cookie", value.encode("latin-1"))
