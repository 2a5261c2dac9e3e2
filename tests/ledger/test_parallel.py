"""Parallel verification finds exactly what the one-process verification finds."""

from __future__ import annotations

import asyncio

import pytest
from unit_helpers import new_record, tamper

from consentkit import open_ledger
from consentkit.ledger import parallel

N = 400


@pytest.fixture
def big_ledger(policy, ledger_path, ledger_url, monkeypatch):
    async def fill() -> None:
        ledger = open_ledger(ledger_url)
        try:
            await asyncio.gather(*(ledger.append(new_record(policy, f"s{i}")) for i in range(N)))
        finally:
            await ledger.close()

    asyncio.run(fill())
    # Split even this small ledger into ranges, as a large one would be.
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)
    return ledger_url


def one_process(url):
    async def run():
        ledger = open_ledger(url, create=False)
        try:
            return await ledger.verify()
        finally:
            await ledger.close()

    return asyncio.run(run())


def test_untouched_ledger_verifies_in_parallel(big_ledger):
    report = parallel.verify_parallel(big_ledger, jobs=2)
    assert report.ok and report.records == N
    assert report.head_hash == one_process(big_ledger).head_hash


@pytest.mark.parametrize(
    "statements",
    [
        ["UPDATE consentkit_ledger SET purposes = '{\"ads\":true}' WHERE seq = 157"],
        ["DELETE FROM consentkit_ledger WHERE seq BETWEEN 100 AND 101"],  # at a range boundary
        ["DELETE FROM consentkit_ledger WHERE seq = 250"],
        ["DELETE FROM consentkit_ledger WHERE seq BETWEEN 51 AND 100"],  # a whole range
        ["UPDATE consentkit_ledger SET recorded_at = '2000-01-01T00:00:00.000Z' WHERE seq = 301"],
        ["DELETE FROM consentkit_pii_salts WHERE seq = 399"],
    ],
)
def test_parallel_verification_names_the_same_first_bad_seq(big_ledger, ledger_path, statements):
    tamper(ledger_path, *statements)
    expected = one_process(big_ledger)
    report = parallel.verify_parallel(big_ledger, jobs=2)
    assert not expected.ok
    assert (report.ok, report.first_bad_seq) == (False, expected.first_bad_seq)
