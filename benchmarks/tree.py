"""The Merkle tree of the ledger at a million records: roots, chunk roots, proofs from storage.

    python benchmarks/tree.py [--leaves 1000000] [--proofs 200] [--chunk-bits 8] [--seed 1]

Record i's hash is SHA-256 of the decimal string of i (hex), the records of the Go ``sumdb/tlog``
vectors in ``tests/ledger/test_tree.py``: at a million leaves the root printed must be Go's.

What is timed:

1. the root of all records, streamed from their hex hashes (``TreeBuilder.extend_record_hashes``,
   what a backend runs over its rows) and from leaf hashes already made (``extend``);
2. the chunk roots of every complete chunk (a one-off backfill; a live ledger adds one per
   ``2**chunk_bits`` appends), from leaf hashes and from record hashes as a checkpoint and
   ``verify``'s workers compute them (``ChunkHasher``), then the root from the chunk roots and
   the partial chunk;
3. proofs for random leaves and random older sizes, *including the reads*, from a stand-in store:
   a temporary SQLite file with a table of record hashes and a table of chunk roots (not the
   ledger's schema, which the lead wires; same kind of reads). Each proof reads what
   ``proof_reads`` says: every chunk root and one chunk of record hashes (the tail root is kept
   with the checkpoint, so the partial chunk is not read), then builds and verifies the proof.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from consentkit.ledger.checkpoints import parse_checkpoint, sign_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import (
    ChunkedTree,
    consistency_proof,
    inclusion_proof,
    proof_reads,
    verify_consistency,
    verify_inclusion,
)
from consentkit.ledger.tree import TreeBuilder, chunk_roots, leaf_hashes, root_from_chunks
from consentkit.ledger.treestore import CHUNK_BITS, ChunkHasher

# golang.org/x/mod v0.9.0 sumdb/tlog TreeHash of these records (see tests/ledger/test_tree.py).
GO_ROOT_1M = "46cac2e63bb6d97247a5b5417d925f94c4e2e5f42eb390afe1e9f1a472f21931"

T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = fn()
    print(f"{label:<62} {time.perf_counter() - start:8.3f} s")
    return result


def ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"median {statistics.median(values) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  max {values[-1] * 1000:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--chunk-bits", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n, bits = args.leaves, args.chunk_bits
    rng = random.Random(args.seed)
    print(f"{n:,} leaves, chunks of {1 << bits} leaves, Python {sys.version.split()[0]}")

    hexes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]

    # 1. Roots.
    builder = TreeBuilder()
    timed("root from record hashes (extend_record_hashes)", lambda: builder.extend_record_hashes(hexes))
    root = builder.root()
    leaves = timed("leaf hashes of all records (leaf_hashes)", lambda: leaf_hashes(hexes))
    other = TreeBuilder()
    timed("root from leaf hashes (extend)", lambda: other.extend(leaves))
    assert other.root() == root
    print(f"root {root.hex()}")
    if n == 1_000_000:
        print("     = Go sumdb/tlog" if root.hex() == GO_ROOT_1M else "     != Go sumdb/tlog: WRONG")

    # 2. Chunk roots: from leaf hashes, and from record hashes in pages as a checkpoint and
    # verify's workers compute them (leaf hashes, chunk roots level by level, partial roots).
    roots = timed(f"chunk roots of {n >> bits:,} complete chunks", lambda: list(chunk_roots(leaves, bits)))
    if bits == CHUNK_BITS:
        hasher = ChunkHasher(0, [n - 1])

        def feed() -> None:
            for start in range(0, n, 5000):
                hasher.feed(start + 1, hexes[start : start + 5000])
            hasher.finish()

        timed("chunk roots from record hashes, 5,000 a page (ChunkHasher)", feed)
        assert hasher.roots == roots
    tail = leaves[n >> bits << bits :]
    from_chunks = timed(
        f"root from {len(roots):,} chunk roots + {len(tail)} leaves",
        lambda: root_from_chunks(roots, tail, chunk_bits=bits),
    )
    assert from_chunks == root
    tail_root = builder.tail_root(bits)

    # 3. Proofs from a stand-in store.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tree.db")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL)")
        db.execute("CREATE TABLE chunks (chunk INTEGER PRIMARY KEY, root BLOB NOT NULL)")
        timed(
            "store: record hashes and chunk roots written (setup)",
            lambda: (
                db.executemany(
                    "INSERT INTO records VALUES (?, ?)", ((i + 1, h) for i, h in enumerate(hexes))
                ),
                db.executemany("INSERT INTO chunks VALUES (?, ?)", enumerate(roots)),
                db.commit(),
            ),
        )
        db.close()
        db = sqlite3.connect(path)

        def read_tree(size: int, reads_chunks: tuple[range, ...], chunk_count: int) -> ChunkedTree:
            stored = [
                row[0]
                for row in db.execute(
                    "SELECT root FROM chunks WHERE chunk < ? ORDER BY chunk", (chunk_count,)
                )
            ]
            chunk_leaves = {}
            for span in reads_chunks:
                rows = db.execute(
                    "SELECT hash FROM records WHERE seq > ? AND seq <= ? ORDER BY seq",
                    (span.start, span.stop),
                )
                chunk_leaves[span.start >> bits] = leaf_hashes(row[0] for row in rows)
            return ChunkedTree(size, stored, chunk_leaves, chunk_bits=bits, tail_root=tail_root)

        # The million leaf hashes and hex strings this script holds only to check the results
        # would make the collector's full passes (tens of ms) land inside random proofs: a
        # server holds none of them, so take them out of its sight.
        gc.collect()
        gc.freeze()
        # Warm the page cache once, as a server that has been running would have it.
        read_tree(n, (), n >> bits)
        inclusion_times, compute_times = [], []
        for _ in range(args.proofs):
            index = rng.randrange(n)
            start = time.perf_counter()
            reads = proof_reads(n, index=index, chunk_bits=bits, have_tail_root=tail_root is not None)
            tree = read_tree(n, reads.leaf_ranges, len(reads.chunk_roots))
            middle = time.perf_counter()
            proof = inclusion_proof(index, n, tree)
            assert verify_inclusion(leaves[index], index, n, proof, root)
            end = time.perf_counter()
            inclusion_times.append(end - start)
            compute_times.append(end - middle)
        print(f"{f'inclusion proof, reads included ({args.proofs} random leaves)':<62} {ms(inclusion_times)}")
        print(f"{'  of which the proof and its verification':<62} {ms(compute_times)}")

        consistency_times = []
        for _ in range(args.proofs):
            old = rng.randrange(1, n)
            start = time.perf_counter()
            reads = proof_reads(n, old_size=old, chunk_bits=bits, have_tail_root=tail_root is not None)
            tree = read_tree(n, reads.leaf_ranges, len(reads.chunk_roots))
            proof = consistency_proof(old, n, tree)
            consistency_times.append(time.perf_counter() - start)
            old_root = root_from_chunks(
                roots[: old >> bits], leaves[old >> bits << bits : old], chunk_bits=bits
            )
            assert verify_consistency(old, n, old_root, root, proof)
        print(
            f"{f'consistency proof, reads included ({args.proofs} random sizes)':<62} {ms(consistency_times)}"
        )
        db.close()

    # Checkpoints, for scale.
    skey, vkey = generate_key("consentkit/bench.example")
    note = sign_checkpoint("consentkit/bench.example", n, root, skey)
    start = time.perf_counter()
    for _ in range(1000):
        sign_checkpoint("consentkit/bench.example", n, root, skey)
    signing = (time.perf_counter() - start) / 1000
    start = time.perf_counter()
    for _ in range(1000):
        parse_checkpoint(note, vkey)
    parsing = (time.perf_counter() - start) / 1000
    print(f"{'sign a checkpoint':<62} {signing * 1e6:8.0f} µs")
    print(f"{'parse and verify a checkpoint':<62} {parsing * 1e6:8.0f} µs")


if __name__ == "__main__":
    main()
