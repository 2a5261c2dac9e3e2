"""The ledger's Merkle tree (RFC 9162 §2.1): roots, inclusion proofs and consistency proofs.

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

Everything here is pure computation: no database. A backend stores the roots of the complete,
aligned *chunks* of ``2**chunk_bits`` leaves (256 by default) and hands them, with the leaves of
at most one chunk, to :class:`ChunkedTree`; :func:`inclusion_proof` and :func:`consistency_proof`
then ask it for the few subtree hashes a proof is made of. :func:`proof_reads` says beforehand
which chunk roots and which leaves to read, so an async backend reads first and computes after.

Errors a caller can provoke with data (an index beyond the tree, a record hash that is not 64 hex
digits, a chunk that was not read) raise :class:`TreeError`. Verifiers never raise on a bad proof:
they answer ``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from ..errors import LedgerError

__all__ = [
    "DEFAULT_CHUNK_BITS",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ChunkedTree",
    "LeafTree",
    "ProofReads",
    "SubtreeHashes",
    "TreeBuilder",
    "TreeError",
    "chunk_roots",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hash_bytes",
    "leaf_hashes",
    "node_hash",
    "proof_reads",
    "root_from_chunks",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

#: Size of every hash in the tree (SHA-256).
HASH_SIZE: Final = 32
#: MTH({}) = SHA-256 of nothing (RFC 9162 §2.1.1): the root of the empty ledger.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
#: log2 of the leaves in a stored chunk: 256 leaves, so a million records make 3,906 chunk roots
#: (125 KB), and a proof reads the leaves of one chunk (and of the partial last chunk, unless its
#: root was kept: see :meth:`TreeBuilder.tail_root`).
DEFAULT_CHUNK_BITS: Final = 8

# Bound once, and to a local again in the hot loops: they hash twice per leaf, and attribute
# lookups on every hash are a measurable share of the time a million leaves take.
_sha256 = hashlib.sha256


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
    """The leaf hashes of record hashes (hex), in order: what a backend turns a chunk's rows into."""
    sha, fromhex = _sha256, bytes.fromhex
    out: list[bytes] = []
    append = out.append
    for text in record_hashes_hex:
        try:
            raw = fromhex(text)
        except (ValueError, TypeError):
            raw = b""
        # fromhex skips white space between bytes: the length check on the text rejects it.
        if len(raw) != HASH_SIZE or len(text) != 2 * HASH_SIZE:
            _record_hash_bytes(text)  # raises with the message
        append(sha(b"\x00" + raw).digest())
    return out


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


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        raise TreeError(f"{what} must be a {HASH_SIZE}-byte hash")
    return bytes(value)


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2): where RFC 9162 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


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


def _root_of(items: Sequence[bytes]) -> bytes:
    """MTH of ``items`` taken as leaf-level nodes (leaf hashes, or chunk roots of equal height)."""
    sha = _sha256
    stack: list[bytes] = []
    push, pop = stack.append, stack.pop
    for n, node in enumerate(items):
        while n & 1:
            node = sha(b"\x01" + pop() + node).digest()
            n >>= 1
        push(node)
    return _fold(stack)


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
        builder = cls()
        for root in chunk_roots:
            builder.append_subtree(root, chunk_bits)
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
        it (see :class:`ChunkedTree`): keep it with a checkpoint, and proofs against that
        checkpoint read the leaves of one chunk only.
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
    """
    per_chunk = 1 << chunk_bits
    chunk: list[bytes] = []
    for leaf in leaf_hashes:
        chunk.append(leaf)
        if len(chunk) == per_chunk:
            yield root_from_leaves(chunk)
            chunk = []


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


# --- subtree hashes for proofs -----------------------------------------------------------------


@runtime_checkable
class SubtreeHashes(Protocol):
    """Anything that can give MTH(D[start:end]) for the nodes of a tree: what proofs are made of."""

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``start .. end - 1``."""
        ...


