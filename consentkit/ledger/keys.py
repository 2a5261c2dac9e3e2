"""The Ed25519 keys of signed notes: key IDs, verifier and private key texts, private key files,
byte for byte as Go's ``golang.org/x/mod/sumdb/note`` writes and reads them (C2SP ``signed-note``).

A log's operator signs its checkpoints with a private key (:mod:`consentkit.ledger.notes`,
:mod:`consentkit.ledger.checkpoints`) and publishes the matching *verifier key*: an auditor
needs nothing else to check them, and tools built on Go's ``note`` package read our keys as
they are.

Formats (``‖`` is concatenation, base64 is standard with padding)::

    key ID         = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4]
    verifier key   = <name>+<key ID, 8 lowercase hex>+base64(0x01 ‖ public key)
    private key    = PRIVATE+KEY+<name>+<key ID, 8 hex>+base64(0x01 ‖ 32-byte Ed25519 seed)

The private key text is Go's ``note.NewSigner`` format; a private key *file* holds that one line
and a newline, mode 0600.

Names: a key name is non-empty, without white space or ``+``. C2SP recommends that the log's
key name be its checkpoints' origin, e.g. ``consentkit/<host-or-name>``; it is a parameter
here, nothing is assumed.

Errors: a key text or key file that cannot be used raises :class:`SigningKeyError` (a
configuration problem), whose message says why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigurationError

__all__ = [
    "ALG_ED25519",
    "SigningKey",
    "SigningKeyError",
    "VerifierKey",
    "generate_key",
    "key_id",
    "read_private_key",
    "write_private_key",
]

#: The signature type byte of Ed25519 in C2SP signed-note (and Go's sumdb/note).
ALG_ED25519: Final = 0x01

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SEED_SIZE = 32
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters but the newline


class SigningKeyError(ConfigurationError):
    """A private or verifier key (its text or its file) cannot be used: the message says why."""


# --- keys --------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> int:
    """The key ID of an Ed25519 key: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key), as an int."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


# _CONTROL, _check_name, _b64decode and _b64 serve the note and checkpoint formats too
# (consentkit.ledger.notes, consentkit.ledger.checkpoints): one definition of each rule.


