"""``GET /consent/proof?receipt=R``: a visitor's proof that their own record is in the log."""

from __future__ import annotations

import httpx
from conftest import BASE, decide

from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key
from consentkit.ledger.proofs import verify_inclusion
from consentkit.ledger.tree import leaf_hash

ORIGIN = "consentkit/proof-test"


async def test_a_visitor_gets_a_proof_of_their_own_record_that_checks_against_the_signed_root(client, kit):
    r = await decide(client, "reject_all")
    receipt = r.json()["receipt"]
    # Before any checkpoint there is nothing to prove against: say so, do not fail.
    early = await client.get("/consent/proof", params={"receipt": receipt})
    assert early.status_code == 409 and "checkpoint" in early.text
    private, verifier = generate_key(ORIGIN)
    await kit.ledger.checkpoint(private, ORIGIN)

    answer = await client.get("/consent/proof", params={"receipt": receipt})
    assert answer.status_code == 200
    assert answer.headers["x-frame-options"] == "DENY"
    proof = answer.json()
    [record] = await kit.ledger.history(r.json()["subject_id"])
    assert proof["record_hash"] == record.hash and proof["seq"] == record.seq
    signed = parse_checkpoint(proof["checkpoint"], verifier, origin=ORIGIN)
    assert signed.size == proof["tree_size"] and signed.root.hex() == proof["root_hash"]
    assert verify_inclusion(
        leaf_hash(proof["record_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["inclusion"]],
        signed.root,
    )


async def test_nobody_gets_the_proof_of_anybody_elses_record(app, kit):
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE) as alice,
        httpx.AsyncClient(transport=transport, base_url=BASE) as mallory,
    ):
        receipt = (await decide(alice, "accept_all")).json()["receipt"]
        await decide(mallory, "reject_all")
        private, _ = generate_key(ORIGIN)
        await kit.ledger.checkpoint(private, ORIGIN)
        assert (await alice.get("/consent/proof", params={"receipt": receipt})).status_code == 200
        theirs = await mallory.get("/consent/proof", params={"receipt": receipt})
        assert theirs.status_code == 404
        assert "no record of yours" in theirs.text
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as stranger:
            assert (await stranger.get("/consent/proof", params={"receipt": receipt})).status_code == 404
    await kit.aclose()


async def test_a_malformed_receipt_is_refused_with_a_message(client):
    for bad in ("", "xyz", "0" * 15, "0" * 17, "g" * 16):
        r = await client.get("/consent/proof", params={"receipt": bad})
        assert r.status_code == 400 and "16 hex digits" in r.text
