"""The ledger's Merkle tree on storage, once for both backends: chunk roots, checkpoints, proofs.

Leaf i of the tree is ``tree.leaf_hash(hash)`` of the record with seq i + 1. The roots of the
complete 256-leaf chunks are stored in ``consentkit_tree_chunks`` when a checkpoint is made, never
when a decision is written: appending stays what it was, and a checkpoint reads only the records
after the last stored chunk. A proof reads the stored chunk roots and the records of one chunk.

Nothing stored here is trusted by ``verify``: :func:`check_tree` recomputes every chunk root and
the root of every stored checkpoint from the records and reports the first one that differs.
:class:`ChunkHasher` is that computation, fed record hashes in seq order: by :func:`check_tree`
from the database, or by ``verify``'s worker processes from the rows they have just verified
(:mod:`consentkit.ledger.parallel`), so that a verification reads every record once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LedgerCorrupt, LedgerError
from .checkpoints import sign_checkpoint
from .keys import SigningKey
from .proofs import ChunkedTree, consistency_proof, inclusion_proof, proof_reads, root_from_inclusion
from .queries import Insert
from .records import utc_timestamp
from .transaction import Transaction
from .tree import (
    DEFAULT_CHUNK_BITS,
    TreeBuilder,
    TreeError,
    _fold,
    _root_of,
    leaf_hashes,
    subtree_roots,
)

if TYPE_CHECKING:
    from .base import Ledger

CHUNK_BITS = DEFAULT_CHUNK_BITS
CHUNK = 1 << CHUNK_BITS
_MASK = CHUNK - 1
_PAGE = 50_000  # hashes per read: constant memory on a large ledger
#: Records after the last stored chunk from which a checkpoint hashes them on every CPU (a
#: worker process costs a few hundred ms to start, the hashing about 1 µs a record).
PARALLEL_FROM = 200_000
# Chunks this process hashes while a worker starts (~100,000 records, measured ~0.5 s).
_HEAD_START = 400

INSERT_CHUNK = Insert(
    "INSERT INTO consentkit_tree_chunks (chunk, root)", 2, " ON CONFLICT (chunk) DO NOTHING"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO consentkit_checkpoints (size, root, tail_root, note, made_at) VALUES (?, ?, ?, ?, ?)"
)
_CHECKPOINT_COLUMNS = "SELECT size, root, tail_root, note FROM consentkit_checkpoints"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint the ledger made: its tree size and root, its partial chunk's root, its note."""

    size: int
    root: bytes
    tail_root: bytes | None
    note: str


def _stored(row: Any) -> StoredCheckpoint:
    tail = None if row[2] is None else bytes(row[2])
    return StoredCheckpoint(int(row[0]), bytes(row[1]), tail, str(row[3]))


async def hash_pages(
    ledger: Ledger, first_seq: int = 1, last_seq: int | None = None
) -> AsyncIterator[tuple[int, list[str]]]:
    """The ``hash`` of the records from ``first_seq`` to ``last_seq`` (default: the last one now),
    as pages ``(first seq, hashes)``. The next page is read while the caller hashes this one."""
    last = await records_through(ledger, first_seq, last_seq)
    # Only the hash column, by seq ranges: half the Python objects of (seq, hash) rows.
    sql = "SELECT hash FROM consentkit_ledger WHERE seq >= ? AND seq <= ? ORDER BY seq"

    def read(lo: int) -> asyncio.Future[list[Any]]:
        return asyncio.ensure_future(ledger._select(sql, (lo, min(lo + _PAGE - 1, last))))

    pending = read(first_seq) if first_seq <= last else None
    try:
        for lo in range(first_seq, last + 1, _PAGE):
            assert pending is not None
            page = await pending
            pending = read(lo + _PAGE) if lo + _PAGE <= last else None
            if len(page) != min(_PAGE, last - lo + 1):
                raise LedgerCorrupt(f"records are missing at or after seq {lo}: run consentkit verify")
            yield lo, [row[0] for row in page]
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def records_through(ledger: Ledger, first_seq: int, last_seq: int | None = None) -> int:
    """The seq of the last record to read from ``first_seq`` on: ``last_seq`` if given, else the
    last one now (LedgerCorrupt if records before ``first_seq`` are gone).

    Whether one is missing in between, the reads say (:func:`hash_pages` counts each page's
    rows): a ``count(*)`` here would make PostgreSQL without statistics scan the whole table.
    """
    if last_seq is not None:
        return last_seq
    last = await ledger.last_seq()
    if last < first_seq - 1:
        raise LedgerCorrupt(
            f"the ledger ends at seq {last}, before seq {first_seq - 1}: run consentkit verify"
        )
    return last


