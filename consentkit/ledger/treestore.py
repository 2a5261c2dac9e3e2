"""The ledger's Merkle tree on storage, once for both backends: chunk roots, checkpoints, proofs.

Leaf i of the tree is ``tree.leaf_hash(hash)`` of the record with seq i + 1. The roots of the
complete 256-leaf chunks are stored in ``consentkit_tree_chunks`` when a checkpoint is made, never
when a decision is written: appending stays what it was, and a checkpoint reads only the records
after the last stored chunk. A proof reads the stored chunk roots and the records of one chunk.

Nothing stored here is trusted by ``verify``: :func:`check_tree` recomputes every chunk root and
the root of every stored checkpoint from the records and reports the first one that differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LedgerCorrupt, LedgerError
from .checkpoints import sign_checkpoint
from .keys import SigningKey
from .proofs import ChunkedTree, consistency_proof, inclusion_proof, proof_reads
from .queries import Insert
from .records import utc_timestamp
from .transaction import Transaction
from .tree import DEFAULT_CHUNK_BITS, EMPTY_ROOT, HASH_SIZE, TreeBuilder, TreeError, leaf_hashes

if TYPE_CHECKING:
    from .base import Ledger

CHUNK_BITS = DEFAULT_CHUNK_BITS
CHUNK = 1 << CHUNK_BITS
_PAGE = 50_000  # (seq, hash) rows per read: constant memory on a large ledger

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


async def hash_pages(ledger: Ledger, first_seq: int = 1) -> AsyncIterator[tuple[int, list[str]]]:
    """The ``hash`` of the records from ``first_seq`` to the last one now, as pages
    ``(first seq, hashes)``. The next page is read while the caller hashes this one."""
    rows = await ledger._select(
        "SELECT coalesce(max(seq), 0), count(*) FROM consentkit_ledger WHERE seq >= ?", (first_seq,)
    )
    last, count = int(rows[0][0]), int(rows[0][1])
    if count != max(last - first_seq + 1, 0):
        raise LedgerCorrupt(f"records are missing after seq {first_seq - 1}: run consentkit verify")
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


def _leaves(first_seq: int, hashes: list[str]) -> list[bytes]:
    # A million leaves per first checkpoint: checks and hashes as whole-list passes, and the
    # per-item checks of ``tree.leaf_hashes`` only to name a bad hash.
    try:
        raws = list(map(bytes.fromhex, hashes))
        if set(map(len, raws)) <= {HASH_SIZE} and set(map(len, hashes)) <= {2 * HASH_SIZE}:
            sha = hashlib.sha256
            return [sha(b"\x00" + raw).digest() for raw in raws]
    except (TypeError, ValueError):
        pass
    try:
        return leaf_hashes(hashes)
    except TreeError:
        bad = next(i for i, hsh in enumerate(hashes, first_seq) if len(hsh) != 64 or not _is_hex(hsh))
        raise LedgerCorrupt(f"record seq {bad} has a hash that is not 64 hex digits") from None


def _chunk_root(leaves: list[bytes]) -> bytes:
    """MTH of one complete chunk (a perfect tree): level by level, the quickest way in Python."""
    sha = hashlib.sha256
    nodes = leaves
    while len(nodes) > 1:
        pairs = iter(nodes)
        nodes = [sha(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
    return nodes[0]


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


async def stored_chunk_roots(ledger: Ledger, limit: int | None = None) -> list[bytes]:
    """The stored chunk roots from chunk 0 on, as far as they go without a gap (``limit`` at most)."""
    sql = "SELECT chunk, root FROM consentkit_tree_chunks"
    params: tuple[Any, ...] = ()
    if limit is not None:
        sql, params = sql + " WHERE chunk < ?", (limit,)
    rows = await ledger._select(sql + " ORDER BY chunk", params)
    roots: list[bytes] = []
    for chunk, root in rows:
        if chunk != len(roots):
            break
        roots.append(bytes(root))
    return roots


async def make_checkpoint(ledger: Ledger, signing_key: str | SigningKey, origin: str) -> str:
    """Fill the chunk roots after the last stored one, sign the tree of every record, store both."""
    roots = await stored_chunk_roots(ledger)
    start = len(roots) * CHUNK
    new_roots: list[bytes] = []
    pending: list[bytes] = []
    async for first, hashes in hash_pages(ledger, start + 1):
        pending.extend(_leaves(first, hashes))
        whole = len(pending) - len(pending) % CHUNK
        new_roots.extend(_chunk_root(pending[i : i + CHUNK]) for i in range(0, whole, CHUNK))
        pending = pending[whole:]
    builder = TreeBuilder.from_chunks([*roots, *new_roots], pending, chunk_bits=CHUNK_BITS)
    root, size = builder.root(), builder.size
    note = sign_checkpoint(origin, size, root, signing_key)
    first_new = len(roots)
    tail_root = builder.tail_root(CHUNK_BITS)

    async def store(tx: Transaction) -> None:
        await tx.insert(INSERT_CHUNK, [(first_new + i, r) for i, r in enumerate(new_roots)])
        await tx.execute(_INSERT_CHECKPOINT, (size, root, tail_root, note, utc_timestamp()))

    await ledger._write(store)
    return note


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
    ledger: Ledger, size: int, *, index: int | None = None, old_size: int | None = None
) -> tuple[ChunkedTree, dict[int, str], StoredCheckpoint | None]:
    """The tree of ``size`` records as a proof needs it: stored chunk roots and one chunk's leaves."""
    made = await checkpoint_of_size(ledger, size)
    tail_root = made.tail_root if made else None
    reads = proof_reads(size, index=index, old_size=old_size, have_tail_root=tail_root is not None)
    roots = await stored_chunk_roots(ledger, len(reads.chunk_roots))
    if len(roots) < len(reads.chunk_roots):
        raise LedgerError(
            f"the tree of {size} records is not stored yet: make a checkpoint first (consentkit checkpoint)"
        )
    leaves: dict[int, list[bytes]] = {}
    hashes: dict[int, str] = {}
    for chunk, wanted in zip(reads.leaf_chunks, reads.leaf_ranges, strict=True):
        rows = await ledger._select(
            "SELECT seq, hash FROM consentkit_ledger WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (wanted.start + 1, wanted.stop),
        )
        got = [(int(seq), str(hsh)) for seq, hsh in rows]
        if [seq for seq, _ in got] != [i + 1 for i in wanted]:
            raise LedgerCorrupt(
                f"records of seq {wanted.start + 1}..{wanted.stop} are missing: run consentkit verify"
            )
        leaves[chunk] = _leaves(wanted.start + 1, [hsh for _, hsh in got])
        hashes.update(got)
    return ChunkedTree(size, roots, leaves, chunk_bits=CHUNK_BITS, tail_root=tail_root), hashes, made


