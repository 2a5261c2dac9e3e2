"""``consentkit keygen``, ``checkpoint``, ``verify --checkpoint``, ``proof`` and ``check-proof`` on
both backends, as an auditor uses them against an operator who can rewrite the database."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import PG_DSN, run_sync
from unit_helpers import append_many

from consentkit.cli import main
from consentkit.ledger import LedgerRecord, open_ledger
from consentkit.ledger.daily import daily_counts_of_rows, upsert_rows
from consentkit.ledger.queries import INSERT_RECORD, INSERT_SALT, UPSERT_DAILY, dollars
from consentkit.ledger.records import GENESIS_HASH, chain_hash, committed_json
from consentkit.ledger.tree import leaf_hash

sys.path.insert(0, str(Path(__file__).parent / "ledger"))
from test_tree import naive_verify_inclusion


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def grow(url: str, n: int) -> None:
    async def go() -> None:
        ledger = open_ledger(url)
        try:
            await append_many(ledger, n)
        finally:
            await ledger.close()

    asyncio.run(go())


def records(url: str) -> list[LedgerRecord]:
    async def go() -> list[LedgerRecord]:
        ledger = open_ledger(url, create=False)
        try:
            return [r async for r in ledger.records(with_salts=True)]
        finally:
            await ledger.close()

    return asyncio.run(go())


def raw(url: str, *statements: tuple[str, list[tuple[Any, ...]]]) -> None:
    """Change the database behind the library's back, as an operator with access to it can."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        try:
            for sql, rows in statements:
                conn.executemany(sql, rows)
            conn.commit()
        finally:
            conn.close()
        return

    async def go() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'SET search_path = "{url.rsplit("schema=", 1)[1]}"')
            for sql, rows in statements:
                await conn.executemany(dollars(sql), rows)
        finally:
            await conn.close()

    run_sync(go())  # from sync tests and async ones alike


def rewrite(url: str, new: list[LedgerRecord], *, keep_tree: bool = False) -> None:
    """Replace the records from ``new[0].seq`` on by ``new``, renumbered and rehashed with the
    ledger's own functions, so that the chain verifies; and drop the stored tree, unless told."""
    first = new[0].seq
    prev = GENESIS_HASH if first == 1 else records(url)[first - 2].hash
    sealed = []
    for seq, r in enumerate(new, start=first):
        committed = committed_json(
            seq, r.event_id, r.recorded_at, r.action, r.purposes_json, r.method, r.policy_revision,
            r.policy_version, r.policy_digest, r.locale, r.gpc, r.pii_digest,
        )  # fmt: skip
        r = dataclasses.replace(r, seq=seq, prev_hash=prev, hash=chain_hash(prev, committed))
        prev = r.hash
        sealed.append(r)
    statements = [
        ("DELETE FROM consentkit_pii_salts WHERE seq >= ?", [(first,)]),
        ("DELETE FROM consentkit_ledger WHERE seq >= ?", [(first,)]),
        (INSERT_RECORD.sql(), [r.row() for r in sealed]),
        (INSERT_SALT.sql(), [(r.seq, r.pii_salt) for r in sealed if r.pii_salt is not None]),
    ]
    if not keep_tree:
        statements += [("DELETE FROM consentkit_tree_chunks WHERE chunk >= ?", [(0,)])]
        statements += [("DELETE FROM consentkit_checkpoints WHERE size >= ?", [(0,)])]
    raw(url, *statements)
    recount(url)


def recount(url: str) -> None:
    """Make the per-day figures agree with the records again, as a thorough operator would (else
    ``verify`` finds the figures wrong before any checkpoint is needed)."""
    counts = daily_counts_of_rows(r.to_row() for r in records(url))
    raw(
        url,
        ("DELETE FROM consentkit_daily WHERE count >= ?", [(0,)]),
        (UPSERT_DAILY.sql(), upsert_rows(counts)),
    )


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "log.key"
    result = run("keygen", "--name", "shop.example", "--private-out", str(path))
    assert result.exit_code == 0, result.output
    return path, result.output.strip()


def make_checkpoint(url: str, key: Path, out: Path, *extra: str) -> str:
    result = run("checkpoint", "--ledger", url, "--key", str(key), *extra)
    assert result.exit_code == 0, result.output
    out.write_text(result.output)
    return result.output


def test_keygen_writes_a_private_key_for_its_owner_only_and_never_overwrites(tmp_path, key):
    path, vkey = key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert vkey.startswith("shop.example+") and len(vkey.split("+")[1]) == 8
    before = path.read_bytes()
    again = run("keygen", "--name", "shop.example", "--private-out", str(path))
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
    assert path.read_bytes() == before


