"""The ledger's hash chain on a real SQLite file: appends verify, any tampering is found at its seq."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sqlite3

import pytest
from unit_helpers import new_record, tamper

from consentkit import ConfigurationError, ConsentKit, LedgerCorrupt
from consentkit.ledger import open_ledger
from consentkit.ledger.records import GENESIS_HASH
from consentkit.ledger.sqlite import SQLiteLedger

N = 5


@pytest.fixture
async def ledger(ledger_url):
    lg = open_ledger(ledger_url)
    yield lg
    await lg.close()


async def fill(ledger, policy, n: int = N):
    """``n`` varied records, through the public API. Record 2 has an address and a user agent,
    record 4 has evidence, record 3 was decided under GPC."""
    made = []
    for i in range(1, n + 1):
        extra = {}
        if i == 2:
            extra = {"ip_prefix": "203.0.113.0/24", "user_agent": 'Mozilla/5.0 "quoted" é'}
        if i == 3:
            extra = {"gpc": True}
        if i == 4:
            extra = {"method": "api", "evidence": {"form": "sms-optin-v2", "checked": True}}
        made.append(
            await ledger.append(
                new_record(
                    policy,
                    subject_id=f"subject-{i % 2}",
                    action="record" if i == 4 else "save",
                    purposes={"necessary": True, "analytics": i % 2 == 0, "ads": False},
                    **extra,
                )
            )
        )
    return made


async def stored(ledger):
    return [r async for r in ledger.records()]


# -- untampered -------------------------------------------------------------------------------


async def test_empty_ledger_verifies(ledger):
    report = await ledger.verify()
    assert report.ok is True
    assert report.records == 0
    assert report.head_hash == GENESIS_HASH
    assert report.first_bad_seq is None


async def test_appended_records_verify_and_chain(ledger, policy):
    made = await fill(ledger, policy)
    assert [r.seq for r in made] == list(range(1, N + 1))
    assert made[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(made):
        assert after.prev_hash == before.hash
        assert after.recorded_at >= before.recorded_at
    report = await ledger.verify()
    assert report.ok is True
    assert report.records == N
    assert report.head_hash == made[-1].hash
    assert report.first_bad_seq is None and report.problem is None
    assert report.erased == 0


async def test_records_read_back_as_appended(ledger, policy):
    made = await fill(ledger, policy)
    back = await stored(ledger)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in made]
    assert back[1].ip_prefix == "203.0.113.0/24"
    assert back[1].user_agent == 'Mozilla/5.0 "quoted" é'
    assert back[2].gpc is True
    assert back[3].evidence == {"form": "sms-optin-v2", "checked": True}
    assert back[0].purposes == {"necessary": True, "analytics": False, "ads": False}
    assert len(made[0].receipt) == 16 and made[0].hash.startswith(made[0].receipt)
    history = await ledger.history("subject-0")
    assert [r.seq for r in history] == [2, 4]


async def test_policy_text_is_kept_and_matches_its_digest(ledger, policy):
    await fill(ledger, policy, 2)
    text = await ledger.policy_text(policy.digest)
    assert text is not None
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == policy.digest
    assert json.loads(text)["controller"] == policy.controller
    assert await ledger.policy_text("0" * 64) is None


async def test_reopened_ledger_continues_the_chain(ledger_path, policy):
    first = SQLiteLedger(ledger_path)
    made = await fill(first, policy, 3)
    await first.close()
    second = open_ledger(f"sqlite:///{ledger_path}")
    try:
        more = await second.append(new_record(policy, subject_id="later"))
        assert more.seq == 4
        assert more.prev_hash == made[-1].hash
        report = await second.verify()
        assert report.ok and report.records == 4
    finally:
        await second.close()


async def test_concurrent_appends_build_one_chain(ledger, policy):
    made = await asyncio.gather(*(ledger.append(new_record(policy, subject_id=f"s{i}")) for i in range(40)))
    assert sorted(r.seq for r in made) == list(range(1, 41))
    assert len({r.event_id for r in made}) == 40
    report = await ledger.verify()
    assert report.ok and report.records == 40
    by_seq = {r.seq: r.hash for r in await stored(ledger)}
    assert all(by_seq[r.seq] == r.hash for r in made)


async def test_kit_record_goes_into_the_chain(make_kit, policy):
    kit: ConsentKit = make_kit()
    try:
        rec = await kit.record(
            "customer-42", {"sms_marketing": True}, evidence={"script": "Reply YES to receive offers"}
        )
        assert rec.action == "record" and rec.method == "api"
        assert rec.policy_digest == policy.digest
        report = await kit.ledger.verify()
        assert report.ok and report.records == 1 and report.head_hash == rec.hash
    finally:
        await kit.aclose()


# -- tampering --------------------------------------------------------------------------------

L = "consentkit_ledger"

TAMPERING = [
    pytest.param(
        [f"""UPDATE {L} SET purposes='{{"ads":true,"analytics":true,"necessary":true}}' WHERE seq=3"""],
        3,
        "hash",
        id="purposes-changed",
    ),
    pytest.param(
        [f"UPDATE {L} SET purposes=replace(purposes, 'false', 'true') WHERE seq=5"],
        5,
        "hash",
        id="last-purposes",
    ),
    pytest.param(
        [f"UPDATE {L} SET subject_id='someone-else' WHERE seq=3"], 3, "personal", id="subject-changed"
    ),
    pytest.param([f"UPDATE {L} SET subject_id=NULL WHERE seq=3"], 3, "personal", id="subject-removed"),
    pytest.param([f"UPDATE {L} SET ip_prefix='198.51.100.0/24' WHERE seq=2"], 2, "personal", id="ip-changed"),
    pytest.param(
        [f"UPDATE {L} SET user_agent='curl/8.0' WHERE seq=2"], 2, "personal", id="user-agent-changed"
    ),
    pytest.param([f"UPDATE {L} SET user_agent='curl/8.0' WHERE seq=1"], 1, "personal", id="user-agent-added"),
    pytest.param(
        [f"""UPDATE {L} SET evidence='{{"checked":false,"form":"sms-optin-v2"}}' WHERE seq=4"""],
        4,
        "personal",
        id="evidence-changed",
    ),
    pytest.param([f"UPDATE {L} SET action='accept_all' WHERE seq=3"], 3, "hash", id="action-changed"),
    pytest.param([f"UPDATE {L} SET action='hacked' WHERE seq=3"], 3, "action", id="action-unknown"),
    pytest.param([f"UPDATE {L} SET method='api' WHERE seq=3"], 3, "hash", id="method-changed"),
    pytest.param([f"UPDATE {L} SET gpc=0 WHERE seq=3"], 3, "hash", id="gpc-flag-removed"),
    pytest.param([f"UPDATE {L} SET locale='fr' WHERE seq=2"], 2, "hash", id="locale-changed"),
    pytest.param([f"UPDATE {L} SET policy_revision=2 WHERE seq=2"], 2, "hash", id="revision-changed"),
    pytest.param([f"UPDATE {L} SET policy_version='x' WHERE seq=2"], 2, "hash", id="version-changed"),
    pytest.param([f"UPDATE {L} SET policy_digest=hash WHERE seq=2"], 2, "hash", id="digest-changed"),
    pytest.param(
        [f"UPDATE {L} SET event_id='00000000-0000-0000-0000-000000000000' WHERE seq=2"],
        2,
        "hash",
        id="event-id",
    ),
    pytest.param(
        [f"UPDATE {L} SET pii_digest=prev_hash WHERE seq=2"], 2, "personal", id="pii-digest-changed"
    ),
    pytest.param([f"UPDATE {L} SET hash=prev_hash WHERE seq=3"], 3, "hash", id="hash-changed"),
    pytest.param([f"UPDATE {L} SET hash='{'f' * 64}' WHERE seq={N}"], N, "hash", id="head-hash-changed"),
    pytest.param(
        [f"UPDATE {L} SET prev_hash='{'0' * 64}' WHERE seq=3"], 3, "prev_hash", id="prev-hash-changed"
    ),
    pytest.param(
        [f"DELETE FROM {L} WHERE seq=3", "DELETE FROM consentkit_pii_salts WHERE seq=3"],
        3,
        "missing",
        id="middle-row-deleted",
    ),
    pytest.param(
        [f"DELETE FROM {L} WHERE seq=1", "DELETE FROM consentkit_pii_salts WHERE seq=1"],
        1,
        "missing",
        id="first-row-deleted",
    ),
    pytest.param(
        [
            f"DELETE FROM {L} WHERE seq=3",
            "DELETE FROM consentkit_pii_salts WHERE seq=3",
            f"UPDATE {L} SET seq=3 WHERE seq=4",
            "UPDATE consentkit_pii_salts SET seq=3 WHERE seq=4",
            f"UPDATE {L} SET seq=4 WHERE seq=5",
            "UPDATE consentkit_pii_salts SET seq=4 WHERE seq=5",
        ],
        3,
        "prev_hash",
        id="middle-row-deleted-and-renumbered",
    ),
    pytest.param(
        [
            f"UPDATE {L} SET seq=-2 WHERE seq=2",
            "UPDATE consentkit_pii_salts SET seq=-2 WHERE seq=2",
            f"UPDATE {L} SET seq=2 WHERE seq=3",
            "UPDATE consentkit_pii_salts SET seq=2 WHERE seq=3",
            f"UPDATE {L} SET seq=3 WHERE seq=-2",
            "UPDATE consentkit_pii_salts SET seq=3 WHERE seq=-2",
        ],
        2,
        "prev_hash",
        id="rows-2-and-3-swapped",
    ),
    pytest.param(
        [f"UPDATE {L} SET recorded_at='2000-01-01T00:00:00.000Z' WHERE seq=4"],
        4,
        "recorded_at",
        id="recorded-at-backwards",
    ),
    pytest.param(
        [f"UPDATE {L} SET recorded_at='2999-01-01T00:00:00.000Z' WHERE seq=2"],
        2,
        "hash",
        id="recorded-at-forwards",
    ),
    pytest.param(
        [f"UPDATE {L} SET shown_digest='{'a' * 64}' WHERE seq=2"], 2, "hash", id="shown-digest-added"
    ),
    pytest.param(["DELETE FROM consentkit_pii_salts WHERE seq=2"], 2, "salt", id="salt-deleted"),
    pytest.param(
        ["UPDATE consentkit_pii_salts SET salt=zeroblob(32) WHERE seq=2"], 2, "personal", id="salt-changed"
    ),
    pytest.param(
        [
            f"INSERT INTO {L} SELECT seq + 1, event_id || '-copy', recorded_at, subject_id, action, "
            "purposes, method, policy_revision, policy_version, policy_digest, locale, ip_prefix, "
            f"user_agent, gpc, evidence, pii_digest, prev_hash, hash, shown_digest, region, model FROM {L} WHERE seq={N}",
            f"INSERT INTO consentkit_pii_salts SELECT seq + 1, salt FROM consentkit_pii_salts WHERE seq={N}",
        ],
        N + 1,
        "prev_hash",
        id="record-replayed-at-the-end",
    ),
]


@pytest.mark.parametrize(("statements", "bad_seq", "word"), TAMPERING)
async def test_tampering_is_found_at_the_first_bad_seq(
    ledger, ledger_path, policy, statements, bad_seq, word
):
    await fill(ledger, policy)
    assert (await ledger.verify()).ok
    assert tamper(ledger_path, *statements) > 0
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == bad_seq
    assert report.records == bad_seq - 1  # every record before the first bad one verified
    assert word in report.problem


async def test_deleted_rows_are_named_in_the_problem(ledger, ledger_path, policy):
    await fill(ledger, policy)
    tamper(ledger_path, f"DELETE FROM {L} WHERE seq IN (2, 3)")
    report = await ledger.verify()
    assert report.first_bad_seq == 2  # the first record missing
    assert "2..3" in report.problem


async def test_appending_after_tampering_does_not_repair_the_chain(ledger, ledger_path, policy):
    await fill(ledger, policy)
    tamper(ledger_path, f"UPDATE {L} SET subject_id='someone-else' WHERE seq=2")
    await ledger.append(new_record(policy, subject_id="after"))
    report = await ledger.verify()
    assert report.ok is False and report.first_bad_seq == 2


async def test_erasing_personal_fields_with_their_salt_still_verifies(ledger, ledger_path, policy):
    # Crypto-shredding as designed: personal fields and the salt go, the digest stays.
    await fill(ledger, policy)
    tamper(
        ledger_path,
        f"UPDATE {L} SET subject_id=NULL, ip_prefix=NULL, user_agent=NULL, evidence=NULL WHERE seq=2",
        "DELETE FROM consentkit_pii_salts WHERE seq=2",
    )
    report = await ledger.verify()
    assert report.ok is True
    assert report.records == N
    assert report.erased == 1


async def test_half_erased_record_does_not_verify(ledger, ledger_path, policy):
    await fill(ledger, policy)
    tamper(
        ledger_path,
        f"UPDATE {L} SET subject_id=NULL WHERE seq=2",  # the address and user agent are left
        "DELETE FROM consentkit_pii_salts WHERE seq=2",
    )
    report = await ledger.verify()
    assert report.ok is False and report.first_bad_seq == 2


# -- files that are not ledgers ---------------------------------------------------------------


async def test_sqlite_file_with_foreign_tables_is_refused(tmp_path, policy):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.commit()
    conn.close()
    lg = open_ledger(f"sqlite:///{path}")
    try:
        with pytest.raises(LedgerCorrupt) as info:
            await lg.open()
        assert str(path) in str(info.value)
        assert "users" in str(info.value)
        with pytest.raises(LedgerCorrupt):
            await lg.append(new_record(policy))
        with pytest.raises(LedgerCorrupt):
            await lg.verify()
    finally:
        await lg.close()
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"users"}  # nothing was added to the site's database


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a database\n" * 200, bytes(range(256)) * 64],
    ids=["text", "binary"],
)
async def test_non_sqlite_file_is_refused_and_left_alone(tmp_path, policy, content):
    path = tmp_path / "ledger.db"
    path.write_bytes(content)
    lg = open_ledger(f"sqlite:///{path}")
    try:
        with pytest.raises(LedgerCorrupt) as info:
            await lg.open()
        assert str(path) in str(info.value)
        with pytest.raises(LedgerCorrupt):
            await lg.append(new_record(policy))
    finally:
        await lg.close()
    assert path.read_bytes() == content


async def test_ledger_from_a_newer_consentkit_is_refused(ledger_path, policy):
    first = SQLiteLedger(ledger_path)
    await fill(first, policy, 1)
    await first.close()
    tamper(ledger_path, "UPDATE consentkit_meta SET value='99' WHERE key='schema_version'")
    lg = SQLiteLedger(ledger_path)
    try:
        with pytest.raises(LedgerCorrupt, match="upgrade"):
            await lg.open()
    finally:
        await lg.close()


# -- ledger URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///",
        "sqlite://relative.db",
        "mysql://user@127.0.0.1/consent",
        "file:///tmp/ledger.db",
        "consent-ledger.db",
        "",
    ],
)
def test_bad_ledger_urls_are_configuration_errors(url):
    with pytest.raises(ConfigurationError) as info:
        open_ledger(url)
    assert "sqlite:///" in str(info.value)  # says what a good URL looks like


def test_ledger_must_be_a_url_or_a_ledger():
    with pytest.raises(ConfigurationError):
        open_ledger(42)  # type: ignore[arg-type]


def test_kit_with_in_memory_ledger_fails_at_construction(policy):
    with pytest.raises(ConfigurationError, match="memory"):
        ConsentKit(policy=policy, secret_keys=["x" * 32], ledger="sqlite:///:memory:")


async def test_relative_and_absolute_sqlite_urls(tmp_path, monkeypatch, policy):
    monkeypatch.chdir(tmp_path)
    rel = open_ledger("sqlite:///relative.db")
    absolute = open_ledger(f"sqlite:///{tmp_path / 'absolute.db'}")
    try:
        await rel.append(new_record(policy))
        await absolute.append(new_record(policy))
    finally:
        await rel.close()
        await absolute.close()
    assert (tmp_path / "relative.db").is_file()
    assert (tmp_path / "absolute.db").is_file()


async def test_open_ledger_passes_a_ledger_through(ledger):
    assert open_ledger(ledger) is ledger


# -- values of the wrong type (SQLite stores whatever it is given) ----------------------------


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {L} SET policy_revision='one' WHERE seq=2",
        "UPDATE consentkit_pii_salts SET salt='a text salt' WHERE seq=2",
    ],
    ids=["text-revision", "text-salt"],
)
async def test_wrong_typed_value_is_reported_not_raised(ledger, ledger_path, policy, statement):
    await fill(ledger, policy)
    tamper(ledger_path, statement)
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == 2


async def test_fractional_revision_is_tampering(ledger, ledger_path, policy):
    await fill(ledger, policy)
    tamper(ledger_path, f"UPDATE {L} SET policy_revision=1.9 WHERE seq=2")
    assert [r.policy_revision for r in await stored(ledger)][1] == 1.9  # what an export shows
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == 2
