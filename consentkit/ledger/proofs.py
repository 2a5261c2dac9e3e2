"""Inclusion and consistency proofs of the ledger's Merkle tree (RFC 9162 §2.1.3 and §2.1.4).

A proof is a list of subtree hashes of the tree (:mod:`consentkit.ledger.tree`). They come from a
*proof source*, a :class:`SubtreeHashes`: :class:`LeafTree` holds every leaf hash in memory;
:class:`ChunkedTree` sees a backend's storage, the roots of the complete, aligned chunks of
``2**chunk_bits`` leaves plus the leaves of at most one chunk. :func:`inclusion_proof` and
:func:`consistency_proof` ask the source for the few subtree hashes a proof is made of.
:func:`proof_reads` says beforehand which chunk roots and which leaves to read, so an async
backend reads first and computes after. :func:`verify_inclusion` and :func:`verify_consistency`
check proofs as any RFC 9162 client does.

Errors a caller can provoke with data (an index beyond the tree, a chunk that was not read)
raise :class:`~consentkit.ledger.tree.TreeError`. Verifiers never raise on a bad proof: they
answer ``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .tree import DEFAULT_CHUNK_BITS, EMPTY_ROOT, HASH_SIZE, TreeError, _check_hash, _root_of

__all__ = [
    "ChunkedTree",
    "LeafTree",
    "ProofReads",
    "SubtreeHashes",
    "consistency_proof",
    "inclusion_proof",
    "proof_reads",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

# Bound once, and to a local again in the verifiers' loops (as in :mod:`consentkit.ledger.tree`).
_sha256 = hashlib.sha256


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2): where RFC 9162 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


# --- proof sources -----------------------------------------------------------------------------


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
    hashes of that chunk (leaves past ``size`` are ignored). ``tail_root``, if known, is MTH of
    the leaves after the last complete chunk
    (:meth:`~consentkit.ledger.tree.TreeBuilder.tail_root` at this size); without it a proof
    that needs it reads the partial chunk's leaves. :func:`proof_reads` says what a given proof
    needs.

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

    With ``have_tail_root`` (the caller kept :meth:`~consentkit.ledger.tree.TreeBuilder.tail_root`
    for this size, e.g. with the checkpoint) a proof reads the leaves of at most one chunk;
    without it, a proof about a complete chunk also reads the partial chunk's leaves (fewer than
    ``2**chunk_bits``).
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
    return _is_hash(root) and root_from_inclusion(leaf_hash, index, size, proof) == root


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root ``proof`` leads to from leaf ``index`` (hash ``leaf_hash``) of a tree of ``size``
    leaves, as :func:`verify_inclusion` computes it; None for anything that is not such a proof."""
    if not (_is_count(index) and _is_count(size) and 0 <= index < size):
        return None
    if not (_is_hash(leaf_hash) and all(_is_hash(p) for p in proof)):
        return None
    fn, sn = index, size - 1
    r = leaf_hash
    sha = _sha256
    for p in proof:
        if sn == 0:
            return None  # more proof than tree
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
    return r if sn == 0 else None


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
