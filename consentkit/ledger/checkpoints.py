"""Signed checkpoints of the ledger's Merkle tree (C2SP ``tlog-checkpoint``) and offline
inclusion proofs (C2SP ``tlog-proof``), byte for byte as Go's ``golang.org/x/mod/sumdb/note``
and ``tlog`` write and read them.

A checkpoint commits the ledger's operator to one tree (:mod:`consentkit.ledger.tree`): its origin
(which ledger), its size and its root hash. An auditor who keeps a checkpoint can later check any
record's inclusion proof against it, and that any later checkpoint is consistent with it
(:mod:`consentkit.ledger.proofs`), with nothing but the operator's public *verifier key*
(:mod:`consentkit.ledger.keys`). A checkpoint is signed as a C2SP signed note
(:mod:`consentkit.ledger.notes`), so C2SP witnesses and tools built on Go's ``note`` package read
our checkpoints as they are.

Formats (``‖`` is concatenation, base64 is standard with padding)::

    checkpoint     = <origin>\\n<tree size, decimal>\\n<base64(root hash)>\\n   (the note text)
    tlog-proof     = c2sp.org/tlog-proof@v1\\n[extra <base64>\\n]index <leaf index>\\n
                     <one base64 proof hash per line, leaf level first>\\n ‖ \\n ‖ signed checkpoint

A checkpoint's origin is any non-empty line; C2SP recommends that the log's key name be its
origin, e.g. ``consentkit/<host-or-name>``. Both are parameters here, nothing is assumed.

Errors: a checkpoint or tlog-proof that must not be trusted raises
:class:`~consentkit.ledger.notes.CheckpointError`, whose message says what is wrong and whose
``reason`` says which kind of problem it is; a verifier or private key that cannot be used raises
:class:`~consentkit.ledger.keys.SigningKeyError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .keys import SigningKey, VerifierKey, _b64, _b64decode
from .notes import CheckpointError, _note_bytes, open_note, sign_note
from .proofs import verify_inclusion
from .tree import HASH_SIZE, leaf_hash

__all__ = [
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "TlogProof",
    "check_tlog_proof",
    "format_checkpoint",
    "format_tlog_proof",
    "origin_for",
    "parse_checkpoint",
    "parse_checkpoint_body",
    "parse_tlog_proof",
    "sign_checkpoint",
]

#: First line of a C2SP tlog-proof (an offline-verifiable inclusion proof with its checkpoint).
TLOG_PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


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
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise CheckpointError("malformed-body", f"a root hash is {HASH_SIZE} bytes")
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
    if root is None or len(root) != HASH_SIZE:
        raise malformed(f"the root hash {root_text[:60]!r} is not the base64 of {HASH_SIZE} bytes")
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
    :func:`~consentkit.ledger.proofs.inclusion_proof`) and the signed checkpoint, verbatim.

    One file an auditor can check offline with the log's verifier key and the record's hash
    (:func:`check_tlog_proof`); ``extra`` is opaque, unauthenticated data for the reader.
    """
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise CheckpointError("malformed-proof", f"a leaf index is a non-negative integer, not {index!r}")
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in proof):
        raise CheckpointError("malformed-proof", f"an inclusion proof is a list of {HASH_SIZE}-byte hashes")
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
        if node is None or len(node) != HASH_SIZE:
            raise malformed(f"proof line {number} is not the base64 of a {HASH_SIZE}-byte hash")
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


def origin_for(name: str) -> str:
    """The checkpoints' origin for a log name: ``consentkit/<name>`` (a name that already is one
    is kept, so that a key named after its origin, as C2SP recommends, gives that origin)."""
    return name if name.startswith("consentkit/") else f"consentkit/{name}"
