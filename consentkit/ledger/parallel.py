"""Verifying a large ledger on every core.

Each record's hash can be recomputed from the record alone (it carries its ``prev_hash``), so
the chain splits into ``seq`` ranges that worker processes check independently; the parent
then checks the links between consecutive ranges: the first ``prev_hash`` of each range is the
last hash of the range before, nothing is missing at a boundary, and time never goes back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from . import RecordFilter, open_ledger
from .records import GENESIS_HASH
from .verify import ChainVerifier, VerifyReport

# Below this many records, one process is quicker than starting workers.
PARALLEL_FROM = 200_000


@dataclass(frozen=True, slots=True)
class RangeResult:
    """What one worker found in ``first..last``."""

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


def _verify_range(url: str, first: int, last: int) -> RangeResult:
    async def run() -> RangeResult:
        ledger = open_ledger(url, create=False)
        verifier = ChainVerifier(first_seq=first, head=GENESIS_HASH if first == 1 else None)
        try:
            await ledger.feed_verifier(verifier, RecordFilter(first_seq=first, last_seq=last))
        finally:
            await ledger.close()
        return RangeResult(
            first, last, verifier.count, verifier.erased, verifier.first_prev, verifier.first_time,
            verifier.head, verifier.last_time, verifier.next_seq, verifier.bad_seq, verifier.problem,
        )  # fmt: skip

    return asyncio.run(run())


def verify_parallel(url: str, jobs: int | None = None) -> VerifyReport:
    """Verify the ledger at ``url`` with ``jobs`` processes (default: one per CPU)."""
    jobs = jobs or os.cpu_count() or 1

    async def size() -> int:
        ledger = open_ledger(url, create=False)
        try:
            return await ledger.last_seq()
        finally:
            await ledger.close()

    total = asyncio.run(size())
    if jobs < 2 or total < PARALLEL_FROM:
        return _verify_range_report(_verify_range(url, 1, max(total, 1)))
    step = -(-total // (jobs * 4))  # several ranges per worker, so that none waits for the slowest
    bounds = [(lo, min(lo + step - 1, total)) for lo in range(1, total + 1, step)]
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        results = list(pool.map(_verify_range, [url] * len(bounds), *zip(*bounds, strict=True)))
    return combine(results)


def _verify_range_report(r: RangeResult) -> VerifyReport:
    if r.problem is None and r.next_seq <= r.last and r.count:
        return VerifyReport(
            False, r.count, r.last_hash, r.next_seq, f"records {r.next_seq}..{r.last} are missing"
        )
    return VerifyReport(r.problem is None, r.count, r.last_hash, r.bad_seq, r.problem, r.erased)


def combine(results: list[RangeResult]) -> VerifyReport:
    """Join the ranges' findings, in order, into one report with the first bad ``seq``."""
    count = erased = 0
    head, last_time = GENESIS_HASH, ""
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
    return VerifyReport(True, count, head, None, None, erased)
