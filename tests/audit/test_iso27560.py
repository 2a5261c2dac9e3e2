"""``consentkit export --format iso27560``: ISO/IEC TS 27560 consent records, one JSON per line.

Ledgers are made through the ledger API (and erased through the CLI), on SQLite and PostgreSQL,
and read back the way an auditor does: the command line and the desk's download.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import BASE, make_app, run_sync
from server_helpers import run_cli
from unit_helpers import NUMBERED_POLICY_DIGEST, append_many, new_record, tamper

from consentkit.audit import hash_password
from consentkit.audit.export import write_export
from consentkit.audit.iso27560 import SCHEMA_VERSION
from consentkit.cli import main
from consentkit.ledger import LedgerRecord, NewRecord, RecordFilter, open_ledger

UA = 'Mozilla/5.0 (X11; Linux) "quoted", é 漢字'
EVIDENCE = {"form": "checkout", "text": "Send me offers by SMS", "checked": True}


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def lines(text: str) -> list[dict[str, Any]]:
    """Every line of an export, each parsed on its own: one JSON object per line, nothing else."""
    assert text.endswith("\n")
    out = []
    for line in text.split("\n")[:-1]:
        record = json.loads(line)
        assert isinstance(record, dict)
        out.append(record)
    return out


def iso_export(url: str, *options: str) -> list[dict[str, Any]]:
    result = run("export", "--ledger", url, "--format", "iso27560", *options)
    assert result.exit_code == 0, result.output
    return lines(result.stdout)


def unknown_policy_record(subject: str) -> NewRecord:
    """A record whose policy text the ledger never received (an integration that omits it)."""
    return NewRecord(
        subject_id=subject,
        action="accept_all",
        purposes={"necessary": True, "analytics": True},
        method="banner",
        policy_revision=9,
        policy_version="legacy",
        policy_digest="d" * 64,
        locale="en",
    )


@pytest.fixture
def made(any_ledger_url: str, policy) -> list[LedgerRecord]:
    """Seven records on a fresh ledger of either backend, each kind a site makes."""
    entries = [
        new_record(
            policy,
            "subject-a",
            "save",
            {"necessary": True, "analytics": True, "ads": False},
            locale="fr",
            ip_prefix="203.0.113.0/24",
            user_agent=UA,
        ),
        new_record(
            policy, "subject-b", "accept_all", {"necessary": True, "analytics": True, "ads": True}, gpc=True
        ),
        new_record(policy, "subject-c", "reject_all", {"necessary": True, "analytics": False, "ads": False}),
        new_record(
            policy,
            "subject-a",
            "withdraw",
            {"necessary": True, "analytics": False, "ads": False},
            method="preferences",
        ),
        new_record(policy, "customer-1", "record", {"sms_marketing": True}, method="api", evidence=EVIDENCE),
        new_record(policy, "customer-1", "withdraw", {"sms_marketing": False}, method="operator"),
        unknown_policy_record("subject-d"),
    ]

    async def fill() -> list[LedgerRecord]:
        ledger = open_ledger(any_ledger_url)
        try:
            return [await ledger.append(entry) for entry in entries]
        finally:
            await ledger.close()

    return run_sync(fill())


def by_state(record: dict[str, Any]) -> dict[str, list[str]]:
    return {event["event_state"]: event["purposes"] for event in record["events"]}


# -- the records ---------------------------------------------------------------------------------


def test_every_record_is_one_line_in_seq_order(made, any_ledger_url):
    records = iso_export(any_ledger_url)
    assert [r["ledger"]["seq"] for r in records] == [m.seq for m in made]
    assert [r["header"]["record_id"] for r in records] == [m.event_id for m in made]
    assert [r["ledger"]["hash"] for r in records] == [m.hash for m in made]
    for record in records:
        assert list(record) == [
            "header",
            "processing",
            *(["parties"] if "parties" in record else []),
            "events",
            "ledger",
        ]
        assert record["header"]["schema_version"] == SCHEMA_VERSION


def test_the_export_filters_like_the_others(made, any_ledger_url):
    records = iso_export(any_ledger_url, "--subject", "customer-1")
    assert [r["ledger"]["seq"] for r in records] == [5, 6]
    assert {r["header"]["pii_principal_id"] for r in records} == {"customer-1"}
    assert [r["ledger"]["seq"] for r in iso_export(any_ledger_url, "--action", "withdraw")] == [4, 6]


def test_a_banner_decision_names_its_notice_purposes_controller_and_events(made, any_ledger_url, policy):
    first = iso_export(any_ledger_url)[0]
    assert first["header"] == {
        "schema_version": SCHEMA_VERSION,
        "record_id": made[0].event_id,
        "pii_principal_id": "subject-a",
    }
    processing = first["processing"]
    assert processing["privacy_notice"] == {
        "policy_digest": policy.digest,
        "policy_revision": policy.revision,
        "policy_version": policy.version,
        "url": policy.privacy_url,
    }
    assert processing["language"] == "fr"
    # Titles and descriptions in the language the visitor was shown; the essential purpose is
    # listed but is not a consent.
    purposes = {p["purpose_id"]: p for p in processing["purposes"]}
    assert purposes["analytics"] == {
        "purpose_id": "analytics",
        "purpose": "Mesure d'audience",
        "description": "Mesure agrégée de la fréquentation pour améliorer le site.",
        "lawful_basis": "dpv:Consent",
        "pii_controllers": ["controller"],
    }
    assert purposes["ads"]["purpose"] == "Publicité ciblée"
    assert purposes["necessary"]["essential"] is True and "lawful_basis" not in purposes["necessary"]
    assert first["parties"] == [
        {
            "party_id": "controller",
            "party_name": policy.controller,
            "party_role": "dpv:DataController",
            "party_contact": policy.contact,
        }
    ]
    # One event per state the decision leaves purposes in; the essential purpose has none.
    assert by_state(first) == {"dpv:ConsentGiven": ["analytics"], "dpv:ConsentRefused": ["ads"]}
    for event in first["events"]:
        assert event["event_time"] == made[0].recorded_at
        assert event["validity_duration"] == f"P{policy.consent_lifetime_days}D"
        assert event["entity_id"] == "subject-a"
        assert event["event_type"] == "dpv:ExpressedConsent"
        assert event["indication_method"] == "banner"
    assert first["ledger"] == {
        "seq": 1,
        "action": "save",
        "gpc": False,
        "hash": made[0].hash,
        "ip_prefix": "203.0.113.0/24",
        "user_agent": UA,
    }


def test_each_action_leaves_its_consent_state(made, any_ledger_url):
    records = iso_export(any_ledger_url)
    assert by_state(records[1]) == {"dpv:ConsentGiven": ["ads", "analytics"]}
    assert records[1]["ledger"]["gpc"] is True
    assert by_state(records[2]) == {"dpv:ConsentRefused": ["ads", "analytics"]}
    assert by_state(records[3]) == {"dpv:ConsentWithdrawn": ["ads", "analytics"]}
    assert records[3]["events"][0]["indication_method"] == "preferences"
    # A withdrawal kit.record took down (an operator on the phone): the person's act, but not a
    # banner click, and it does not lapse with a cookie.
    assert records[5]["events"] == [
        {
            "event_time": records[5]["events"][0]["event_time"],
            "entity_id": "customer-1",
            "event_state": "dpv:ConsentWithdrawn",
            "indication_method": "operator",
            "purposes": ["sms_marketing"],
        }
    ]


def test_a_recorded_consent_keeps_its_evidence_and_claims_no_lifetime(made, any_ledger_url):
    record = iso_export(any_ledger_url)[4]
    assert record["processing"]["purposes"] == [
        # Not a purpose of the policy: no title to give, but asked for, so consent is its basis.
        {"purpose_id": "sms_marketing", "lawful_basis": "dpv:Consent", "pii_controllers": ["controller"]}
    ]
    (event,) = record["events"]
    # kit.record's consents do not lapse with the cookie, and the ledger does not say how they
    # were expressed: no validity_duration, no event_type.
    assert event == {
        "event_time": made[4].recorded_at,
        "entity_id": "customer-1",
        "event_state": "dpv:ConsentGiven",
        "indication_method": "api",
        "purposes": ["sms_marketing"],
    }
    assert record["ledger"]["evidence"] == EVIDENCE


def test_without_the_policy_text_only_what_the_record_holds_is_exported(made, any_ledger_url):
    record = iso_export(any_ledger_url)[6]
    assert "parties" not in record
    assert record["processing"]["privacy_notice"] == {
        "policy_digest": "d" * 64,
        "policy_revision": 9,
        "policy_version": "legacy",
    }
    assert record["processing"]["purposes"] == [{"purpose_id": "analytics"}, {"purpose_id": "necessary"}]
    (event,) = record["events"]
    assert "validity_duration" not in event and event["event_state"] == "dpv:ConsentGiven"


# -- erasure -----------------------------------------------------------------------------------------


def test_an_erased_subject_is_exported_without_its_personal_fields(made, any_ledger_url):
    erased = run("erase", "--ledger", any_ledger_url, "--subject", "subject-a", "--yes")
    assert erased.exit_code == 0, erased.output
    result = run("export", "--ledger", any_ledger_url, "--format", "iso27560")
    assert result.exit_code == 0, result.output
    assert "subject-a" not in result.stdout and "203.0.113.0" not in result.stdout and UA not in result.stdout
    records = lines(result.stdout)
    assert len(records) == len(made) + 1  # and the erasure's own record
    for record in (records[0], records[3]):
        assert "pii_principal_id" not in record["header"]
        assert all("entity_id" not in event for event in record["events"])
        assert set(record["ledger"]) == {"seq", "action", "gpc", "hash"}
        # What is not personal stays: the decision, its time, the notice.
        assert record["events"] and record["processing"]["purposes"]
    assert by_state(records[0]) == {"dpv:ConsentGiven": ["analytics"], "dpv:ConsentRefused": ["ads"]}
    erasure = records[-1]
    assert "pii_principal_id" not in erasure["header"]
    assert erasure["processing"]["purposes"] == [] and erasure["events"] == []
    assert erasure["ledger"]["action"] == "erase" and erasure["ledger"]["evidence"] == {"erased_records": 2}
    # The others are untouched.
    assert records[1]["header"]["pii_principal_id"] == "subject-b"


# -- the command line ------------------------------------------------------------------------------


def test_the_format_is_listed_and_a_wrong_one_is_a_usage_error(made, any_ledger_url):
    assert "iso27560" in run("export", "--help").stdout
    result = run("export", "--ledger", any_ledger_url, "--format", "iso-27560")
    assert result.exit_code == 2
    assert "--format" in result.stderr and "iso27560" in result.stderr
    assert result.stdout == ""


def test_a_missing_ledger_is_a_clear_error(tmp_path):
    result = run("export", "--ledger", f"sqlite:///{tmp_path / 'none.db'}", "--format", "iso27560")
    assert result.exit_code == 1
    assert "there is no ledger" in result.stderr and result.stdout == ""


def test_the_export_streams_page_by_page_reading_each_policy_once(ledger_url, policy):
    # More records than a page (2,000 on SQLite), under two policies: the site's and the
    # numbered records' stand-in.
    reads: list[str] = []

    async def go() -> tuple[str, int]:
        ledger = open_ledger(ledger_url)
        try:
            await append_many(ledger, 2300)
            for i in range(3):
                await ledger.append(new_record(policy, f"late-{i}", "accept_all"))

            async def policy_text(digest: str) -> str | None:
                reads.append(digest)
                return await ledger.policy_text(digest)

            out = io.StringIO()
            count = await write_export(
                ledger.row_pages(RecordFilter()), "iso27560", out, policy_text=policy_text
            )
            return out.getvalue(), count
        finally:
            await ledger.close()

    text, count = asyncio.run(go())
    records = lines(text)
    assert count == len(records) == 2303
    assert [r["ledger"]["seq"] for r in records] == list(range(1, 2304))
    assert sorted(reads) == sorted([NUMBERED_POLICY_DIGEST, policy.digest])  # once each, not per row or page
    assert records[-1]["parties"][0]["party_name"] == policy.controller


# -- the desk --------------------------------------------------------------------------------------


async def test_the_desk_downloads_the_same_records_as_the_cli(make_kit, ledger_url):
    kit = make_kit(audit_users={"alice": hash_password("correct horse battery staple")})
    auth = httpx.BasicAuth("alice", "correct horse battery staple")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(kit)), base_url=BASE) as client:
        for action in ("accept_all", "reject_all"):
            r = await client.post("/consent", json={"action": action}, headers={"origin": BASE})
            assert r.status_code == 200
            client.cookies.clear()
        r = await client.get("/consent/audit/export?format=iso27560", auth=auth)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert r.headers["content-disposition"].endswith('.iso27560.jsonl"')
        bad = await client.get("/consent/audit/export?format=iso", auth=auth)
        assert bad.status_code == 400 and "iso27560" in bad.text
    await kit.aclose()
    # The command itself (an event loop of its own: this test runs in one already).
    cli = run_cli("export", "--ledger", ledger_url, "--format", "iso27560")
    assert cli.returncode == 0, cli.stderr
    assert r.text == cli.stdout
    records = lines(r.text)
    assert [by_state(rec) for rec in records] == [
        {"dpv:ConsentGiven": ["ads", "analytics"]},
        {"dpv:ConsentRefused": ["ads", "analytics"]},
    ]
    assert all(rec["parties"][0]["party_name"] == kit.policy.controller for rec in records)


def test_a_tampered_ledger_still_exports_valid_json(ledger_url, ledger_path, policy):
    # Export is not verification (consentkit verify is): an auditor still reads what is there.
    async def fill() -> None:
        ledger = open_ledger(ledger_url)
        try:
            await ledger.append(new_record(policy, "subject-a", "save", evidence={"form": "x"}, method="api"))
            await ledger.append(new_record(policy, "subject-b", "save"))
        finally:
            await ledger.close()

    asyncio.run(fill())
    tamper(ledger_path, "UPDATE consentkit_ledger SET purposes='{oops', evidence='not json' WHERE seq=1")
    records = iso_export(ledger_url)
    assert [r["ledger"]["seq"] for r in records] == [1, 2]
    assert records[0]["processing"]["purposes"] == [] and records[0]["events"] == []
    assert records[0]["ledger"]["evidence"] == "not json"
    assert by_state(records[1]) == {"dpv:ConsentGiven": ["analytics"], "dpv:ConsentRefused": ["ads"]}