def test_an_honest_ledger_that_grew_passes_with_its_checkpoints(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 300)
    note = make_checkpoint(any_ledger_url, path, tmp_path / "old.cp")
    assert note.startswith("consentkit/shop.example\n300\n")
    grow(any_ledger_url, 60)
    make_checkpoint(any_ledger_url, path, tmp_path / "new.cp")
    grow(any_ledger_url, 5)
    result = run(
        "verify", "--ledger", any_ledger_url, "--vkey", vkey,
        "--checkpoint", str(tmp_path / "old.cp"), "--checkpoint", str(tmp_path / "new.cp"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ok: 365 records verified" in result.output
    assert "(300 records) matches" in result.output and "(360 records) matches" in result.output


def test_a_rewritten_and_rehashed_record_is_caught_by_the_checkpoint(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 300)
    make_checkpoint(any_ledger_url, path, tmp_path / "kept.cp")
    old = records(any_ledger_url)
    rewrite(any_ledger_url, [dataclasses.replace(old[9], action="reject_all"), *old[10:]])
    assert run("verify", "--ledger", any_ledger_url).exit_code == 0  # the chain alone cannot tell
    result = run(
        "verify", "--ledger", any_ledger_url, "--vkey", vkey, "--checkpoint", str(tmp_path / "kept.cp")
    )
    assert result.exit_code == 1
    assert "the first 300 records do not match the checkpoint" in result.output


def test_a_rewrite_below_a_stored_chunk_is_located(any_ledger_url, key, tmp_path):
    path, _ = key
    grow(any_ledger_url, 300)
    make_checkpoint(any_ledger_url, path, tmp_path / "kept.cp")
    old = records(any_ledger_url)
    rewrite(any_ledger_url, [dataclasses.replace(old[9], action="reject_all"), *old[10:]], keep_tree=True)
    result = run("verify", "--ledger", any_ledger_url)
    assert result.exit_code == 1 and "at seq 1: the stored tree chunk of seq 1..256" in result.output


def test_a_cut_tail_is_caught_by_the_checkpoint(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 300)
    make_checkpoint(any_ledger_url, path, tmp_path / "kept.cp")
    raw(
        any_ledger_url,
        ("DELETE FROM consentkit_pii_salts WHERE seq > ?", [(250,)]),
        ("DELETE FROM consentkit_ledger WHERE seq > ?", [(250,)]),
        ("DELETE FROM consentkit_checkpoints WHERE size >= ?", [(0,)]),
    )
    stored = run("verify", "--ledger", any_ledger_url)  # the stored chunk of seq 1..256 says so
    assert stored.exit_code == 1 and "has 250 records but its stored tree chunks cover 256" in stored.output
    raw(any_ledger_url, ("DELETE FROM consentkit_tree_chunks WHERE chunk >= ?", [(0,)]))
    figures = run("verify", "--ledger", any_ledger_url)  # the per-day figures still count 300
    assert figures.exit_code == 1 and "is 300 in the ledger, but the records make it 250" in figures.output
    recount(any_ledger_url)
    assert run("verify", "--ledger", any_ledger_url).exit_code == 0  # the chain alone cannot tell
    result = run(
        "verify", "--ledger", any_ledger_url, "--vkey", vkey, "--checkpoint", str(tmp_path / "kept.cp")
    )
    assert result.exit_code == 1
    assert "at seq 251: the ledger has 250 records but the checkpoint" in result.output
    assert "covers 300" in result.output


def test_a_reordering_is_caught_by_the_checkpoint(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 40)
    make_checkpoint(any_ledger_url, path, tmp_path / "kept.cp")
    old = records(any_ledger_url)
    rewrite(any_ledger_url, [dataclasses.replace(old[4], seq=4), old[3], *old[5:]])
    assert run("verify", "--ledger", any_ledger_url).exit_code == 0
    result = run(
        "verify", "--ledger", any_ledger_url, "--vkey", vkey, "--checkpoint", str(tmp_path / "kept.cp")
    )
    assert result.exit_code == 1 and "do not match the checkpoint" in result.output


def test_proofs_check_offline_and_tampered_ones_fail(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 300)
    make_checkpoint(any_ledger_url, path, tmp_path / "old.cp")
    grow(any_ledger_url, 20)
    make_checkpoint(any_ledger_url, path, tmp_path / "new.cp")
    target = records(any_ledger_url)[256]
    by_receipt = run("proof", "--ledger", any_ledger_url, "--receipt", target.receipt)
    assert by_receipt.exit_code == 0, by_receipt.output
    proof = json.loads(by_receipt.output)
    assert (proof["seq"], proof["leaf_index"], proof["tree_size"]) == (257, 256, 320)
    assert proof["record_hash"] == target.hash
    assert proof["checkpoint"] == (tmp_path / "new.cp").read_text()
    nodes = [bytes.fromhex(h) for h in proof["inclusion"]]
    assert naive_verify_inclusion(leaf_hash(target.hash), 256, 320, nodes, bytes.fromhex(proof["root_hash"]))
    good = tmp_path / "proof.json"
    good.write_text(by_receipt.output)
    result = run("check-proof", str(good), "--vkey", vkey)
    assert result.exit_code == 0 and result.output.startswith("ok"), result.output

    older = run("proof", "--ledger", any_ledger_url, "--seq", "3", "--checkpoint", str(tmp_path / "old.cp"))
    assert older.exit_code == 0, older.output
    assert json.loads(older.output)["tree_size"] == 300
    good.write_text(older.output)
    assert run("check-proof", str(good), "--vkey", vkey).exit_code == 0

    flip = {"0": "1", "1": "0"}
    for name, change in [
        ("record_hash", lambda p: {**p, "record_hash": records(any_ledger_url)[0].hash}),
        (
            "inclusion",
            lambda p: {
                **p,
                "inclusion": [
                    flip.get(p["inclusion"][0][0], "0") + p["inclusion"][0][1:],
                    *p["inclusion"][1:],
                ],
            },
        ),
        ("leaf_index", lambda p: {**p, "leaf_index": p["leaf_index"] + 1, "seq": p["seq"] + 1}),
        ("tree_size", lambda p: {**p, "tree_size": p["tree_size"] - 1}),
        ("root_hash", lambda p: {**p, "root_hash": "00" * 32}),
        ("checkpoint", lambda p: {**p, "checkpoint": p["checkpoint"].replace("\n320\n", "\n321\n")}),
    ]:
        bad = tmp_path / f"bad-{name}.json"
        bad.write_text(json.dumps(change(proof)))
        result = run("check-proof", str(bad), "--vkey", vkey)
        assert result.exit_code == 1, (name, result.output)
        assert result.output.startswith("Error:"), (name, result.output)


def test_bad_input_is_refused_with_a_message_and_nothing_written(any_ledger_url, key, tmp_path):
    path, vkey = key
    grow(any_ledger_url, 10)
    kept = tmp_path / "kept.cp"
    make_checkpoint(any_ledger_url, path, kept)
    other = tmp_path / "other.key"
    other_vkey = run("keygen", "--name", "other.example", "--private-out", str(other)).output.strip()

    def checkpoints_stored() -> int:
        async def go() -> int:
            ledger = open_ledger(any_ledger_url, create=False)
            try:
                return len(await ledger._select("SELECT id FROM consentkit_checkpoints"))
            finally:
                await ledger.close()

        return asyncio.run(go())

    def refused(args: list[str], message: str) -> None:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)

    verify = ["verify", "--ledger", any_ledger_url, "--checkpoint", str(kept)]
    refused([*verify, "--vkey", other_vkey], "checkpoint")
    refused([*verify, "--vkey", "shop.example+00000000+AAAA"], "--vkey")
    refused(verify, "needs --vkey")
    malformed = tmp_path / "malformed.cp"
    malformed.write_text("consentkit/shop.example\nten\n")
    refused(
        ["verify", "--ledger", any_ledger_url, "--vkey", vkey, "--checkpoint", str(malformed)], "malformed"
    )
    foreign = tmp_path / "foreign.cp"
    make_checkpoint(any_ledger_url, path, foreign, "--origin", "elsewhere")
    refused(["verify", "--ledger", any_ledger_url, "--vkey", vkey, "--checkpoint", str(foreign)], "elsewhere")
    refused(["proof", "--ledger", any_ledger_url, "--receipt", "0123abcd"], "no record has receipt 0123abcd")
    count = checkpoints_stored()
    os.chmod(path, 0o644)
    refused(["checkpoint", "--ledger", any_ledger_url, "--key", str(path)], "chmod 600")
    assert checkpoints_stored() == count
    out = tmp_path / "not-written.key"
    refused(["keygen", "--name", "bad name", "--private-out", str(out)], "name")
    assert not out.exists()
