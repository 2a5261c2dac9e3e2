"""Checkpoints and proofs of real ledgers, on both backends: what is stored, and that it is checked.

Roots and proofs are compared with the naive RFC 9162 reference of ``test_tree.py``, over the
record hashes read back from the ledger.
"""

from __future__ import annotations

import pytest
from test_tree import naive_verify_consistency, naive_verify_inclusion, rfc_mth
from unit_helpers import append_many

from consentkit.errors import LedgerError
from consentkit.ledger import open_ledger
from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import verify_consistency, verify_inclusion
from consentkit.ledger.tree import leaf_hash
from consentkit.ledger.treestore import check_tree

ORIGIN = "consentkit/test.example"


async def grow(ledger, n: int) -> None:
    await append_many(ledger, n)


async def record_hashes(ledger) -> list[bytes]:
    return [bytes.fromhex(r.hash) async for r in ledger.records()]


@pytest.fixture
def key() -> tuple[str, str]:
    return generate_key(ORIGIN)


async def test_checkpoints_sign_the_tree_of_the_records_and_store_chunk_roots(any_ledger_url, key):
    skey, vkey = key
    ledger = open_ledger(any_ledger_url)
    try:
        assert await ledger.latest_checkpoint() is None
        await grow(ledger, 600)
        note = await ledger.checkpoint(skey, ORIGIN)
        first = parse_checkpoint(note, vkey, origin=ORIGIN)
        data = await record_hashes(ledger)
        assert (first.size, first.root) == (600, rfc_mth(data))
        chunks = await ledger._select("SELECT chunk FROM consentkit_tree_chunks ORDER BY chunk")
        assert [c[0] for c in chunks] == [0, 1]  # 600 records: two complete chunks of 256
        assert await ledger.latest_checkpoint() == note

        await grow(ledger, 150)
        second = parse_checkpoint(await ledger.checkpoint(skey, ORIGIN), vkey, origin=ORIGIN)
        data = await record_hashes(ledger)
        assert (second.size, second.root) == (750, rfc_mth(data))
        assert len(await ledger._select("SELECT chunk FROM consentkit_tree_chunks")) == 2

        proof = await ledger.consistency(600, 750)
        assert verify_consistency(600, 750, first.root, second.root, proof)
        assert naive_verify_consistency(600, 750, first.root, second.root, proof)
        for seq in (1, 256, 257, 512, 600, 601, 750):
            got = await ledger.inclusion_proof(seq)
            assert got["tree_size"] == 750 and got["leaf_index"] == seq - 1
            assert got["record_hash"] == data[seq - 1].hex()
            assert got["checkpoint"] == await ledger.latest_checkpoint()
            path = [bytes.fromhex(h) for h in got["inclusion"]]
            leaf = leaf_hash(got["record_hash"])
            assert naive_verify_inclusion(leaf, seq - 1, 750, path, second.root)
            older = await ledger.inclusion_proof(seq, 600) if seq <= 600 else None
            if older is not None:
                path = [bytes.fromhex(h) for h in older["inclusion"]]
                assert verify_inclusion(leaf, seq - 1, 600, path, first.root)
        report = await check_tree(ledger, [600, 750])
        assert report.problem is None and report.records == 750
        assert report.roots[600] == first.root and report.roots[750] == second.root
    finally:
        await ledger.close()


async def test_an_empty_ledger_has_a_checkpoint_of_the_empty_tree(any_ledger_url, key):
    ledger = open_ledger(any_ledger_url)
    try:
        checkpoint = parse_checkpoint(await ledger.checkpoint(key[0], ORIGIN), key[1])
        assert checkpoint.size == 0 and checkpoint.root == rfc_mth([])
    finally:
        await ledger.close()


async def test_a_proof_needs_a_checkpoint(any_ledger_url, key):
    ledger = open_ledger(any_ledger_url)
    try:
        await grow(ledger, 5)
        with pytest.raises(LedgerError, match="no checkpoint"):
            await ledger.inclusion_proof(1)
        await ledger.checkpoint(key[0], ORIGIN)
        with pytest.raises(LedgerError, match="not in the tree"):
            await ledger.inclusion_proof(6)
    finally:
        await ledger.close()


async def test_verify_recomputes_stored_chunk_roots_and_checkpoints(any_ledger_url, key):
    ledger = open_ledger(any_ledger_url)
    try:
        await grow(ledger, 300)
        await ledger.checkpoint(key[0], ORIGIN)
        assert (await check_tree(ledger)).problem is None
        await ledger._execute("UPDATE consentkit_tree_chunks SET root = ? WHERE chunk = 0", (b"\x00" * 32,))
        report = await check_tree(ledger)
        assert report.bad_seq == 1 and "seq 1..256" in (report.problem or "")
    finally:
        await ledger.close()


async def test_verify_catches_a_stored_checkpoint_that_does_not_match(any_ledger_url, key):
    ledger = open_ledger(any_ledger_url)
    try:
        await grow(ledger, 40)
        await ledger.checkpoint(key[0], ORIGIN)
        await ledger._execute("UPDATE consentkit_checkpoints SET root = ?", (b"\x01" * 32,))
        report = await check_tree(ledger)
        assert "do not match the ledger's own checkpoint" in (report.problem or "")
        await ledger._execute("UPDATE consentkit_checkpoints SET size = 41")
        report = await check_tree(ledger)
        assert report.bad_seq == 41 and "has 40 records" in (report.problem or "")
    finally:
        await ledger.close()
