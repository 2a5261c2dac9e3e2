"""Checkpoints and proofs on a real ledger (``benchmarks/make_ledger.py``), through the Ledger API.

    python benchmarks/make_ledger.py --records 1000000 --ledger sqlite:///big.db
    python benchmarks/checkpoint.py --ledger sqlite:///big.db [--proofs 50] [--grow 100]

Run it on a copy: it stores chunk roots and checkpoints in the ledger. What is timed: the first
checkpoint (fills every chunk root from the records), a checkpoint after ``--grow`` more records
(reads only the records after the last stored chunk), and inclusion proofs of random records
against it (each reads the stored chunk roots and one chunk of records), each checked.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from consentkit.ledger import NewRecord, open_ledger
from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import verify_inclusion
from consentkit.ledger.tree import leaf_hash

ORIGIN = "consentkit/bench.example"


def entry(i: int) -> NewRecord:
    return NewRecord(
        subject_id=f"bench-{i}",
        action="accept_all",
        purposes={"necessary": True},
        method="banner",
        policy_revision=1,
        policy_version="bench",
        policy_digest="b" * 64,
        locale="en",
    )


async def main(url: str, proofs: int, grow: int) -> None:
    private, verifier = generate_key(ORIGIN)
    ledger = open_ledger(url, create=False)
    try:
        start = time.perf_counter()
        first = parse_checkpoint(await ledger.checkpoint(private, ORIGIN), verifier)
        print(f"first checkpoint of {first.size} records: {time.perf_counter() - start:.3f} s")
        await asyncio.gather(*(ledger.append(entry(i)) for i in range(grow)))
        start = time.perf_counter()
        second = parse_checkpoint(await ledger.checkpoint(private, ORIGIN), verifier)
        print(
            f"next checkpoint (+{second.size - first.size} records): {(time.perf_counter() - start) * 1000:.1f} ms"
        )
        times = []
        for seq in random.sample(range(1, second.size + 1), proofs):
            start = time.perf_counter()
            got = await ledger.inclusion_proof(seq)
            times.append(time.perf_counter() - start)
            path = [bytes.fromhex(h) for h in got["inclusion"]]
            assert verify_inclusion(leaf_hash(got["record_hash"]), seq - 1, second.size, path, second.root)
        print(
            f"{proofs} proofs: median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms (each verified)"
        )
    finally:
        await ledger.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--proofs", type=int, default=50)
    parser.add_argument("--grow", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.ledger, args.proofs, args.grow))
