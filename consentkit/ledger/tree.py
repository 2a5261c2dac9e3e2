"""The ledger's Merkle tree (RFC 9162 §2.1): leaf and node hashes, and roots.

The hash chain lets anyone who holds the whole ledger check it, but an auditor who holds only a
signed checkpoint (a tree size and a root, see :mod:`consentkit.ledger.checkpoints`) must be
able to check one record, or that today's ledger extends last month's, without trusting the
operator. That is what a Merkle tree over the records gives:

* the leaves are the records' ``hash`` values in ``seq`` order (leaf index = seq − 1), hashed as
  ``leaf = SHA-256(0x00 ‖ the record hash's 32 bytes)``;
* an inner node is ``SHA-256(0x01 ‖ left ‖ right)``; the tree of n leaves splits at the largest
  power of two smaller than n (RFC 9162 §2.1.1), so it is the tree of Certificate Transparency,
  Go's ``golang.org/x/mod/sumdb/tlog`` and every C2SP ``tlog-checkpoint`` log, and their tools
  check our proofs.

This module computes roots: of leaves streamed in (:class:`TreeBuilder`), and of the complete,
aligned *chunks* of ``2**chunk_bits`` leaves (256 by default) a backend stores
(:func:`chunk_roots`, :func:`root_from_chunks`). The proofs built on those chunk roots, and
their verifiers, are in :mod:`consentkit.ledger.proofs`. Everything here is pure computation:
no database.

Errors a caller can provoke with data (a record hash that is not 64 hex digits, a hash that is
not 32 bytes, a subtree appended where it cannot start) raise :class:`TreeError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from ..errors import LedgerError

__all__ = [
    "DEFAULT_CHUNK_BITS",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TreeBuilder",
    "TreeError",
    "chunk_roots",
    "leaf_hash",
    "leaf_hash_bytes",
    "leaf_hashes",
    "node_hash",
    "root_from_chunks",
    "root_from_leaves",
    "subtree_roots",
]

#: Size of every hash in the tree (SHA-256).
HASH_SIZE: Final = 32
#: MTH({}) = SHA-256 of nothing (RFC 9162 §2.1.1): the root of the empty ledger.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
#: log2 of the leaves in a stored chunk: 256 leaves, so a million records make 3,906 chunk roots
#: (125 KB), and a proof reads the leaves of one chunk (and of the partial last chunk, unless its
#: root was kept: see :meth:`TreeBuilder.tail_root`).
DEFAULT_CHUNK_BITS: Final = 8
# Leaves hashed together by :func:`chunk_roots`: whole chunks, a few hundred KB of hashes at most.
_BATCH_LEAVES: Final = 1 << 14

# Bound once, and to a local again in the hot loops: they hash twice per leaf, and attribute
# lookups on every hash are a measurable share of the time a million leaves take.
_sha256 = hashlib.sha256
_NODE_PREFIX: Final = b"\x01"


class TreeError(LedgerError, ValueError):
    """A tree computation was asked something impossible: a leaf index beyond the tree, a record
    hash that is not 64 hex digits, a hash that is not 32 bytes, or a chunk that was not read."""


# --- hashing -----------------------------------------------------------------------------------


def leaf_hash(record_hash_hex: str) -> bytes:
    """The leaf hash of a record: ``SHA-256(0x00 ‖ bytes.fromhex(record_hash_hex))``."""
    return _sha256(b"\x00" + _record_hash_bytes(record_hash_hex)).digest()


def leaf_hash_bytes(record_hash: bytes) -> bytes:
    """The leaf hash of a record whose hash is given as its 32 raw bytes."""
    if len(record_hash) != HASH_SIZE:
        raise TreeError(f"a record hash is {HASH_SIZE} bytes, not {len(record_hash)}")
    return _sha256(b"\x00" + bytes(record_hash)).digest()


def leaf_hashes(record_hashes_hex: Iterable[str]) -> list[bytes]:
    """The leaf hashes of record hashes (hex), in order: what a backend turns a chunk's rows into.

    A million leaves per first checkpoint: the hex is decoded with the leaf prefix already in
    place (``"00" + hash``, one object per leaf, not two) and checked in bulk; the per-item
    checks of :func:`_record_hash_bytes` only run to name a bad hash.
    """
    texts = record_hashes_hex if isinstance(record_hashes_hex, list) else list(record_hashes_hex)
    try:
        inputs = list(map(bytes.fromhex, map("00".__add__, texts)))
    except (TypeError, ValueError):
        inputs = []
    # fromhex skips white space between bytes: every input being 33 bytes (so every text at
    # least 64 characters) and the texts 64 characters on average means each is 64 hex digits.
    if (
        len(inputs) != len(texts)
        or set(map(len, inputs)) - {1 + HASH_SIZE}
        or (sum(map(len, texts)) != 2 * HASH_SIZE * len(texts))
    ):
        for text in texts:
            _record_hash_bytes(text)  # raises with the message
    sha = _sha256
    return [sha(data).digest() for data in inputs]


def subtree_roots(nodes: Sequence[bytes], height: int) -> list[bytes]:
    """The roots of the consecutive perfect subtrees of ``2**height`` nodes each that ``nodes`` make.

    ``nodes`` are of one level (leaf hashes, or chunk roots) and their number a multiple of
    ``2**height``: the chunk roots of whole chunks of leaves, or a perfect subtree of chunk roots.
    Level by level over the whole list, one list comprehension per level: a million leaves
    make ~1M node hashes, and this keeps the Python work per node to one concatenation and one
    hash (no per-chunk loop, no stack).
    """
    if len(nodes) & ((1 << height) - 1):
        raise TreeError(f"{len(nodes)} nodes do not make subtrees of 2**{height}")
    sha, prefix = _sha256, _NODE_PREFIX
    level = nodes if isinstance(nodes, list) else list(nodes)  # never changed in place
    for _ in range(height):
        pairs = iter(level)
        level = [sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
    return level


def node_hash(left: bytes, right: bytes) -> bytes:
    """An inner node: ``SHA-256(0x01 ‖ left ‖ right)``."""
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise TreeError(f"node children are {HASH_SIZE}-byte hashes, not {len(left)} and {len(right)} bytes")
    return _sha256(b"\x01" + bytes(left) + bytes(right)).digest()


def _record_hash_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise TreeError(f"a record hash is a hex string, not {type(text).__name__}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(text) != 2 * HASH_SIZE or len(raw) != HASH_SIZE:
        raise TreeError(f"a record hash is {2 * HASH_SIZE} hex digits, not {text[:80]!r}")
    return raw


# The checks and folds below are shared with :mod:`consentkit.ledger.proofs`, whose subtree
# hashes are roots of leaves or of chunk roots too.


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        raise TreeError(f"{what} must be a {HASH_SIZE}-byte hash")
    return bytes(value)


def _fold(stack: Sequence[bytes]) -> bytes:
    """The root of a tree given as its perfect subtrees' roots, left to right (the largest first).

    The right part of an RFC 9162 tree is always the smaller one, so the root is the subtrees
    combined from the right.
    """
    if not stack:
        return EMPTY_ROOT
    sha = _sha256
    root = bytes(stack[-1])
    for i in range(len(stack) - 2, -1, -1):
        root = sha(b"\x01" + stack[i] + root).digest()
    return root


def _compact_range(items: Sequence[bytes]) -> list[bytes]:
    """The roots of the perfect subtrees the tree of ``items`` (leaf-level nodes) is made of.

    One per set bit of their number, largest first, each hashed level by level
    (:func:`subtree_roots`): thousands of chunk roots per checkpoint or proof, so no per-item
    stack loop in Python.
    """
    stack: list[bytes] = []
    start, n = 0, len(items)
    for height in range(n.bit_length() - 1, -1, -1):
        if n >> height & 1:
            stack.extend(subtree_roots(items[start : start + (1 << height)], height))
            start += 1 << height
    return stack


def _root_of(items: Sequence[bytes]) -> bytes:
    """MTH of ``items`` taken as leaf-level nodes (leaf hashes, or chunk roots of equal height)."""
    return _fold(_compact_range(items))


# --- streaming roots ---------------------------------------------------------------------------


class TreeBuilder:
    """The root of a growing tree, leaf by leaf, in O(log n) memory.

    It keeps the roots of the perfect subtrees the tree is made of (one per set bit of the size,
    largest first: the *compact range* of RFC 9162 trees, Go's ``tlog`` stored hashes without
    the interior), so appending a leaf costs one leaf hash and on average one node hash, and
    :meth:`root` folds at most 64 hashes. :meth:`compact_range` and :meth:`from_compact_range`
    let a backend keep that state with a checkpoint and go on from it later without reading the
    older leaves again.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._size = 0

    @classmethod
    def from_compact_range(cls, size: int, hashes: Sequence[bytes]) -> TreeBuilder:
        """A builder for a tree of ``size`` leaves whose perfect subtrees have these roots."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TreeError(f"a tree size is a non-negative integer, not {size!r}")
        if len(hashes) != size.bit_count():
            raise TreeError(
                f"a tree of {size} leaves has {size.bit_count()} subtree roots, not {len(hashes)}"
            )
        builder = cls()
        builder._stack = [_check_hash(h, "a subtree root") for h in hashes]
        builder._size = size
        return builder

    @classmethod
    def from_chunks(
        cls,
        chunk_roots: Iterable[bytes],
        tail_leaves: Iterable[bytes] = (),
        *,
        chunk_bits: int = DEFAULT_CHUNK_BITS,
    ) -> TreeBuilder:
        """A builder for the tree of the given complete chunks followed by a partial chunk's leaves."""
        roots = [_check_hash(root, "a subtree root") for root in chunk_roots]
        builder = cls()
        builder._stack = _compact_range(roots)
        builder._size = len(roots) << chunk_bits
        before = builder._size
        builder.extend(tail_leaves)
        if builder._size - before >= 1 << chunk_bits:
            raise TreeError(
                f"the partial chunk has {builder._size - before} leaves: a chunk holds {1 << chunk_bits}"
            )
        return builder

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (see :func:`leaf_hash`)."""
        node = _check_hash(leaf_hash, "a leaf hash")
        stack, n = self._stack, self._size
        while n & 1:
            node = _sha256(b"\x01" + stack.pop() + node).digest()
            n >>= 1
        stack.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order (the fast path: no per-leaf method call)."""
        sha = _sha256
        stack = self._stack
        push, pop = stack.append, stack.pop
        n = self._size
        try:
            for node in leaf_hashes:
                if len(node) != HASH_SIZE:
                    raise TreeError(f"leaf {n} is not a {HASH_SIZE}-byte hash")
                m = n
                while m & 1:
                    node = sha(b"\x01" + pop() + node).digest()
                    m >>= 1
                push(node)
                n += 1
        finally:
            # Leaves appended before an error stay appended, and the size says so.
            self._size = n

    def extend_record_hashes(self, record_hashes_hex: Iterable[str]) -> None:
        """Append records by their ``hash`` (hex), in ``seq`` order: leaf hashing inlined.

        This is the loop a backend runs over a million rows, so it avoids every call it can:
        bound methods in locals, one ``sha256(...).digest()`` per hash, no intermediate list.
        """
        sha, fromhex = _sha256, bytes.fromhex
        stack = self._stack
        push, pop = stack.append, stack.pop
        n = self._size
        try:
            for text in record_hashes_hex:
                try:
                    raw = fromhex(text)
                except (ValueError, TypeError):
                    raw = b""
                if len(raw) != HASH_SIZE or len(text) != 2 * HASH_SIZE:
                    try:
                        _record_hash_bytes(text)
                    except TreeError as exc:
                        raise TreeError(f"record at leaf index {n} (seq {n + 1}): {exc}") from None
                node = sha(b"\x00" + raw).digest()
                m = n
                while m & 1:
                    node = sha(b"\x01" + pop() + node).digest()
                    m >>= 1
                push(node)
                n += 1
        finally:
            self._size = n

    def append_subtree(self, root: bytes, height: int) -> None:
        """Append a whole perfect subtree of ``2**height`` leaves by its root (a stored chunk root).

        Only where such a subtree can start: the size must be a multiple of ``2**height``, as it
        is when chunk roots are appended before any loose leaf.
        """
        node = _check_hash(root, "a subtree root")
        if height < 0 or self._size & ((1 << height) - 1):
            raise TreeError(f"a subtree of 2**{height} leaves cannot start at leaf {self._size}")
        stack, n = self._stack, self._size >> height
        while n & 1:
            node = _sha256(b"\x01" + stack.pop() + node).digest()
            n >>= 1
        stack.append(node)
        self._size += 1 << height

    def root(self) -> bytes:
        """The root hash of the leaves so far (MTH; :data:`EMPTY_ROOT` for none)."""
        return _fold(self._stack)

    def compact_range(self) -> list[bytes]:
        """The roots of the perfect subtrees of the tree, largest (leftmost) first.

        With :attr:`size` it is all :meth:`from_compact_range` needs: keep it with a checkpoint.
        """
        return list(self._stack)

    def tail_root(self, chunk_bits: int = DEFAULT_CHUNK_BITS) -> bytes | None:
        """MTH of the leaves after the last complete chunk, or None if there are none.

        That is the one hash a proof needs from the partial chunk when the proven leaf is not in
        it (see :class:`~consentkit.ledger.proofs.ChunkedTree`): keep it with a checkpoint, and
        proofs against that checkpoint read the leaves of one chunk only.
        """
        low = self._size & ((1 << chunk_bits) - 1)
        if not low:
            return None
        # The subtrees smaller than a chunk are the last ones, one per set bit of ``low``.
        return _fold(self._stack[len(self._stack) - low.bit_count() :])

    def copy(self) -> TreeBuilder:
        """An independent builder in the same state (to take a root and go on appending)."""
        other = TreeBuilder()
        other._stack = list(self._stack)
        other._size = self._size
        return other