def _leaves(first_seq: int, hashes: list[str]) -> list[bytes]:
    try:
        return leaf_hashes(hashes)
    except TreeError:
        bad = next(i for i, hsh in enumerate(hashes, first_seq) if not _is_hash(hsh))
        raise LedgerCorrupt(f"record seq {bad} has a hash that is not 64 hex digits") from None


def _is_hash(text: str) -> bool:
    try:
        leaf_hashes([text])
    except TreeError:
        return False
    return True


class ChunkHasher:
    """The tree of records fed in seq order from the start of chunk ``first_chunk`` on.

    It keeps the roots of the complete chunks (``roots``), the leaves after them (``leaves``),
    and for each of ``sizes`` that ends inside a chunk it was fed, the root of that chunk's
    leaves up to that size (``partial_roots``): with the chunk roots before it, that is all the
    root of the tree of that size needs (:func:`roots_at`), so the leaves can go.
    """

    __slots__ = ("_sizes", "first_chunk", "leaves", "partial_roots", "roots")

    def __init__(self, first_chunk: int = 0, sizes: Iterable[int] = ()) -> None:
        self.first_chunk = first_chunk
        self.roots: list[bytes] = []
        self.leaves: list[bytes] = []
        self.partial_roots: dict[int, bytes] = {}
        start = first_chunk << CHUNK_BITS
        # Sizes still to reach, the smallest last (popped as the leaves go by).
        self._sizes = sorted({s for s in sizes if s > start and s & _MASK}, reverse=True)

    @property
    def next_seq(self) -> int:
        """The seq of the next record to feed."""
        return ((self.first_chunk + len(self.roots)) << CHUNK_BITS) + len(self.leaves) + 1

    def feed(self, first_seq: int, hashes: list[str]) -> None:
        """Append the records ``first_seq ..`` by their ``hash`` (hex); complete chunks are hashed."""
        if first_seq != self.next_seq:
            raise LedgerCorrupt(f"records are missing before seq {first_seq}: run consentkit verify")
        self.leaves.extend(_leaves(first_seq, hashes))
        whole = len(self.leaves) & ~_MASK
        if whole:
            base = (self.first_chunk + len(self.roots)) << CHUNK_BITS
            self._take_partial_roots(base, base + whole)
            self.roots.extend(subtree_roots(self.leaves[:whole], CHUNK_BITS))
            del self.leaves[:whole]

    def finish(self) -> ChunkHasher:
        """Take the partial roots of the sizes that end among the leaves after the last chunk."""
        base = (self.first_chunk + len(self.roots)) << CHUNK_BITS
        self._take_partial_roots(base, base + len(self.leaves) + 1)
        return self

    def _take_partial_roots(self, base: int, end: int) -> None:
        # ``self.leaves`` starts at leaf index ``base``, a chunk boundary; a size s < end ends
        # inside the chunk that starts at s & ~_MASK.
        sizes = self._sizes
        while sizes and sizes[-1] < end:
            size = sizes.pop()
            self.partial_roots[size] = _root_of(self.leaves[(size & ~_MASK) - base : size - base])


async def stored_chunk_roots(ledger: Ledger, limit: int | None = None) -> list[bytes]:
    """The stored chunk roots from chunk 0 on, as far as they go without a gap (``limit`` at most)."""
    sql = "SELECT chunk, root FROM consentkit_tree_chunks"
    params: tuple[Any, ...] = ()
    if limit is not None:
        sql, params = sql + " WHERE chunk < ?", (limit,)
    rows = await ledger._select(sql + " ORDER BY chunk", params)
    # Chunk numbers are unique and sorted: from 0 to len - 1 means no gap (every proof reads
    # thousands of them, so no per-row check unless there is a gap to find).
    if not rows or (rows[0][0] == 0 and rows[-1][0] == len(rows) - 1):
        return [bytes(row[1]) for row in rows]
    roots: list[bytes] = []
    for chunk, root in rows:
        if chunk != len(roots):
            break
        roots.append(bytes(root))
    return roots