async def prove_inclusion(ledger: Ledger, seq: int, size: int | None = None) -> dict[str, Any]:
    """The inclusion proof of record ``seq`` in the tree of ``size`` records (default: the latest
    checkpoint's), as the JSON object ``consentkit proof`` prints."""
    if size is None:
        latest = await latest_checkpoint(ledger)
        if latest is None:
            raise LedgerError("the ledger has no checkpoint yet: make one first (consentkit checkpoint)")
        size = latest.size
    if not 1 <= seq <= size:
        raise LedgerError(f"seq {seq} is not in the tree of the first {size} records")
    tree, hashes, made = await _chunked_tree(ledger, size, index=seq - 1)
    path = inclusion_proof(seq - 1, size, tree)
    root = tree.root()
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


async def check_tree(ledger: Ledger, sizes: Iterable[int] = ()) -> TreeCheck:
    """Recompute the tree from the records: every stored chunk root and stored checkpoint root
    must match, and the roots at ``sizes`` (and the stored checkpoints' sizes) are returned."""
    stored = await stored_chunk_roots(ledger)
    made = await stored_checkpoints(ledger)
    wanted = sorted({*sizes, *(c.size for c in made)})
    result = TreeCheck()
    if wanted and wanted[0] == 0:
        result.roots[0] = EMPTY_ROOT
    builder = TreeBuilder()
    pending: list[bytes] = []
    chunk = 0
    ahead = [size for size in wanted if size > 0]  # sizes not reached yet, smallest first
    ahead.reverse()

    def take(leaves: list[bytes]) -> None:
        # Roots at sizes inside this run of leaves, before the builder moves past them.
        base = builder.size
        while ahead and ahead[-1] <= base + len(leaves):
            size = ahead.pop()
            partial = builder.copy()
            partial.extend(leaves[: size - base])
            result.roots[size] = partial.root()

    async for first, hashes in hash_pages(ledger):
        pending.extend(_leaves(first, hashes))
        whole = len(pending) - len(pending) % CHUNK
        for i in range(0, whole, CHUNK):
            leaves = pending[i : i + CHUNK]
            take(leaves)
            root = _chunk_root(leaves)
            if chunk < len(stored) and stored[chunk] != root:
                first = chunk * CHUNK + 1
                result.fail(
                    first,
                    f"the stored tree chunk of seq {first}..{first + CHUNK - 1} does not match "
                    "those records (one of them was altered after the chunk was stored)",
                )
            builder.append_subtree(root, CHUNK_BITS)
            chunk += 1
        pending = pending[whole:]
    take(pending)
    result.records = builder.size + len(pending)
    if len(stored) > chunk:
        result.fail(
            result.records + 1,
            f"the ledger has {result.records} records but its stored tree "
            f"chunks cover {len(stored) * CHUNK} (records were removed)",
        )
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