class LeafTree:
    """A tree held as all its leaf hashes in memory: small trees, tests, and exports."""

    __slots__ = ("_leaves",)

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._leaves = leaf_hashes

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``start .. end - 1``."""
        if not 0 <= start < end <= len(self._leaves):
            raise TreeError(f"leaves {start}..{end - 1} are not in a tree of {len(self._leaves)} leaves")
        return _root_of(self._leaves[start:end])


class ChunkedTree:
    """A tree of ``size`` leaves seen through stored chunk roots plus the leaves that were read.

    ``chunk_roots`` are the roots of the complete chunks, from chunk 0 (at least the
    ``size >> chunk_bits`` chunks complete at ``size``; more are ignored, so the roots stored now
    serve a proof against an older checkpoint). ``chunk_leaves`` maps a chunk number to the leaf
    hashes of that chunk (leaves past ``size`` are ignored). ``tail_root``, if known, is
    MTH of the leaves after the last complete chunk (:meth:`TreeBuilder.tail_root` at this size);
    without it a proof that needs it reads the partial chunk's leaves. :func:`proof_reads` says
    what a given proof needs.

    Every node of an RFC 9162 tree is either a perfect subtree, aligned on its size, or on the
    right border (it ends at ``size``). A perfect subtree of a chunk or more is a perfect tree of
    chunk roots; a smaller one lies inside one chunk; a border node that starts on a chunk
    boundary is a tree of chunk roots with the partial chunk's root as its last item (the
    split points agree, because the partial chunk is smaller than any power of two they split
    at); a border node that starts inside a chunk lies inside the partial chunk. So a proof needs
    the chunk roots, the leaves of the chunk it is about, and the partial chunk's root.
    """

    __slots__ = ("_bits", "_chunk_roots", "_leaves", "_size", "_tail_root")

    def __init__(
        self,
        size: int,
        chunk_roots: Sequence[bytes],
        chunk_leaves: Mapping[int, Sequence[bytes]] | None = None,
        *,
        chunk_bits: int = DEFAULT_CHUNK_BITS,
        tail_root: bytes | None = None,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TreeError(f"a tree size is a non-negative integer, not {size!r}")
        if len(chunk_roots) < size >> chunk_bits:
            raise TreeError(
                f"a tree of {size} leaves has {size >> chunk_bits} complete chunks; "
                f"only {len(chunk_roots)} chunk roots were given"
            )
        self._size = size
        self._bits = chunk_bits
        self._chunk_roots = chunk_roots
        self._leaves = chunk_leaves or {}
        self._tail_root = None if tail_root is None else _check_hash(tail_root, "the tail root")

    @property
    def size(self) -> int:
        """The number of leaves of the tree."""
        return self._size

    def root(self) -> bytes:
        """MTH of the whole tree."""
        return self.subtree_hash(0, self._size) if self._size else EMPTY_ROOT

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``start .. end - 1``, for a node of this tree."""
        size, bits = self._size, self._bits
        if not 0 <= start < end <= size:
            raise TreeError(f"leaves {start}..{end - 1} are not in a tree of {size} leaves")
        tail_start = size >> bits << bits
        if start == tail_start and end == size and self._tail_root is not None:
            return self._tail_root
        chunk = start >> bits
        if (end - 1) >> bits == chunk:
            # Inside one chunk: the whole chunk is stored as a root, anything smaller needs its leaves.
            if end - start == 1 << bits:
                return self._chunk_roots[chunk]
            base = chunk << bits
            return _root_of(self._chunk_leaves(chunk)[start - base : end - base])
        mask = (1 << bits) - 1
        if start & mask or (end & mask and end != size):
            raise TreeError(f"leaves {start}..{end - 1} are not a node of a tree of {size} leaves")
        items = self._chunk_roots[start >> bits : min(end, tail_start) >> bits]
        if end > tail_start:
            items = [*items, self.subtree_hash(tail_start, size)]
        return _root_of(items)

    def _chunk_leaves(self, chunk: int) -> Sequence[bytes]:
        base = chunk << self._bits
        want = min(1 << self._bits, self._size - base)
        leaves = self._leaves.get(chunk)
        if leaves is None or len(leaves) < want:
            raise TreeError(
                f"the leaves of chunk {chunk} (leaf indexes {base}..{base + want - 1}) are needed "
                f"but {'were not given' if leaves is None else f'only {len(leaves)} were given'}"
            )
        return leaves[:want]


def _source(tree: SubtreeHashes | Sequence[bytes]) -> SubtreeHashes:
    if isinstance(tree, SubtreeHashes):
        return tree
    return LeafTree(tree)


# --- proofs ------------------------------------------------------------------------------------


