"""Stored rows (``RecordRow``) and the writing both backends share, on each backend."""

from __future__ import annotations

import asyncio

import pytest

from consentkit import LedgerUnavailable, SubjectNotFound, open_ledger
from consentkit.ledger import NewRecord
from consentkit.ledger.queries import RecordFilter, select_records
from consentkit.ledger.records import EXPORT_FIELDS, LedgerRecord, RecordPage, RecordRow


def entry(subject: str | None = "alice", digest: str = "d" * 64, **kw) -> NewRecord:
    return NewRecord(
        subject_id=subject,
        action=kw.pop("action", "accept_all"),
        purposes={"necessary": True, "analytics": True},
        method="banner",
        policy_revision=1,
        policy_version="2026-11-01",
        policy_digest=digest,
        locale="en",
        ip_prefix="203.0.113.0/24",
        user_agent="Mozilla/5.0",
        policy_json=f'{{"policy":"{digest[:4]}"}}',
        **kw,
    )


def test_export_fields_are_the_documented_storage_order():
    # The CSV header, the JSON Lines keys and the ledger table's columns: never reordered.
    assert EXPORT_FIELDS == (
        "seq", "event_id", "recorded_at", "subject_id", "action", "purposes", "method",
        "policy_revision", "policy_version", "policy_digest", "locale", "ip_prefix", "user_agent",
        "gpc", "evidence", "pii_digest", "prev_hash", "hash", "shown_digest", "region", "model",
    )  # fmt: skip
    assert RecordRow._fields == (*EXPORT_FIELDS, "salt")
    assert issubclass(RecordRow, tuple)  # positional readers keep working


def test_a_page_of_a_range_starts_where_the_last_page_ended():
    """SQLite scans a rowid range from the first lower bound on seq in the query: the keyset
    condition must come before a range's own bounds, or every page of a parallel verification
    would be read from the range's start again (a million records: 50 times slower)."""
    sql, params = select_records(RecordFilter(first_seq=100, last_seq=200), keyset=True)
    where = sql.split(" WHERE ", 1)[1]
    assert where.startswith("l.seq > ? AND ") and "l.seq >= ?" in where
    assert params == [100, 200]  # the caller passes the keyset's value before these


def test_a_page_reads_the_drivers_rows_as_record_rows():
    page = RecordPage([tuple(range(22)), tuple(range(100, 122))])
    assert len(page) == 2
    assert page[1].seq == 100 and page[-1].salt == 121 and type(page[0]) is RecordRow
    assert [row.hash for row in page] == [17, 117]
    assert page[:1] == [RecordRow(*range(22))]


async def test_row_pages_are_named_rows_that_make_the_same_records(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        made = [await ledger.append(entry(f"s{i}", gpc=i == 1, evidence={"n": i})) for i in range(3)]
        rows = [row async for page in ledger.row_pages() for row in page]
        assert all(type(row) is RecordRow for row in rows)
        assert [row.seq for row in rows] == [1, 2, 3]
        assert [row.salt for row in rows] == [None, None, None]  # only read when asked for
        assert rows[1].gpc and not rows[0].gpc
        assert rows[2].evidence == '{"n":2}' and rows[2].purposes == '{"analytics":true,"necessary":true}'
        assert [LedgerRecord.from_row(row) for row in rows] == [
            LedgerRecord.from_row(rec.to_row()._replace(salt=None)) for rec in made
        ]
        salted = [row async for page in ledger.row_pages(with_salts=True) for row in page]
        assert [bytes(row.salt or b"") for row in salted] == [rec.pii_salt for rec in made]
        assert [LedgerRecord.from_row(row) for row in salted] == made
    finally:
        await ledger.close()


async def test_a_rolled_back_batch_leaves_its_new_policy_to_be_stored_again(any_ledger_url):
    """One rule on both backends: a policy counts as stored once the transaction that stored it
    committed, never before (README, "The consent ledger": every policy text is stored once)."""
    ledger = open_ledger(any_ledger_url)
    try:
        first = await ledger.append(entry("alice"))
        # A record whose event id is taken fails its batch after the new policy text was written.
        with pytest.raises(LedgerUnavailable):
            await ledger.append(entry("bob", digest="e" * 64, event_id=first.event_id))
        assert await ledger.policy_text("e" * 64) is None
        await ledger.append(entry("bob", digest="e" * 64))
        assert await ledger.policy_text("e" * 64) == '{"policy":"eeee"}'
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()


async def test_erasing_the_same_subject_twice_at_once_erases_it_once(any_ledger_url):
    ledger = open_ledger(any_ledger_url)
    try:
        for _ in range(3):
            await ledger.append(entry("alice"))
        results = await asyncio.gather(ledger.erase("alice"), ledger.erase("alice"), return_exceptions=True)
        erased = [r for r in results if isinstance(r, LedgerRecord)]
        assert len(erased) == 1 and erased[0].evidence == {"erased_records": 3}
        assert [type(r) for r in results if not isinstance(r, LedgerRecord)] == [SubjectNotFound]
        report = await ledger.verify()
        assert report.ok and report.records == 4 and report.erased == 3
    finally:
        await ledger.close()