def _check_name(name: str, what: str = "key name") -> None:
    # Go's isValidName: non-empty, no Unicode white space, no '+'. Control characters are excluded
    # too, since a signed note may not contain any; str.isspace covers the rest of Go's set.
    if not isinstance(name, str) or not name:
        raise SigningKeyError(f"a {what} must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise SigningKeyError(f"{what} {name!r} must contain no white space, '+' or control character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SigningKeyError(f"{what} {name!r} is not valid Unicode") from None


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64: only the canonical encoding of some bytes, else None.

    ``base64.b64decode`` tolerates stray padding and non-zero trailing bits; a re-encoding that
    differs means the text is not what a signer wrote, so it is refused.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class VerifierKey:
    """A public key that verifies a log's signatures: parse one with :meth:`parse`."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<8 hex key ID>+base64(0x01 ‖ 32-byte public key)``."""
        if not isinstance(text, str):
            raise SigningKeyError(f"a verifier key is text, not {type(text).__name__}")
        text = text.strip()
        if text.startswith(_PRIVATE_PREFIX):
            raise SigningKeyError(
                "that is a private key, not a verifier key: keep it secret and give the verifier key"
            )
        name, id_hex, key = _split_key(text, "verifier key")
        raw = _b64decode(key)
        if not raw:
            raise SigningKeyError(f"verifier key {name!r}: the key is not valid base64")
        if int(id_hex, 16) != _raw_key_id(name, raw):
            raise SigningKeyError(
                f"verifier key {name}+{id_hex}: the key ID does not match the name and key "
                "(the key text was altered or mistyped)"
            )
        if raw[0] != ALG_ED25519:
            raise SigningKeyError(
                f"verifier key {name}+{id_hex}: unknown signature type 0x{raw[0]:02x} (only Ed25519, 0x01)"
            )
        if len(raw) != 1 + 32:
            raise SigningKeyError(
                f"verifier key {name}+{id_hex}: an Ed25519 key is 32 bytes, not {len(raw) - 1}"
            )
        return cls(name, int(id_hex, 16), raw[1:])

    @property
    def text(self) -> str:
        """The key in verifier key format (what :meth:`parse` reads)."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SigningKey:
    """A log's private signing key: parse one with :meth:`parse`, make one with :func:`generate_key`.

    Its ``repr`` leaves the seed out, so a key never lands in a log by accident.
    """

    name: str
    key_id: int
    seed: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """Read ``PRIVATE+KEY+<name>+<8 hex key ID>+base64(0x01 ‖ 32-byte Ed25519 seed)``."""
        if not isinstance(text, str):
            raise SigningKeyError(f"a private key is text, not {type(text).__name__}")
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise SigningKeyError("a private key starts with PRIVATE+KEY+ (was a verifier key given?)")
        name, id_hex, key = _split_key(text[len(_PRIVATE_PREFIX) :], "private key")
        raw = _b64decode(key)
        if not raw:
            raise SigningKeyError(f"private key {name!r}: the key is not valid base64")
        if raw[0] != ALG_ED25519:
            raise SigningKeyError(
                f"private key {name}+{id_hex}: unknown signature type 0x{raw[0]:02x} (only Ed25519, 0x01)"
            )
        if len(raw) != 1 + _SEED_SIZE:
            raise SigningKeyError(
                f"private key {name}+{id_hex}: an Ed25519 seed is 32 bytes, not {len(raw) - 1}"
            )
        seed = raw[1:]
        public = _public_key(seed)
        if int(id_hex, 16) != key_id(name, public):
            raise SigningKeyError(
                f"private key {name}+{id_hex}: the key ID does not match the name and key "
                "(the key text was altered or mistyped)"
            )
        return cls(name, int(id_hex, 16), seed)

    @property
    def text(self) -> str:
        """The key in private key format (what :meth:`parse` reads). Keep it secret."""
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.seed)}"

    @property
    def verifier(self) -> VerifierKey:
        """The matching verifier key, to publish."""
        return VerifierKey(self.name, self.key_id, _public_key(self.seed))

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (deterministic: the same message, the same bytes)."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def _public_key(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def _raw_key_id(name: str, typed_key: bytes) -> int:
    # Over the type byte and key as written: a key of an unknown type still has an ID to check.
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + typed_key).digest()
    return int.from_bytes(digest[:4], "big")


def _split_key(text: str, what: str) -> tuple[str, str, str]:
    # name+id+key: base64 may itself contain '+', so only the first two separate fields.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise SigningKeyError(f"a {what} has the form NAME+KEYID+KEY; {text[:60]!r} does not")
    name, id_hex, key = parts
    try:
        _check_name(name)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{what}: {exc}") from None
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise SigningKeyError(f"{what} {name!r}: the key ID {id_hex!r} is not 8 hex digits")
    return name, id_hex, key


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key named ``name``: ``(private key text, verifier key text)``.

    Name the key after the log's origin (C2SP recommends it), e.g. ``consentkit/example.org``.
    Write the private key with :func:`write_private_key`; publish the verifier key.
    """
    _check_name(name)
    seed = secrets.token_bytes(_SEED_SIZE)
    key = SigningKey(name, key_id(name, _public_key(seed)), seed)
    return key.text, key.verifier.text


# --- key files ---------------------------------------------------------------------------------


def write_private_key(path: str | os.PathLike[str], text: str) -> None:
    """Write a private key to a new file readable by its owner only (mode 0600).

    An existing file is never overwritten: losing a log's key loses the ability to sign
    checkpoints auditors will accept, so replacing one must be a deliberate act.
    """
    key = SigningKey.parse(text)  # never write something that will not read back
    name = os.fspath(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags, 0o600)
    except FileExistsError:
        raise SigningKeyError(
            f"{name} already exists: refusing to overwrite a key file (move it away first)"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create the key file {name}: {exc.strerror}") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # the umask can only narrow the mode; make it exactly 0600
        os.write(fd, (key.text + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private_key(path: str | os.PathLike[str]) -> str:
    """The private key text in a key file, after checking that only its owner can read it.

    A file that its group or others may read or write is refused, as ssh refuses one: whoever
    can read it can sign checkpoints in the log's name.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY)
    except FileNotFoundError:
        raise SigningKeyError(f"no private key file at {name}") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read the key file {name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SigningKeyError(f"{name} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise SigningKeyError(
                f"the private key file {name} has permissions {mode:04o}: it must be readable by its owner "
                f"only; run: chmod 600 {name}"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SigningKeyError(f"{name} is not a private key file (it is not text)") from None
    try:
        SigningKey.parse(text)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{name}: {exc}") from None
    return text