def root_from_leaves(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of leaf hashes: the root of the tree they make."""
    builder = TreeBuilder()
    builder.extend(leaf_hashes)
    return builder.root()


def chunk_roots(leaf_hashes: Iterable[bytes], chunk_bits: int = DEFAULT_CHUNK_BITS) -> Iterator[bytes]:
    """The roots of the complete chunks of ``2**chunk_bits`` leaves, in order.

    A trailing partial chunk yields nothing: its root changes with every append, so it is
    not stored (a backend computes it from its leaves, or keeps :meth:`TreeBuilder.tail_root`).
    Leaves are taken in batches of whole chunks, hashed level by level (:func:`subtree_roots`).
    """
    per_chunk = 1 << chunk_bits
    batch = per_chunk * max(1, _BATCH_LEAVES >> chunk_bits)
    pending: list[bytes] = []
    for leaf in leaf_hashes:
        if len(leaf) != HASH_SIZE:
            raise TreeError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
        pending.append(leaf)
        if len(pending) == batch:
            yield from subtree_roots(pending, chunk_bits)
            pending = []
    yield from subtree_roots(pending[: len(pending) >> chunk_bits << chunk_bits], chunk_bits)


def root_from_chunks(
    chunk_roots: Iterable[bytes],
    tail_leaves: Iterable[bytes] = (),
    *,
    chunk_bits: int = DEFAULT_CHUNK_BITS,
) -> bytes:
    """The root of the tree made of complete chunks (by their roots) and the partial chunk after them.

    For a tree of n leaves: the roots of chunks ``0 .. n // 2**chunk_bits - 1`` and the leaf hashes
    of leaves ``n - n % 2**chunk_bits .. n - 1``. A million leaves cost 3,906 + 64 hashes.
    """
    return TreeBuilder.from_chunks(chunk_roots, tail_leaves, chunk_bits=chunk_bits).root()
