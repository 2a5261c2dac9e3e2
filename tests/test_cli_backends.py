"""The auditor's commands on both backends, through the real `consentkit` command."""

from __future__ import annotations

import csv
import io
import json

from conftest import run_sync
from server_helpers import run_cli
from unit_helpers import new_record

from consentkit import open_ledger


def fill(url: str, policy) -> list:
    async def go():
        ledger = open_ledger(url)
        try:
            out = []
            for i, (subject, action, gpc) in enumerate(
                [("alice", "accept_all", False), ("bob", "reject_all", True), ("alice", "withdraw", False)]
            ):
                purposes = {
                    "necessary": True,
                    "analytics": action == "accept_all",
                    "ads": action == "accept_all",
                }
                out.append(
                    await ledger.append(
                        new_record(policy, subject, action, purposes, gpc=gpc, user_agent=f"UA {i}")
                    )
                )
            return out
        finally:
            await ledger.close()

    return run_sync(go())


def test_export_stats_erase_verify(any_ledger_url, policy):
    records = fill(any_ledger_url, policy)
    jsonl = run_cli("export", "--ledger", any_ledger_url, "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["hash"] for r in rows] == [r.hash for r in records]
    only_bob = run_cli("export", "--ledger", any_ledger_url, "--format", "csv", "--subject", "bob")
    table = list(csv.DictReader(io.StringIO(only_bob.stdout)))
    assert [(t["subject_id"], t["action"], t["gpc"]) for t in table] == [("bob", "reject_all", "true")]

    stats = run_cli("stats", "--ledger", any_ledger_url, "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["records"] == 3 and figures["subjects"] == 2
    assert figures["actions"] == {"accept_all": 1, "reject_all": 1, "withdraw": 1}
    assert figures["consent_rate"]["analytics"] == round(1 / 3, 4)
    assert figures["gpc_share"] == round(1 / 3, 4)

    erased = run_cli("erase", "--ledger", any_ledger_url, "--subject", "alice", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased 2 records" in erased.stdout
    after = run_cli("export", "--ledger", any_ledger_url, "--format", "jsonl")
    assert "alice" not in after.stdout and "UA 0" not in after.stdout and "UA 2" not in after.stdout
    assert "bob" in after.stdout
    verified = run_cli("verify", "--ledger", any_ledger_url)
    assert verified.returncode == 0 and "4 records verified, 2 erased" in verified.stdout

    again = run_cli("erase", "--ledger", any_ledger_url, "--subject", "alice", "--yes")
    assert again.returncode == 1 and "no ledger record belongs" in again.stderr