def _inclusion_nodes(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH make up PATH(index, D[size]), leaf level first (RFC 9162 §2.1.3.1)."""
    nodes: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            nodes.append((mid, end))
            end = mid
        else:
            nodes.append((start, mid))
            start = mid
    nodes.reverse()  # the recursion emits the deepest sibling first
    return nodes


def _consistency_nodes(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH make up PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1), in order."""
    nodes: list[tuple[int, int]] = []
    start, end = 0, new_size
    whole = True  # SUBPROOF's b: the old tree is this whole subtree, so the verifier knows its hash
    while True:
        n, m = end - start, old_size - start
        if m == n:
            if not whole:
                nodes.append((start, end))
            break
        k = _split(n)
        if m <= k:
            nodes.append((start + k, end))
            end = start + k
        else:
            nodes.append((start, start + k))
            start += k
            whole = False
    nodes.reverse()
    return nodes


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TreeError(f"{name} must be an integer, not {type(value).__name__}")


def inclusion_proof(index: int, size: int, tree: SubtreeHashes | Sequence[bytes]) -> list[bytes]:
    """The inclusion proof (audit path) of leaf ``index`` in the tree of ``size`` leaves.

    In RFC 9162 §2.1.3 order: the sibling nearest the leaf first. ``tree`` is a
    :class:`ChunkedTree`, any :class:`SubtreeHashes`, or the list of all leaf hashes.
    """
    _check_size("index", index)
    _check_size("size", size)
    if not 0 <= index < size:
        raise TreeError(f"leaf index {index} is not in a tree of {size} leaves")
    source = _source(tree)
    return [source.subtree_hash(start, end) for start, end in _inclusion_nodes(index, size)]


def consistency_proof(old_size: int, new_size: int, tree: SubtreeHashes | Sequence[bytes]) -> list[bytes]:
    """The consistency proof that the tree of ``new_size`` leaves extends the one of ``old_size``.

    RFC 9162 §2.1.4 order. ``tree`` is the *new* tree (a :class:`ChunkedTree` of ``new_size``
    leaves, or all its leaf hashes). Equal sizes give the empty proof. An empty old tree is
    refused: every tree extends it, there is nothing to prove, and verifiers (ours, and Go's
    ``transparency-dev/merkle``) reject any proof from size 0.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if not 0 < old_size <= new_size:
        raise TreeError(
            f"no consistency proof from {old_size} to {new_size} leaves: need 0 < old size <= new size"
        )
    source = _source(tree)
    return [source.subtree_hash(start, end) for start, end in _consistency_nodes(old_size, new_size)]


@dataclass(frozen=True)
class ProofReads:
    """What a backend reads to build one proof from chunk storage (see :func:`proof_reads`).

    ``chunk_roots``: the chunk numbers whose stored roots are needed (always a prefix,
    ``range(0, size >> chunk_bits)``). ``leaf_chunks``: the chunks whose leaves are needed;
    each maps to the leaf indexes ``leaf_ranges`` lists (seq = leaf index + 1).
    """

    chunk_roots: range
    leaf_chunks: tuple[int, ...]
    leaf_ranges: tuple[range, ...]


def proof_reads(
    size: int,
    *,
    index: int | None = None,
    old_size: int | None = None,
    chunk_bits: int = DEFAULT_CHUNK_BITS,
    have_tail_root: bool = False,
) -> ProofReads:
    """The chunk roots and leaves to read for an inclusion proof (``index``) or a consistency
    proof (``old_size``) in the tree of ``size`` leaves.

    With ``have_tail_root`` (the caller kept :meth:`TreeBuilder.tail_root` for this size, e.g.
    with the checkpoint) a proof reads the leaves of at most one chunk; without it, a proof about
    a complete chunk also reads the partial chunk's leaves (fewer than ``2**chunk_bits``).
    """
    if (index is None) == (old_size is None):
        raise TreeError("give either index (inclusion proof) or old_size (consistency proof)")
    if index is not None:
        _check_size("index", index)
        if not 0 <= index < size:
            raise TreeError(f"leaf index {index} is not in a tree of {size} leaves")
        nodes = _inclusion_nodes(index, size)
        # The leaf itself is not in the proof, but the verifier has it: its chunk is read anyway
        # when a sibling lies in it, and a caller wants the leaf's record to show it.
        chunks = {index >> chunk_bits}
    else:
        assert old_size is not None
        _check_size("old_size", old_size)
        if not 0 < old_size <= size:
            raise TreeError(f"no consistency proof from {old_size} to {size} leaves")
        nodes = _consistency_nodes(old_size, size)
        chunks = set()
    tail_start = size >> chunk_bits << chunk_bits
    for start, end in nodes:
        if start == tail_start and end == size and have_tail_root:
            continue
        if (end - 1) >> chunk_bits == start >> chunk_bits:
            if end - start != 1 << chunk_bits:
                chunks.add(start >> chunk_bits)
        elif end > tail_start and not have_tail_root:
            chunks.add(tail_start >> chunk_bits)
    ordered = tuple(sorted(chunks))
    ranges = tuple(range(c << chunk_bits, min((c + 1) << chunk_bits, size)) for c in ordered)
    return ProofReads(range(size >> chunk_bits), ordered, ranges)


# --- verification ------------------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows leaf ``index`` with hash ``leaf_hash`` in the tree of ``size``
    leaves and root ``root`` (the algorithm of RFC 9162 §2.1.3.2, step by step).

    Anything malformed (a hash that is not 32 bytes, an index outside the tree, a proof of the
    wrong length) is simply not a proof: ``False``, never an exception.
    """
    if not (_is_count(index) and _is_count(size) and 0 <= index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    sha = _sha256
    for p in proof:
        if sn == 0:
            return False  # more proof than tree
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            # A right border node has no right sibling: skip the levels where it has none.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (``new_size``, ``new_root``) extends (``old_size``,
    ``old_root``): the algorithm of RFC 9162 §2.1.4.2, step by step.

    Equal sizes need equal roots and an empty proof. An old size of 0 is always ``False``: every
    tree extends the empty one, so there is nothing to check and no proof to accept (as in Go's
    ``transparency-dev/merkle``); a caller whose trusted checkpoint is empty skips the check.
    """
    if not (_is_count(old_size) and _is_count(new_size)) or old_size <= 0 or new_size < old_size:
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False  # step 1
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)  # step 2: the old tree is a node of the new one, the verifier has it
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    sha = _sha256
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha(b"\x01" + c + fr).digest()
            sr = sha(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0  # step 7
