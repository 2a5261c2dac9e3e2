"""The tree computed on several cores is the tree computed in one pass, on both backends.

A first checkpoint of a large ledger hashes its chunks in worker processes
(``treestore.hash_records``), and ``verify``'s workers hash the tree from the rows they verify
(``parallel.verify_with_tree``). Both are forced here on small ledgers (their thresholds set to
0) and compared with the serial computation and with the naive RFC 9162 reference of
``test_tree.py``; what ``verify`` then reports about a tampered tree must not depend on the path.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from test_tree import DATA, LEAVES, MAX_N, rfc_mth
from unit_helpers import append_many

from consentkit.ledger import open_ledger, parallel, treestore
from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import inclusion_proof, root_from_inclusion
from consentkit.ledger.tree import _root_of, leaf_hashes, subtree_roots
from consentkit.ledger.treestore import CHUNK, ChunkHasher, check_tree

ORIGIN = "consentkit/test.example"
N = 1400  # five complete chunks and a partial one


@pytest.fixture
def key() -> tuple[str, str]:
    return generate_key(ORIGIN)


async def grown(url: str, n: int = N) -> str:
    ledger = open_ledger(url)
    try:
        await append_many(ledger, n)
    finally:
        await ledger.close()
    return url


async def verify_with_tree(*args):
    """In a thread: it runs event loops of its own, as ``consentkit verify`` does."""
    return await asyncio.to_thread(parallel.verify_with_tree, *args)


async def record_hashes(ledger) -> list[bytes]:
    return [bytes.fromhex(r.hash) async for r in ledger.records()]


def hex_hashes(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


# --- the pieces, against the naive reference ----------------------------------------------------


def test_chunk_hasher_keeps_chunk_roots_and_the_partial_roots_asked_for():
    hexes = hex_hashes(5 * CHUNK + 37)
    data = [bytes.fromhex(h) for h in hexes]
    sizes = [1, 2, 255, 256, 257, 700, 1024, 1100, 5 * CHUNK + 1, 5 * CHUNK + 37, 5 * CHUNK + 38]
    for page in (1, 100, 256, 999, 5000):
        hasher = ChunkHasher(0, sizes)
        for start in range(0, len(hexes), page):
            hasher.feed(start + 1, hexes[start : start + page])
        hasher.finish()
        assert hasher.roots == [rfc_mth(data[c * CHUNK : (c + 1) * CHUNK]) for c in range(5)]
        assert hasher.leaves == leaf_hashes(hexes[5 * CHUNK :])
        assert hasher.next_seq == len(hexes) + 1
        for size in sizes:
            if size % CHUNK and size <= len(hexes):
                assert hasher.partial_roots[size] == rfc_mth(data[size // CHUNK * CHUNK : size]), size
            else:
                assert size not in hasher.partial_roots


def test_a_chunk_hasher_can_start_at_any_chunk_and_refuses_gaps():
    hexes = hex_hashes(3 * CHUNK)
    hasher = ChunkHasher(1, [CHUNK + 10, 10])
    hasher.feed(CHUNK + 1, hexes[CHUNK:])
    assert hasher.finish().roots == [
        _root_of(leaf_hashes(hexes[c * CHUNK : (c + 1) * CHUNK])) for c in (1, 2)
    ]
    assert list(hasher.partial_roots) == [CHUNK + 10]
    with pytest.raises(treestore.LedgerCorrupt, match="missing before seq 770"):
        hasher.feed(3 * CHUNK + 2, hexes[:1])


def test_subtree_roots_are_perfect_trees_level_by_level():
    data = [bytes.fromhex(h) for h in hex_hashes(64)]
    leaves = leaf_hashes(d.hex() for d in data)
    for height in range(7):
        size = 1 << height
        assert subtree_roots(leaves, height) == [rfc_mth(data[i : i + size]) for i in range(0, 64, size)]
    with pytest.raises(treestore.TreeError):
        subtree_roots(leaves[:3], 1)


def test_the_root_an_inclusion_proof_leads_to_is_the_trees():
    """What a proof served by the ledger reports as the root: the path folded from the leaf."""
    for n in range(1, MAX_N + 1):
        root = rfc_mth(DATA[:n])
        for index in range(n):
            path = inclusion_proof(index, n, LEAVES[:n])
            assert root_from_inclusion(LEAVES[index], index, n, path) == root, (n, index)
            if path:
                assert root_from_inclusion(LEAVES[index], index, n, path[:-1]) is None
            assert root_from_inclusion(LEAVES[index], index, n, [*path, LEAVES[0]]) is None
    assert root_from_inclusion(LEAVES[0], 1, 1, []) is None
    assert root_from_inclusion(LEAVES[0][:31], 0, 1, []) is None


# --- a first checkpoint on several cores --------------------------------------------------------


@pytest.mark.parametrize("jobs", [2, 3, 8])
async def test_chunks_hashed_by_workers_are_the_serial_ones(any_ledger_url, monkeypatch, jobs):
    await grown(any_ledger_url)
    monkeypatch.setattr(treestore, "PARALLEL_FROM", 0)
    ledger = open_ledger(any_ledger_url, create=False)
    try:
        serial = await treestore.hash_records(ledger, 0, jobs=1)
        shared = await treestore.hash_records(ledger, 0, jobs=jobs)
        assert shared.roots == serial.roots and len(serial.roots) == N // CHUNK
        assert shared.leaves == serial.leaves and len(serial.leaves) == N % CHUNK
        later = await treestore.hash_records(ledger, 2, jobs=jobs)  # after two stored chunks
        assert later.roots == serial.roots[2:] and later.leaves == serial.leaves
        data = await record_hashes(ledger)
        assert serial.roots == [rfc_mth(data[c * CHUNK : (c + 1) * CHUNK]) for c in range(N // CHUNK)]
    finally:
        await ledger.close()


async def test_a_ledger_too_small_to_share_out_is_hashed_here(any_ledger_url, monkeypatch):
    monkeypatch.setattr(treestore, "PARALLEL_FROM", 0)
    ledger = open_ledger(any_ledger_url)
    try:
        for n in (0, 100, 300):  # no complete chunk, none, one: nothing to give a worker
            await append_many(ledger, n - (await ledger.last_seq()))
            got = await treestore.hash_records(ledger, 0, jobs=2)
            data = await record_hashes(ledger)
            assert got.roots == [rfc_mth(data[:CHUNK])] * (n // CHUNK)
            assert len(got.leaves) == n % CHUNK
    finally:
        await ledger.close()


async def test_a_first_checkpoint_on_several_cores_signs_the_rfc_tree(any_ledger_url, monkeypatch, key):
    await grown(any_ledger_url)
    monkeypatch.setattr(treestore, "PARALLEL_FROM", 0)
    ledger = open_ledger(any_ledger_url, create=False)
    try:
        checkpoint = parse_checkpoint(await ledger.checkpoint(key[0], ORIGIN), key[1])
        assert (checkpoint.size, checkpoint.root) == (N, rfc_mth(await record_hashes(ledger)))
        report = await check_tree(ledger)
        assert report.problem is None and report.records == N
    finally:
        await ledger.close()


async def test_records_missing_under_a_worker_are_refused(any_ledger_url, monkeypatch):
    await grown(any_ledger_url)
    monkeypatch.setattr(treestore, "PARALLEL_FROM", 0)
    ledger = open_ledger(any_ledger_url, create=False)
    try:
        await ledger._execute("DELETE FROM consentkit_ledger WHERE seq = 100")
        with pytest.raises(treestore.LedgerCorrupt, match="missing"):
            await treestore.hash_records(ledger, 0, jobs=2)
    finally:
        await ledger.close()


# --- verify's workers -----------------------------------------------------------------------


@pytest.mark.parametrize("split", [True, False])
async def test_the_tree_verify_hashes_is_the_one_check_tree_reads(any_ledger_url, monkeypatch, key, split):
    url = await grown(any_ledger_url)
    if split:
        monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)  # several ranges, as on a large ledger
    ledger = open_ledger(url, create=False)
    try:
        assert (await verify_with_tree(url, 2))[1] is None  # nothing stored or given: no hashing
        await ledger.checkpoint(key[0], ORIGIN)
        sizes = [1, 256, 300, 1000, N]
        report, tree = await verify_with_tree(url, 2, sizes)
        assert report.ok and report.records == N and tree is not None
        serial = await treestore.feed_from_db(ledger, ChunkHasher(0, sizes))
        assert (tree.roots, tree.leaves) == (serial.roots, serial.leaves)
        assert tree.partial_roots == serial.partial_roots and set(tree.partial_roots) == {1, 300, 1000, N}
        got, expected = await check_tree(ledger, sizes, tree), await check_tree(ledger, sizes)
        assert got == expected and got.problem is None
        data = await record_hashes(ledger)
        assert got.roots == {size: rfc_mth(data[:size]) for size in sizes}
    finally:
        await ledger.close()


async def test_records_added_while_verifying_are_read_by_check_tree(any_ledger_url, monkeypatch, key):
    url = await grown(any_ledger_url)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)
    ledger = open_ledger(url, create=False)
    try:
        await ledger.checkpoint(key[0], ORIGIN)
        report, tree = await verify_with_tree(url, 2, [500])
        assert report.ok and tree is not None
        await append_many(ledger, 300)
        await ledger.checkpoint(key[0], ORIGIN)  # of N + 300 records, unknown to the workers
        got = await check_tree(ledger, [500, N + 250], tree)
        assert got == await check_tree(ledger, [500, N + 250])
        assert got.problem is None and got.records == N + 300 and N + 250 in got.roots
    finally:
        await ledger.close()


@pytest.mark.parametrize("split", [True, False])
async def test_a_tampered_tree_is_found_through_the_workers(any_ledger_url, monkeypatch, key, split):
    url = await grown(any_ledger_url)
    if split:
        monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)
    ledger = open_ledger(url, create=False)
    try:
        await ledger.checkpoint(key[0], ORIGIN)
        await ledger._execute("UPDATE consentkit_tree_chunks SET root = ? WHERE chunk = 3", (b"\x00" * 32,))
        report, tree = await verify_with_tree(url, 2)
        assert report.ok and tree is not None
        found = await check_tree(ledger, (), tree)
        assert found.bad_seq == 3 * CHUNK + 1 and f"seq {3 * CHUNK + 1}..{4 * CHUNK}" in (found.problem or "")
        await ledger._execute("UPDATE consentkit_checkpoints SET root = ?", (b"\x01" * 32,))
        await ledger._execute("DELETE FROM consentkit_tree_chunks WHERE chunk = 3")
        found = await check_tree(ledger, (), (await verify_with_tree(url, 2))[1])
        assert "do not match the ledger's own checkpoint" in (found.problem or "")
    finally:
        await ledger.close()


# --- the command, with verify's ranges as on a large ledger ---------------------------------------


def test_consentkit_verify_checks_the_tree_its_workers_hashed(any_ledger_url, monkeypatch, key, tmp_path):
    from click.testing import CliRunner

    from consentkit.cli import main

    url = asyncio.run(grown(any_ledger_url))
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)

    async def checkpoint(*, tamper: bool = False) -> str:
        ledger = open_ledger(url, create=False)
        try:
            note = await ledger.checkpoint(key[0], ORIGIN)
            if tamper:
                await ledger._execute(
                    "UPDATE consentkit_tree_chunks SET root = ? WHERE chunk = 4", (b"\x00" * 32,)
                )
            return note
        finally:
            await ledger.close()

    (tmp_path / "kept.cp").write_text(asyncio.run(checkpoint()))
    command = ["verify", "--ledger", url, "--vkey", key[1], "--checkpoint", str(tmp_path / "kept.cp")]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert f"ok: {N} records verified" in result.output and f"({N} records) matches" in result.output
    asyncio.run(checkpoint(tamper=True))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    first = 4 * CHUNK + 1
    assert f"at seq {first}: the stored tree chunk of seq {first}..{5 * CHUNK}" in result.output
