"""Checkpoints, proofs and verify on a real ledger (``benchmarks/make_ledger.py``), through the Ledger
API and the ``consentkit verify`` command.

    python benchmarks/make_ledger.py --records 1000000 --ledger sqlite:///big.db
    python benchmarks/checkpoint.py --ledger sqlite:///big.db [--proofs 200] [--grow 100] [--rounds 5]
                                    [--verify 3]

Run it on a copy: it stores chunk roots and checkpoints in the ledger and appends records (let
the copy reach the disk first, ``sync``: its write-back otherwise lands inside the timings). What
is timed:

1. the first checkpoint (no stored tree: every chunk root is hashed from the records);
2. ``--rounds`` checkpoints, each after ``--grow`` more records (only the records after the last
   stored chunk are read): median and max;
3. inclusion proofs of ``--proofs`` random records against the latest checkpoint (each reads the
   stored chunk roots and one chunk of records), each checked: median, p99 and max;
4. with ``--verify N``, ``consentkit verify --checkpoint FILE`` (the latest checkpoint, so the
   stored tree and both checkpoints are checked too) run N times as a command, wall clock
   including the interpreter's start: median, and records per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from consentkit.ledger import LedgerRecord, NewRecord, RecordFilter, open_ledger
from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import verify_inclusion
from consentkit.ledger.tree import leaf_hash

ORIGIN = "consentkit/bench.example"


def entry(i: int, like: LedgerRecord) -> NewRecord:
    """A decision under the policy of ``like`` (the ledger's last record): ``verify`` checks that
    every record names a policy text the ledger holds."""
    return NewRecord(
        subject_id=f"bench-{i}",
        action="accept_all",
        purposes={"necessary": True},
        method="banner",
        policy_revision=like.policy_revision,
        policy_version=like.policy_version,
        policy_digest=like.policy_digest,
        locale="en",
    )


def ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms"


async def checkpoints(url: str, private: str, verifier: str, args: argparse.Namespace) -> str:
    """Steps 1 to 3; the latest signed checkpoint."""
    ledger = open_ledger(url, create=False)
    try:
        start = time.perf_counter()
        note = await ledger.checkpoint(private, ORIGIN)
        first = parse_checkpoint(note, verifier)
        print(f"first checkpoint of {first.size} records: {time.perf_counter() - start:.3f} s", flush=True)
        tail = [r async for r in ledger.records(RecordFilter(first_seq=first.size))]
        last = tail[-1]
        times = []
        for _ in range(args.rounds):
            await asyncio.gather(*(ledger.append(entry(i, last)) for i in range(args.grow)))
            start = time.perf_counter()
            note = await ledger.checkpoint(private, ORIGIN)
            times.append(time.perf_counter() - start)
        latest = parse_checkpoint(note, verifier)
        print(f"{args.rounds} next checkpoints (+{args.grow} records each): {ms(times)}", flush=True)
        times = []
        for seq in random.sample(range(1, latest.size + 1), args.proofs):
            start = time.perf_counter()
            got = await ledger.inclusion_proof(seq)
            times.append(time.perf_counter() - start)
            path = [bytes.fromhex(h) for h in got["inclusion"]]
            assert verify_inclusion(leaf_hash(got["record_hash"]), seq - 1, latest.size, path, latest.root)
        print(f"{args.proofs} proofs (each verified): {ms(times)}", flush=True)
        return note
    finally:
        await ledger.close()


def verify(url: str, verifier: str, note: str, runs: int) -> None:
    """Step 4: ``consentkit verify`` with the latest checkpoint, as an auditor runs it."""
    size = parse_checkpoint(note, verifier).size
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "latest.cp")
        with open(path, "w", encoding="utf-8") as out:
            out.write(note)
        command = [sys.executable, "-m", "consentkit", "verify", "--ledger", url]
        command += ["--vkey", verifier, "--checkpoint", path]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            if done.returncode != 0 or "matches the ledger" not in done.stdout:
                raise SystemExit(f"verify failed:\n{done.stdout}{done.stderr}")
    seconds = statistics.median(times)
    print(
        f"consentkit verify --checkpoint ({size} records), {runs} runs: median {seconds:.2f} s "
        f"({size / seconds:,.0f} records/s), all: {', '.join(f'{t:.2f}' for t in times)} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--grow", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--verify", type=int, default=0, metavar="N", help="run consentkit verify N times")
    args = parser.parse_args()
    private, verifier = generate_key(ORIGIN)
    note = asyncio.run(checkpoints(args.ledger, private, verifier, args))
    if args.verify:
        verify(args.ledger, verifier, note, args.verify)


if __name__ == "__main__":
    main()
