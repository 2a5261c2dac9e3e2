"""Verifying a large ledger on every core, and hashing its Merkle tree on every core.

Each record's hash can be recomputed from the record alone (it carries its ``prev_hash``), so
the chain splits into ``seq`` ranges that worker processes check independently; the parent
then checks the links between consecutive ranges: the first ``prev_hash`` of each range is the
last hash of the range before, nothing is missing at a boundary, and time never goes back.

The ranges start on chunk boundaries of the Merkle tree (:mod:`consentkit.ledger.treestore`), so
the same workers also hash the tree's chunks from the rows they have just verified
(:func:`verify_with_tree`): ``verify`` then checks the stored chunk roots and checkpoints
without reading every record a second time. A first checkpoint of a large ledger hashes its
chunks in worker processes too (:func:`hash_chunks`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Coroutine, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import RecordFilter, open_ledger
from .records import GENESIS_HASH, RecordRow
from .tree import HASH_SIZE
from .treestore import CHUNK, CHUNK_BITS, ChunkHasher, feed_from_db, stored_checkpoints, stored_chunk_roots
from .verify import ChainVerifier, VerifyReport

if TYPE_CHECKING:
    from .base import Ledger

# Below this many records, one process is quicker than starting workers.
PARALLEL_FROM = 200_000

_HASH = RecordRow._fields.index("hash")


@dataclass(frozen=True, slots=True)
class RangeResult:
    """What one worker found in ``first..last``; with the tree asked for, the roots of its
    complete chunks, the leaves after them, and the partial chunk roots at the sizes asked for
    (see :class:`~consentkit.ledger.treestore.ChunkHasher`), hashes joined into one ``bytes``."""

    first: int
    last: int
    count: int
    erased: int
    first_prev: str | None
    first_time: str | None
    last_hash: str
    last_time: str
    next_seq: int
    bad_seq: int | None
    problem: str | None
    chunk_roots: bytes = b""
    tail: bytes = b""
    partial_roots: dict[int, bytes] = field(default_factory=dict)
    groups: dict[tuple[Any, ...], int] = field(default_factory=dict)  # ChainVerifier.groups


def _verify_range(url: str, first: int, last: int, sizes: tuple[int, ...] | None = None) -> RangeResult:
    async def run() -> RangeResult:
        ledger = open_ledger(url, create=False)
        verifier = ChainVerifier(first_seq=first, head=GENESIS_HASH if first == 1 else None)
        hasher = None if sizes is None else ChunkHasher((first - 1) >> CHUNK_BITS, sizes)
        try:
            await _feed(ledger, verifier, hasher, RecordFilter(first_seq=first, last_seq=last))
        finally:
            await ledger.close()
        tree = ChunkHasher() if hasher is None or verifier.problem is not None else hasher
        return RangeResult(
            first, last, verifier.count, verifier.erased, verifier.first_prev, verifier.first_time,
            verifier.head, verifier.last_time, verifier.next_seq, verifier.bad_seq, verifier.problem,
            b"".join(tree.roots), b"".join(tree.leaves), tree.partial_roots, verifier.groups,
        )  # fmt: skip

    return asyncio.run(run())


async def _feed(
    ledger: Ledger, verifier: ChainVerifier, hasher: ChunkHasher | None, flt: RecordFilter
) -> None:
    """The range's rows to the chain verifier, and the hashes of those that verified to the tree:
    the tree is computed from what was checked, on rows already read."""
    if hasher is None:
        await ledger.feed_verifier(verifier, flt)
        return
    async for rows in ledger._pages(flt, with_salts=True):
        first = verifier.next_seq
        if not verifier.feed_rows(rows):
            return
        hasher.feed(first, [row[_HASH] for row in rows])
    hasher.finish()


def verify_parallel(url: str, jobs: int | None = None) -> VerifyReport:
    """Verify the ledger at ``url`` with ``jobs`` processes (default: one per CPU)."""
    return _verify(url, jobs, None)[0]


def verify_with_tree(
    url: str, jobs: int | None = None, sizes: Iterable[int] = ()
) -> tuple[VerifyReport, ChunkHasher | None]:
    """Verify the chain as :func:`verify_parallel` does, and compute the Merkle tree from the
    records it verified: chunk roots, and partial chunk roots at ``sizes`` and at the stored
    checkpoints' sizes, for :func:`~consentkit.ledger.treestore.check_tree`.

    The tree is None when the chain did not verify, or when there is nothing to check it
    against (no ``sizes``, no stored chunk root or checkpoint): hashing costs the workers time.
    """
    return _verify(url, jobs, tuple(sizes))


def _verify(
    url: str, jobs: int | None, sizes: tuple[int, ...] | None
) -> tuple[VerifyReport, ChunkHasher | None]:
    """``sizes`` None: the chain only; else the tree too, if there is one to check."""
    jobs = jobs or os.cpu_count() or 1
    total, sizes = asyncio.run(_extent(url, sizes))
    if jobs < 2 or total < PARALLEL_FROM:
        one = _verify_range(url, 1, max(total, 1), sizes)
        report, results = _verify_range_report(one), [one]
    else:
        # Several ranges per worker, so that none waits for the slowest; each starts a chunk.
        # (This process does not take ranges itself: a worker that has taken one cannot give
        # it back, so it would wait at the end for up to two ranges; measured no quicker.)
        chunks = -(-total // CHUNK)
        step = -(-chunks // (jobs * 4)) * CHUNK
        bounds = [(lo, min(lo + step - 1, total)) for lo in range(1, total + 1, step)]
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            firsts, lasts = zip(*bounds, strict=True)
            results = list(pool.map(_verify_range, [url] * len(bounds), firsts, lasts, [sizes] * len(bounds)))
        report = combine(results)
    return report, (_tree(results) if sizes is not None and report.ok else None)


async def _extent(url: str, sizes: tuple[int, ...] | None) -> tuple[int, tuple[int, ...] | None]:
    """The last seq, and the sizes to hash the tree for: ``sizes`` and the stored checkpoints'
    (None: no tree, when none is asked for, or none is stored and ``sizes`` is empty)."""
    ledger = open_ledger(url, create=False)
    try:
        if sizes is not None:
            # Read before the last seq: whatever was stored then covers no record after it.
            made = await stored_checkpoints(ledger)
            if made or sizes or await stored_chunk_roots(ledger, 1):
                sizes = (*sizes, *sorted({cp.size for cp in made}))
            else:
                sizes = None
        return await ledger.last_seq(), sizes
    finally:
        await ledger.close()


def _tree(results: list[RangeResult]) -> ChunkHasher:
    """The tree of every record, from the ranges' parts (in order, the chain verified)."""
    tree = ChunkHasher()
    for r in results:
        tree.roots.extend(_hashes(r.chunk_roots))
        tree.partial_roots.update(r.partial_roots)
    tree.leaves = _hashes(results[-1].tail)
    return tree


