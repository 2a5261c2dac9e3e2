"""Signed checkpoints of the ledger's Merkle tree: C2SP ``signed-note`` (Ed25519) and C2SP
``tlog-checkpoint``, byte for byte as Go's ``golang.org/x/mod/sumdb/note`` writes and reads them.

A checkpoint commits the ledger's operator to one tree (:mod:`consentkit.ledger.tree`): its origin
(which ledger), its size and its root hash. An auditor who keeps a checkpoint can later check any
record's inclusion proof against it, and that any later checkpoint is consistent with it, with
nothing but the operator's public *verifier key*. The formats are the ecosystem's, so tools
built on Go's ``note`` package and C2SP witnesses read our checkpoints and keys as they are.

Formats (``‖`` is concatenation, base64 is standard with padding)::

    key ID         = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4]
    verifier key   = <name>+<key ID, 8 lowercase hex>+base64(0x01 ‖ public key)
    private key    = PRIVATE+KEY+<name>+<key ID, 8 hex>+base64(0x01 ‖ 32-byte Ed25519 seed)
    checkpoint     = <origin>\\n<tree size, decimal>\\n<base64(root hash)>\\n   (the note text)
    signed note    = text ‖ \\n ‖ one line per signature:
                     — <key name> base64(key ID ‖ 64-byte Ed25519 signature of the text)\\n
    tlog-proof     = c2sp.org/tlog-proof@v1\\n[extra <base64>\\n]index <leaf index>\\n
                     <one base64 proof hash per line, leaf level first>\\n ‖ \\n ‖ signed checkpoint

(``—`` is U+2014 EM DASH followed by a space.) The private key text is Go's
``note.NewSigner`` format; a private key *file* holds that one line and a newline, mode 0600.

Names: a key name is non-empty, without white space or ``+``; a checkpoint's origin is any
non-empty line. C2SP recommends that the log's key name be its origin, e.g. the lead's
``consentkit/<host-or-name>``; both are parameters here, nothing is assumed.

Errors: a key text or key file that cannot be used raises :class:`SigningKeyError` (a
configuration problem); a note or checkpoint that must not be trusted raises
:class:`CheckpointError`, whose message says what is wrong and whose ``reason`` says which
kind of problem it is. An inclusion proof that must not be trusted raises it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigurationError, LedgerError
from .tree import leaf_hash, verify_inclusion

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "CheckpointError",
    "SigningKey",
    "SigningKeyError",
    "TlogProof",
    "VerifierKey",
    "check_tlog_proof",
    "format_checkpoint",
    "format_tlog_proof",
    "generate_key",
    "key_id",
    "open_note",
    "parse_checkpoint",
    "parse_checkpoint_body",
    "parse_tlog_proof",
    "read_private_key",
    "sign_checkpoint",
    "sign_note",
    "write_private_key",
]

#: The signature type byte of Ed25519 in C2SP signed-note (and Go's sumdb/note).
ALG_ED25519: Final = 0x01
#: First line of a C2SP tlog-proof (an offline-verifiable inclusion proof with its checkpoint).
TLOG_PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
#: Signature lines read at most (Go's limit; C2SP asks verifiers to accept at least 16).
MAX_SIGNATURES: Final = 100

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SIG_PREFIX = "\u2014 "  # em dash, space
_HASH_SIZE = 32
_SEED_SIZE = 32
_ED25519_SIG_SIZE = 64
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters but the newline

CheckpointProblem = Literal[
    "malformed-note",
    "unknown-key",
    "bad-signature",
    "malformed-body",
    "wrong-origin",
    "malformed-proof",
    "bad-proof",
]


class SigningKeyError(ConfigurationError):
    """A private or verifier key (its text or its file) cannot be used: the message says why."""


class CheckpointError(LedgerError):
    """A signed note or checkpoint must not be trusted.

    ``reason`` is one of ``malformed-note`` (not a signed note at all), ``unknown-key`` (no
    signature by the verifier key: another key, or a key name or ID that does not match),
    ``bad-signature`` (the key's signature does not verify: the text was altered),
    ``malformed-body`` (signed, but not a checkpoint) and ``wrong-origin`` (a checkpoint of
    another log than the one expected); for a ``c2sp.org/tlog-proof``, also ``malformed-proof``
    (not such a proof) and ``bad-proof`` (the inclusion proof does not lead to the checkpoint's
    root: the record is not the one logged at that index).
    """

    def __init__(self, reason: CheckpointProblem, message: str) -> None:
        self.reason: CheckpointProblem = reason
        super().__init__(message)


# --- keys --------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> int:
    """The key ID of an Ed25519 key: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key), as an int."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


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


def _as_signing_key(private_key: str | SigningKey) -> SigningKey:
    return private_key if isinstance(private_key, SigningKey) else SigningKey.parse(private_key)


def _as_verifier_key(verifier_key: str | VerifierKey) -> VerifierKey:
    return verifier_key if isinstance(verifier_key, VerifierKey) else VerifierKey.parse(verifier_key)


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


# --- signed notes ------------------------------------------------------------------------------