async def make_checkpoint(ledger: Ledger, signing_key: str | SigningKey, origin: str) -> str:
    """Fill the chunk roots after the last stored one, sign the tree of every record, store both."""
    roots = await stored_chunk_roots(ledger)
    first_new = len(roots)
    hashed = await hash_records(ledger, first_new)
    new_roots = hashed.roots
    builder = TreeBuilder.from_chunks([*roots, *new_roots], hashed.leaves, chunk_bits=CHUNK_BITS)
    root, size = builder.root(), builder.size
    note = sign_checkpoint(origin, size, root, signing_key)
    tail_root = builder.tail_root(CHUNK_BITS)

    async def store(tx: Transaction) -> None:
        await tx.insert(INSERT_CHUNK, [(first_new + i, r) for i, r in enumerate(new_roots)])
        await tx.execute(_INSERT_CHECKPOINT, (size, root, tail_root, note, utc_timestamp()))

    await ledger._write(store)
    return note


async def hash_records(ledger: Ledger, first_chunk: int, jobs: int | None = None) -> ChunkHasher:
    """The tree of the records from chunk ``first_chunk`` to the last record now, hashed.

    Hundreds of thousands of records (a first checkpoint) are shared out: worker processes hash
    whole chunks from the start (:func:`consentkit.ledger.parallel.hash_chunks`) while this one
    hashes the last share and the partial chunk; one process cannot read and hash a million
    records in the time asked of a checkpoint.
    """
    first_seq = (first_chunk << CHUNK_BITS) + 1
    last = await records_through(ledger, first_seq)
    jobs = jobs or os.cpu_count() or 1
    whole = (last >> CHUNK_BITS) - first_chunk
    if jobs < 2 or whole < 2 or last - first_seq + 1 < PARALLEL_FROM:
        return await feed_from_db(ledger, ChunkHasher(first_chunk), last)
    from .parallel import hash_chunks  # worker processes: only for a large tree

    # A worker starts half a second later (a new interpreter): it takes a smaller share, from
    # the first chunk on; this process hashes what is left, the partial chunk included.
    jobs = min(jobs, whole)
    step = max(1, (whole - _HEAD_START) // jobs)
    bounds = [(first_chunk + k * step, first_chunk + (k + 1) * step) for k in range(jobs - 1)]
    mine = ChunkHasher(bounds[-1][1])
    parts = await hash_chunks(ledger.url, bounds, feed_from_db(ledger, mine, last))
    result = ChunkHasher(first_chunk)
    for part in parts:
        result.roots.extend(part)
    result.roots.extend(mine.roots)
    result.leaves = mine.leaves
    return result


async def feed_from_db(ledger: Ledger, hasher: ChunkHasher, last_seq: int | None = None) -> ChunkHasher:
    """Feed ``hasher`` the records from its next seq to ``last_seq`` (default: the last one now),
    read from the database; then :meth:`ChunkHasher.finish`."""
    async for first, hashes in hash_pages(ledger, hasher.next_seq, last_seq):
        hasher.feed(first, hashes)
    return hasher.finish()


async def latest_checkpoint(ledger: Ledger) -> StoredCheckpoint | None:
    """The last checkpoint the ledger made, if any."""
    rows = await ledger._select(_CHECKPOINT_COLUMNS + " ORDER BY id DESC LIMIT 1")
    return _stored(rows[0]) if rows else None


async def checkpoint_of_size(ledger: Ledger, size: int) -> StoredCheckpoint | None:
    """The last checkpoint the ledger made of a tree of ``size`` records, if any."""
    rows = await ledger._select(_CHECKPOINT_COLUMNS + " WHERE size = ? ORDER BY id DESC LIMIT 1", (size,))
    return _stored(rows[0]) if rows else None


async def stored_checkpoints(ledger: Ledger) -> list[StoredCheckpoint]:
    """Every checkpoint the ledger made, oldest first."""
    return [_stored(row) for row in await ledger._select(_CHECKPOINT_COLUMNS + " ORDER BY id")]


async def _chunked_tree(
    ledger: Ledger,
    size: int,
    *,
    index: int | None = None,
    old_size: int | None = None,
    made: StoredCheckpoint | None = None,
) -> tuple[ChunkedTree, dict[int, str], StoredCheckpoint | None]:
    """The tree of ``size`` records as a proof needs it: stored chunk roots and one chunk's leaves.
    ``made``: the checkpoint of that size, when the caller has it already."""
    if made is None:
        made = await checkpoint_of_size(ledger, size)
    tail_root = made.tail_root if made else None
    reads = proof_reads(size, index=index, old_size=old_size, have_tail_root=tail_root is not None)
    # The chunk roots and the records of the chunks are read together, each on its connection.
    roots, chunks = await asyncio.gather(
        stored_chunk_roots(ledger, len(reads.chunk_roots)),
        asyncio.gather(*(_chunk_hashes(ledger, wanted) for wanted in reads.leaf_ranges)),
    )
    if len(roots) < len(reads.chunk_roots):
        raise LedgerError(
            f"the tree of {size} records is not stored yet: make a checkpoint first (consentkit checkpoint)"
        )
    leaves: dict[int, list[bytes]] = {}
    hashes: dict[int, str] = {}
    for chunk, wanted, got in zip(reads.leaf_chunks, reads.leaf_ranges, chunks, strict=True):
        leaves[chunk] = _leaves(wanted.start + 1, got)
        hashes.update(zip(range(wanted.start + 1, wanted.stop + 1), got, strict=True))
    return ChunkedTree(size, roots, leaves, chunk_bits=CHUNK_BITS, tail_root=tail_root), hashes, made


async def _chunk_hashes(ledger: Ledger, wanted: range) -> list[str]:
    """The ``hash`` of the records of leaf indexes ``wanted`` (seq = index + 1), all of them."""
    rows = await ledger._select(
        "SELECT seq, hash FROM consentkit_ledger WHERE seq >= ? AND seq <= ? ORDER BY seq",
        (wanted.start + 1, wanted.stop),
    )
    if [int(row[0]) for row in rows] != [i + 1 for i in wanted]:
        raise LedgerCorrupt(
            f"records of seq {wanted.start + 1}..{wanted.stop} are missing: run consentkit verify"
        )
    return [str(row[1]) for row in rows]


async def prove_inclusion(ledger: Ledger, seq: int, size: int | None = None) -> dict[str, Any]:
    """The inclusion proof of record ``seq`` in the tree of ``size`` records (default: the latest
    checkpoint's), as the JSON object ``consentkit proof`` prints."""
    latest = None
    if size is None:
        latest = await latest_checkpoint(ledger)
        if latest is None:
            raise LedgerError("the ledger has no checkpoint yet: make one first (consentkit checkpoint)")
        size = latest.size
    if not 1 <= seq <= size:
        raise LedgerError(f"seq {seq} is not in the tree of the first {size} records")
    tree, hashes, made = await _chunked_tree(ledger, size, index=seq - 1, made=latest)
    path = inclusion_proof(seq - 1, size, tree)
    # The root the path leads to from the leaf is the tree's root (the path is made of its
    # subtrees): a few dozen hashes, where folding every chunk root takes thousands.
    root = root_from_inclusion(tree.subtree_hash(seq - 1, seq), seq - 1, size, path)
    assert root is not None  # a path made for this index and size has the right shape
    if made is not None and made.root != root:
        raise LedgerCorrupt(
            f"the first {size} records no longer match the ledger's checkpoint of that size: "
            "run consentkit verify"
        )
    return {
        "seq": seq,
        "leaf_index": seq - 1,
        "record_hash": hashes[seq],
        "tree_size": size,
        "root_hash": root.hex(),
        "inclusion": [node.hex() for node in path],
        "checkpoint": made.note if made else None,
    }


async def prove_consistency(ledger: Ledger, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof from the tree of ``old_size`` records to the one of ``new_size``."""
    if not 0 < old_size <= new_size:
        raise LedgerError(f"no consistency proof from {old_size} to {new_size} records")
    tree, _, _ = await _chunked_tree(ledger, new_size, old_size=old_size)
    return consistency_proof(old_size, new_size, tree)


@dataclass
class TreeCheck:
    """What :func:`check_tree` found: the records' count, the roots at the sizes asked for, and
    the first stored chunk root or checkpoint that differs from the records (if any)."""

    records: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)
    bad_seq: int | None = None
    problem: str | None = None

    def fail(self, seq: int | None, problem: str) -> None:
        """Keep the first problem found."""
        if self.problem is None:
            self.bad_seq, self.problem = seq, problem


async def check_tree(
    ledger: Ledger, sizes: Iterable[int] = (), computed: ChunkHasher | None = None
) -> TreeCheck:
    """Recompute the tree from the records: every stored chunk root and stored checkpoint root
    must match, and the roots at ``sizes`` (and the stored checkpoints' sizes) are returned.

    ``computed`` is the tree of the first records as ``verify``'s workers computed it from the
    rows they verified (from chunk 0, :meth:`ChunkHasher.finish` called); only the records after
    it (appended since) are read here, and fed to it. Without it, every record's hash is read.
    """
    stored = await stored_chunk_roots(ledger)
    made = await stored_checkpoints(ledger)
    wanted = sorted({*sizes, *(c.size for c in made)})
    hasher = ChunkHasher(0, wanted) if computed is None else computed
    if hasher.first_chunk != 0:
        raise LedgerError("check_tree needs the tree from the first record on")
    await feed_from_db(ledger, hasher)
    result = TreeCheck(records=hasher.next_seq - 1)
    for chunk, (kept, root) in enumerate(zip(stored, hasher.roots, strict=False)):
        if kept != root:
            first = chunk * CHUNK + 1
            result.fail(
                first,
                f"the stored tree chunk of seq {first}..{first + CHUNK - 1} does not match "
                "those records (one of them was altered after the chunk was stored)",
            )
            break
    if len(stored) > len(hasher.roots):
        result.fail(
            result.records + 1,
            f"the ledger has {result.records} records but its stored tree "
            f"chunks cover {len(stored) * CHUNK} (records were removed)",
        )
    result.roots = await roots_at(ledger, hasher, [size for size in wanted if size <= result.records])
    for cp in made:
        if cp.size > result.records:
            result.fail(
                result.records + 1,
                f"the ledger has {result.records} records but its own "
                f"checkpoint covers {cp.size} (records were removed)",
            )
        elif result.roots[cp.size] != cp.root:
            result.fail(
                None,
                f"the first {cp.size} records do not match the ledger's own checkpoint "
                "of that size (a record was altered, removed or reordered)",
            )
    return result


async def roots_at(ledger: Ledger, hasher: ChunkHasher, sizes: Sequence[int]) -> dict[int, bytes]:
    """The roots of the trees of the first ``size`` records, for each of ``sizes`` (at most the
    records ``hasher`` was fed from chunk 0): its chunk roots, and the partial chunk's root it
    kept (or, for a size it was not told about, read here).

    A tree of whole chunks and a partial one is the chunks' compact range with the partial
    chunk's root as its last, smallest subtree (see :class:`~consentkit.ledger.proofs.ChunkedTree`).
    """
    builder = TreeBuilder()
    roots: dict[int, bytes] = {}
    for size in sorted(sizes):
        while builder.size >> CHUNK_BITS < size >> CHUNK_BITS:
            builder.append_subtree(hasher.roots[builder.size >> CHUNK_BITS], CHUNK_BITS)
        stack = builder.compact_range()
        if size & _MASK:
            partial = hasher.partial_roots.get(size)
            if partial is None:
                partial = _root_of(await _read_leaves(ledger, size & ~_MASK, size))
            stack.append(partial)
        roots[size] = _fold(stack)
    return roots


async def _read_leaves(ledger: Ledger, start: int, end: int) -> list[bytes]:
    """The leaf hashes of leaf indexes ``start .. end - 1`` (seq ``start + 1 .. end``)."""
    leaves: list[bytes] = []
    async for first, hashes in hash_pages(ledger, start + 1, end):
        leaves.extend(_leaves(first, hashes))
    return leaves