def _hashes(joined: bytes) -> list[bytes]:
    return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]


def _verify_range_report(r: RangeResult) -> VerifyReport:
    if r.problem is None and r.next_seq <= r.last and r.count:
        return VerifyReport(
            False, r.count, r.last_hash, r.next_seq, f"records {r.next_seq}..{r.last} are missing"
        )
    return VerifyReport(r.problem is None, r.count, r.last_hash, r.bad_seq, r.problem, r.erased, r.groups)


def combine(results: list[RangeResult]) -> VerifyReport:
    """Join the ranges' findings, in order, into one report with the first bad ``seq``."""
    count = erased = 0
    head, last_time = GENESIS_HASH, ""
    groups: dict[tuple[Any, ...], int] = {}
    for r in results:
        if r.count and r.first_prev != head:
            problem = "prev_hash does not match the previous record's hash (a record was removed or altered)"
            return VerifyReport(False, count, head, r.first, problem, erased)
        if r.first_time is not None and r.first_time < last_time:
            problem = f"recorded_at {r.first_time} is earlier than the previous record's {last_time}"
            return VerifyReport(False, count, head, r.first, problem, erased)
        if r.problem is not None:
            return VerifyReport(False, count + r.count, r.last_hash, r.bad_seq, r.problem, erased + r.erased)
        if r.next_seq <= r.last:
            return VerifyReport(
                False,
                count + r.count,
                r.last_hash,
                r.next_seq,
                f"records {r.next_seq}..{r.last} are missing",
                erased,
            )
        count += r.count
        erased += r.erased
        head, last_time = r.last_hash, r.last_time
        for group, n in r.groups.items():
            groups[group] = groups.get(group, 0) + n
    return VerifyReport(True, count, head, None, None, erased, groups)


# --- a first checkpoint's chunk roots ----------------------------------------------------------


async def hash_chunks(
    url: str, ranges: list[tuple[int, int]], meanwhile: Coroutine[Any, Any, object]
) -> list[list[bytes]]:
    """The roots of chunks ``lo .. hi - 1`` for each ``(lo, hi)`` of ``ranges``, each range hashed
    from the records by a worker process while ``meanwhile`` runs here."""
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("spawn"))
    futures: list[asyncio.Future[bytes]] = []
    try:
        futures.extend(loop.run_in_executor(pool, _hash_chunk_range, url, lo, hi) for lo, hi in ranges)
        await meanwhile
        parts = await asyncio.gather(*futures)
    except BaseException:
        meanwhile.close()  # never started if a worker could not be
        for future in futures:
            future.cancel()
        raise
    finally:
        # The workers are done (or cancelled): joining them does not hold up the event loop.
        await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
    return [_hashes(part) for part in parts]


def _hash_chunk_range(url: str, lo: int, hi: int) -> bytes:
    async def run() -> bytes:
        ledger = open_ledger(url, create=False)
        try:
            hasher = await feed_from_db(ledger, ChunkHasher(lo), hi << CHUNK_BITS)
        finally:
            await ledger.close()
        return b"".join(hasher.roots)

    return asyncio.run(run())