def sign_note(text: str, private_key: str | SigningKey) -> str:
    """The signed note of ``text`` (which ends in a newline) by one key."""
    key = _as_signing_key(private_key)
    body = _note_bytes(text, "the note text")
    if not text.endswith("\n"):
        raise CheckpointError("malformed-note", "a note's text must end with a newline")
    if "\n\n" in text or text.startswith("\n"):
        # Legal in C2SP (the last blank line separates), but nothing we sign has one, and a
        # reader that split at the first blank line would misread it.
        raise CheckpointError("malformed-note", "refusing to sign a note text with an empty line")
    signature = key.key_id.to_bytes(4, "big") + key.sign(body)
    return f"{text}\n{_SIG_PREFIX}{key.name} {_b64(signature)}\n"


def _note_bytes(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise CheckpointError("malformed-note", f"{what} is text, not {type(text).__name__}")
    bad = _CONTROL.search(text)
    if bad:
        hint = " (Windows line endings? a note uses \\n only)" if bad.group() == "\r" else ""
        raise CheckpointError(
            "malformed-note", f"{what} contains the control character {bad.group()!r}{hint}"
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError("malformed-note", f"{what} is not valid Unicode") from None


def open_note(note: str | bytes, verifier_key: str | VerifierKey) -> str:
    """The text of a signed note, once a signature by ``verifier_key`` verified.

    C2SP rules: signatures by other keys are ignored (witness cosignatures, an old key), a
    signature by this key that fails rejects the whole note, and a note with no signature by
    this key is rejected. Raises :class:`CheckpointError`; a malformed verifier key raises
    :class:`SigningKeyError`.
    """
    key = _as_verifier_key(verifier_key)
    if isinstance(note, bytes | bytearray):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("malformed-note", "malformed note: it is not UTF-8 text") from None
    _note_bytes(note, "the note")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed-note", "malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise CheckpointError(
            "malformed-note", "malformed note: no signature line, or the last one lacks its newline"
        )
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("malformed-note", f"malformed note: more than {MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    others: list[str] = []
    verified = False
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError(
                "malformed-note",
                f"malformed note: signature line {number} does not start with an em dash and a space",
            )
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(b64)
        try:
            _check_name(name)
        except SigningKeyError:
            raw = None
        if raw is None or len(raw) < 5:
            raise CheckpointError(
                "malformed-note", f"malformed note: signature line {number} is not '— NAME BASE64'"
            )
        signed_id = int.from_bytes(raw[:4], "big")
        if (name, signed_id) != (key.name, key.key_id):
            others.append(f"{name}+{signed_id:08x}")
            continue  # another key's signature: not ours to judge
        # Every signature by this key is checked, a repeated one too (Go's note.Open skips
        # repeats): C2SP says a failing signature by a known key should reject the note.
        if len(raw) != 4 + _ED25519_SIG_SIZE or not key.verify(message, raw[4:]):
            raise CheckpointError(
                "bad-signature",
                f"the signature by {key.name}+{key.key_id:08x} does not verify: "
                "the note was altered after it was signed, or signed over other text",
            )
        verified = True
    if not verified:
        raise CheckpointError("unknown-key", _unknown_key_message(key, others))
    return text


def _unknown_key_message(key: VerifierKey, others: list[str]) -> str:
    wanted = f"{key.name}+{key.key_id:08x}"
    message = f"the note has no signature by the verifier key {wanted}"
    same_name = [o for o in others if o.rsplit("+", 1)[0] == key.name]
    same_id = [o for o in others if o.rsplit("+", 1)[1] == f"{key.key_id:08x}"]
    if same_name:
        others_text = ", ".join(same_name)
        message += f"; it is signed by another key of the same name ({others_text}): a rotated or wrong key?"
    elif same_id:
        message += (
            f"; a signature has its key ID under another name ({', '.join(same_id)}): key name mismatch"
        )
    elif others:
        message += f"; it is signed by {', '.join(others)}"
    return message


# --- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size (records) and the Merkle root of those records.

    ``extensions`` holds the C2SP extension lines after the root, if any (we write none).
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        """The checkpoint as note text: the bytes its signature covers."""
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


def format_checkpoint(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    """The C2SP checkpoint text: origin, size and base64 root, each line ending in a newline."""
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise CheckpointError("malformed-body", f"a checkpoint origin is one non-empty line, not {origin!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckpointError("malformed-body", f"a tree size is a non-negative integer, not {size!r}")
    if not isinstance(root, bytes) or len(root) != _HASH_SIZE:
        raise CheckpointError("malformed-body", f"a root hash is {_HASH_SIZE} bytes")
    for line in extensions:
        if not line or "\n" in line:
            raise CheckpointError("malformed-body", f"an extension line is one non-empty line, not {line!r}")
    text = f"{origin}\n{size}\n{_b64(root)}\n" + "".join(line + "\n" for line in extensions)
    _note_bytes(text, "the checkpoint")
    return text


def sign_checkpoint(origin: str, size: int, root: bytes, private_key: str | SigningKey) -> str:
    """The signed checkpoint of a tree: ``origin``, ``size`` leaves, ``root`` hash (32 bytes)."""
    return sign_note(format_checkpoint(origin, size, root), private_key)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """The checkpoint in a note text (already verified: this checks the format only)."""

    def malformed(problem: str) -> CheckpointError:
        return CheckpointError("malformed-body", f"malformed checkpoint: {problem}")

    if not text.endswith("\n"):
        raise malformed("the text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise malformed("it needs an origin, a tree size and a root hash line")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise malformed("the origin line is empty")
    if not _DECIMAL.fullmatch(size_text):
        raise malformed(f"the tree size {size_text[:40]!r} is not a decimal number without leading zeros")
    root = _b64decode(root_text)
    if root is None or len(root) != _HASH_SIZE:
        raise malformed(f"the root hash {root_text[:60]!r} is not the base64 of {_HASH_SIZE} bytes")
    if any(not line for line in extensions):
        raise malformed("an extension line is empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def parse_checkpoint(
    text: str | bytes, verifier_key: str | VerifierKey, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in a signed note, once its signature by ``verifier_key`` verified.

    With ``origin``, a checkpoint of any other log is refused too. Every problem with the note
    raises :class:`CheckpointError` (see its ``reason``); a malformed verifier key raises
    :class:`SigningKeyError`.
    """
    checkpoint = parse_checkpoint_body(open_note(text, verifier_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            "wrong-origin",
            f"the checkpoint is for the log {checkpoint.origin!r}, not the expected {origin!r}",
        )
    return checkpoint


# --- offline proofs (C2SP tlog-proof) ----------------------------------------------------------


@dataclass(frozen=True)
class TlogProof:
    """An inclusion proof with the signed checkpoint it leads to (its signature verified)."""

    checkpoint: Checkpoint
    index: int
    proof: tuple[bytes, ...]
    extra: bytes | None = None


def format_tlog_proof(
    index: int, proof: Sequence[bytes], signed_checkpoint: str, *, extra: bytes | None = None
) -> str:
    """A ``c2sp.org/tlog-proof@v1``: leaf ``index``, its inclusion proof (from
    :func:`~consentkit.ledger.tree.inclusion_proof`) and the signed checkpoint, verbatim.

    One file an auditor can check offline with the log's verifier key and the record's hash
    (:func:`check_tlog_proof`); ``extra`` is opaque, unauthenticated data for the reader.
    """
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise CheckpointError("malformed-proof", f"a leaf index is a non-negative integer, not {index!r}")
    if any(not isinstance(h, bytes) or len(h) != _HASH_SIZE for h in proof):
        raise CheckpointError("malformed-proof", f"an inclusion proof is a list of {_HASH_SIZE}-byte hashes")
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {_b64(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64(h) for h in proof)
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def parse_tlog_proof(
    text: str | bytes, verifier_key: str | VerifierKey, *, origin: str | None = None
) -> TlogProof:
    """Read a ``c2sp.org/tlog-proof@v1`` and verify its checkpoint's signature (not the proof:
    that needs the record, see :func:`check_tlog_proof`)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("malformed-proof", "malformed proof: it is not UTF-8 text") from None

    def malformed(problem: str) -> CheckpointError:
        return CheckpointError("malformed-proof", f"malformed proof: {problem}")

    head, sep, signed = text.partition("\n\n")
    if not sep:
        raise malformed("no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise malformed(f"the first line is not {TLOG_PROOF_HEADER}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _b64decode(rest[0][len("extra ") :])
        if extra is None:
            raise malformed("the extra data is not base64")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index ") or not _DECIMAL.fullmatch(rest[0][len("index ") :]):
        raise malformed("no 'index N' line (N decimal, without leading zeros)")
    index = int(rest[0][len("index ") :])
    proof = []
    for number, line in enumerate(rest[1:], 1):
        node = _b64decode(line)
        if node is None or len(node) != _HASH_SIZE:
            raise malformed(f"proof line {number} is not the base64 of a {_HASH_SIZE}-byte hash")
        proof.append(node)
    checkpoint = parse_checkpoint(signed, verifier_key, origin=origin)
    return TlogProof(checkpoint, index, tuple(proof), extra)


def check_tlog_proof(
    text: str | bytes, record_hash_hex: str, verifier_key: str | VerifierKey, *, origin: str | None = None
) -> TlogProof:
    """Verify a ``c2sp.org/tlog-proof@v1`` for the record whose ``hash`` is ``record_hash_hex``:
    the checkpoint is signed by ``verifier_key`` (for ``origin``, if given), and the record is
    the leaf at the proof's index of that checkpoint's tree. Raises :class:`CheckpointError`.
    """
    parsed = parse_tlog_proof(text, verifier_key, origin=origin)
    checkpoint = parsed.checkpoint
    if not verify_inclusion(
        leaf_hash(record_hash_hex), parsed.index, checkpoint.size, parsed.proof, checkpoint.root
    ):
        raise CheckpointError(
            "bad-proof",
            f"the inclusion proof does not show this record at seq {parsed.index + 1} of the checkpoint of "
            f"{checkpoint.size} records (another record, another index, or an altered proof)",
        )
    return parsed
