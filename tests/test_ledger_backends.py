"""The same ledger contract on SQLite and PostgreSQL, each in a fresh file or schema."""

from __future__ import annotations

import asyncio

import pytest

from consentkit import RecordFilter, open_ledger
from consentkit.errors import ConfigurationError, LedgerUnavailable
from consentkit.ledger import NewRecord
from consentkit.ledger.schema import SCHEMA_VERSION


def entry(subject: str, action: str = "accept_all", **kw) -> NewRecord:
    return NewRecord(
        subject_id=subject,
        action=action,
        purposes={"necessary": True, "analytics": action == "accept_all"},
        method="banner",
        policy_revision=1,
        policy_version="2026-11-01",
        policy_digest="d" * 64,
        locale="en",
        ip_prefix="203.0.113.0/24",
        user_agent="Mozilla/5.0",
        policy_json='{"policy":1}',
        **kw,
    )


async def test_append_history_records_and_verify(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        first = await ledger.append(entry("alice"))
        second = await ledger.append(entry("bob", "reject_all"))
        third = await ledger.append(entry("alice", "withdraw"))
        assert (first.seq, second.seq, third.seq) == (1, 2, 3)
        assert second.prev_hash == first.hash and third.prev_hash == second.hash
        history = await ledger.history("alice")
        assert [r.event_id for r in history] == [first.event_id, third.event_id]
        assert history[1].purposes == {"necessary": True, "analytics": False}
        assert [r.seq async for r in ledger.records(RecordFilter(action="reject_all"))] == [2]
        assert await ledger.policy_text("d" * 64) == '{"policy":1}'
        report = await ledger.verify()
        assert report.ok and report.records == 3 and report.head_hash == third.hash
    finally:
        await ledger.close()


async def test_concurrent_appends_share_commits_and_form_one_chain(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        records = await asyncio.gather(*(ledger.append(entry(f"s{i}")) for i in range(500)))
        assert sorted(r.seq for r in records) == list(range(1, 501))
        assert len({r.event_id for r in records}) == 500
        # Group commit: far fewer transactions than records.
        assert ledger.commits < 100  # type: ignore[attr-defined]
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()


async def test_reopening_continues_the_chain(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    await ledger.append(entry("a"))
    await ledger.close()
    again = open_ledger(any_ledger_url)
    try:
        rec = await again.append(entry("b"))
        assert rec.seq == 2
        assert (await again.verify()).ok
    finally:
        await again.close()


async def test_unreachable_postgres_is_unavailable_not_a_crash():
    ledger = open_ledger("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(LedgerUnavailable, match="cannot reach"):
        await ledger.append(entry("x"))
    await ledger.close()


def test_unknown_scheme_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown ledger URL"):
        open_ledger("mysql://root@127.0.0.1/test")


async def test_erase_removes_personal_fields_and_keeps_the_chain_verifiable(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        await ledger.append(entry("alice"))
        await ledger.append(entry("bob"))
        await ledger.append(entry("alice", "withdraw", evidence={"phone": "+1 514 555 0100"}))
        erase = await ledger.erase("alice")
        assert erase.action == "erase" and erase.subject_id is None and erase.seq == 4
        assert erase.evidence == {"erased_records": 2}
        records = [r async for r in ledger.records()]
        dumped = "\n".join(repr(r.to_dict()) for r in records)
        assert "alice" not in dumped and "555 0100" not in dumped
        erased = [r for r in records if r.seq in (1, 3)]
        assert all(r.ip_prefix is None and r.user_agent is None and r.evidence is None for r in erased)
        assert records[1].subject_id == "bob" and records[1].ip_prefix == "203.0.113.0/24"
        assert await ledger.history("alice") == []
        report = await ledger.verify()
        assert report.ok and report.records == 4 and report.erased == 2
    finally:
        await ledger.close()


async def test_erasing_an_unknown_subject_writes_nothing(any_ledger_url):
    from consentkit import SubjectNotFound

    ledger = open_ledger(any_ledger_url)
    try:
        await ledger.append(entry("alice"))
        with pytest.raises(SubjectNotFound, match="nobody"):
            await ledger.erase("nobody")
        assert [r.seq async for r in ledger.records()] == [1]
    finally:
        await ledger.close()


async def test_a_receipt_finds_its_record(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        records = [await ledger.append(entry(f"s{i}")) for i in range(20)]
        wanted = records[7]
        found = [r async for r in ledger.records(RecordFilter(receipt=wanted.receipt))]
        assert [r.event_id for r in found] == [wanted.event_id]
        # A shorter prefix of the same hash still finds it (and nothing that does not match).
        short = [r async for r in ledger.records(RecordFilter(receipt=wanted.hash[:8]))]
        assert wanted.event_id in [r.event_id for r in short]
        assert all(r.hash.startswith(wanted.hash[:8]) for r in short)
    finally:
        await ledger.close()


def test_receipt_command_shows_the_record_or_fails(any_ledger_url):
    import json as _json

    from server_helpers import run_cli

    async def make():
        ledger = open_ledger(any_ledger_url)
        try:
            return await ledger.append(entry("carol", "reject_all"))
        finally:
            await ledger.close()

    from conftest import run_sync

    record = run_sync(make())
    shown = run_cli("receipt", "--ledger", any_ledger_url, record.receipt)
    assert shown.returncode == 0, shown.stderr
    body = _json.loads(shown.stdout)
    assert (body["seq"], body["subject_id"], body["action"]) == (record.seq, "carol", "reject_all")
    missing = run_cli("receipt", "--ledger", any_ledger_url, "ffffffffffffffff")
    assert missing.returncode == 1 and "no record" in missing.stderr
    bad = run_cli("receipt", "--ledger", any_ledger_url, "not-hex")
    assert bad.returncode == 2 and "hex" in bad.stderr


async def test_daily_figures_follow_every_commit_and_match_the_records(any_ledger_url):
    from consentkit.audit.stats import compute

    ledger = open_ledger(any_ledger_url)
    try:
        await asyncio.gather(
            *(
                ledger.append(entry(f"s{i % 7}", ("accept_all", "reject_all")[i % 2], gpc=i % 3 == 0))
                for i in range(60)
            )
        )
        await ledger.erase("s1")
        daily = await ledger.daily()
        stats = await compute(ledger.records())
        (figures,) = daily.values()
        assert figures["records"] == stats.total.records == 61
        assert figures["decisions"] == stats.total.decisions == 60
        assert figures["gpc"] == stats.total.gpc
        assert figures["action:erase"] == 1
        assert figures["granted:analytics"] == stats.total.granted["analytics"] == 30
        assert figures["asked:analytics"] == 60
        assert await ledger.count_subjects() == 6  # s1 erased
    finally:
        await ledger.close()


async def test_meta_and_access_log(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        await ledger.open()
        assert await ledger.get_meta("last_verify") is None
        await ledger.set_meta("last_verify", "a")
        await ledger.set_meta("last_verify", "b")
        assert await ledger.get_meta("last_verify") == "b"
        await ledger.log_access("alice", "203.0.113.0/24", "GET", "/consent/audit", 200)
        await ledger.log_access(None, None, "GET", "/consent/audit/records", 401)
        log = await ledger.access_log()
        assert [(e["user"], e["status"]) for e in log] == [(None, 401), ("alice", 200)]
    finally:
        await ledger.close()


async def test_a_version_1_sqlite_ledger_gets_its_daily_figures_on_opening(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.db'}"
    ledger = open_ledger(url)
    await asyncio.gather(*(ledger.append(entry(f"s{i}")) for i in range(10)))
    await ledger.close()
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("DROP TABLE consentkit_daily")
    conn.execute("UPDATE consentkit_meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    again = open_ledger(url)
    try:
        (figures,) = (await again.daily()).values()
        assert figures["records"] == 10 and figures["granted:analytics"] == 10
        assert await again.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        await again.close()


async def test_a_version_1_postgres_ledger_is_migrated_on_opening(pg_url):
    import asyncpg
    from conftest import PG_DSN

    ledger = open_ledger(pg_url)
    await asyncio.gather(*(ledger.append(entry(f"s{i}")) for i in range(10)))
    await ledger.close()
    schema = pg_url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP TABLE "{schema}".consentkit_daily, "{schema}".consentkit_audit_log')
        await conn.execute(
            f"UPDATE \"{schema}\".consentkit_meta SET value = '1' WHERE key = 'schema_version'"
        )
    finally:
        await conn.close()
    again = open_ledger(pg_url)
    try:
        (figures,) = (await again.daily()).values()
        assert figures["records"] == 10 and figures["granted:analytics"] == 10
        assert await again.get_meta("schema_version") == str(SCHEMA_VERSION)
        await again.log_access("alice", None, "GET", "/consent/audit", 200)
    finally:
        await again.close()


async def test_writers_of_several_processes_racing_for_the_first_record(any_ledger_url):
    """Two ledgers (as two app processes would have) append at once to a brand-new ledger."""
    for _ in range(3):  # the race is at the very first commit: try a few fresh starts
        first, second = open_ledger(any_ledger_url), open_ledger(any_ledger_url)
        try:
            await asyncio.gather(first.open(), second.open())
            results = await asyncio.gather(
                *(ledger.append(entry(f"s{i}")) for i in range(40) for ledger in (first, second)),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            assert failures == [], failures[:3]
            assert (await first.verify()).ok
        finally:
            await first.close()
            await second.close()
