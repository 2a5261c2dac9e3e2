"""Signed notes (C2SP ``signed-note``, Ed25519): sign a text, and open a signed one, byte for
byte as Go's ``golang.org/x/mod/sumdb/note`` writes and reads them.

A signed note is a text and signatures over it, by the log's key (:mod:`consentkit.ledger.keys`)
and maybe by witnesses; :mod:`consentkit.ledger.checkpoints` signs the tree's checkpoints as
notes. The format (``‖`` is concatenation, base64 is standard with padding)::

    signed note    = text ‖ \\n ‖ one line per signature:
                     — <key name> base64(key ID ‖ 64-byte Ed25519 signature of the text)\\n

(``—`` is U+2014 EM DASH followed by a space.)

Errors: a note that must not be trusted raises :class:`CheckpointError`, whose message says
what is wrong and whose ``reason`` says which kind of problem it is (it is named for the notes
a ledger signs: checkpoints, whose own problems it reports too). A key text that cannot be used
raises :class:`~consentkit.ledger.keys.SigningKeyError`.
"""

from __future__ import annotations

from typing import Final, Literal

from ..errors import LedgerError
from .keys import _CONTROL, SigningKey, SigningKeyError, VerifierKey, _b64, _b64decode, _check_name

__all__ = [
    "MAX_SIGNATURES",
    "CheckpointError",
    "open_note",
    "sign_note",
]

#: Signature lines read at most (Go's limit; C2SP asks verifiers to accept at least 16).
MAX_SIGNATURES: Final = 100

_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519_SIG_SIZE = 64

CheckpointProblem = Literal[
    "malformed-note",
    "unknown-key",
    "bad-signature",
    "malformed-body",
    "wrong-origin",
    "malformed-proof",
    "bad-proof",
]


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
    text, lines = _split_note(note)
    message = text.encode("utf-8")
    others: list[str] = []
    verified = False
    for number, line in enumerate(lines, 1):
        name, raw = _signature_line(number, line)
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


def _split_note(note: str | bytes) -> tuple[str, list[str]]:
    """A signed note's text (with its final newline) and its signature lines, checked for form."""
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
    return text, lines


def _signature_line(number: int, line: str) -> tuple[str, bytes]:
    """The key name and the decoded ``key ID ‖ signature`` of signature line ``number``."""
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
    return name, raw


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


def _as_signing_key(private_key: str | SigningKey) -> SigningKey:
    return private_key if isinstance(private_key, SigningKey) else SigningKey.parse(private_key)


def _as_verifier_key(verifier_key: str | VerifierKey) -> VerifierKey:
    return verifier_key if isinstance(verifier_key, VerifierKey) else VerifierKey.parse(verifier_key)
