"""``verify`` covers what the auditor is shown beside the records, on both backends: policy texts,
shown contents, per-day figures, de-identified records and the desk's last verification."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import decide, make_app
from http_helpers import serve

from consentkit.ledger.coverage import check_coverage
from consentkit.ledger.verify import ChainVerifier

sys.path.insert(0, str(Path(__file__).parent.parent))
from test_cli_proofs import raw


@pytest.fixture
async def kit_on(make_kit, any_ledger_url):
    """A kit whose ledger holds the decisions of a few visitors, two languages, one erasure."""
    kit = make_kit(ledger=any_ledger_url)
    async with serve(make_app(kit), kit) as c:
        for i, (action, language) in enumerate(
            [("accept_all", "en"), ("reject_all", "fr"), ("accept_all", "en"), ("withdraw", "en")]
        ):
            if i != 3:  # the last one withdraws the third visitor's consent
                c.cookies.clear()
            await decide(c, action, headers={"accept-language": language})
        await kit.record("customer-1", {"sms_marketing": True})
        await kit.ledger.erase("customer-1")
        yield kit, any_ledger_url


async def problems(kit) -> list[str]:
    verifier = ChainVerifier()
    await kit.ledger.feed_verifier(verifier)
    report = verifier.report()
    assert report.ok, report.problem
    return await check_coverage(kit.ledger, report.erased, verifier.groups)


async def test_an_honest_ledger_is_covered_with_its_erasure_accounted_for(kit_on):
    kit, _ = kit_on
    assert (await kit.ledger.verify()).erased == 1
    assert await problems(kit) == []


@pytest.mark.parametrize(
    ("statement", "found"),
    [
        (
            ("UPDATE consentkit_policies SET policy = replace(policy, 'Analytics', 'Statistics')", [()]),
            "stored policy text",
        ),
        (("DELETE FROM consentkit_policies", [()]), "policy text(s) the ledger does not hold"),
        (
            ("UPDATE consentkit_shown SET content = replace(content, 'Tout refuser', 'Refuser')", [()]),
            "stored shown content",
        ),
        (("DELETE FROM consentkit_shown", [()]), "shown content(s) the ledger does not hold"),
        (
            ("UPDATE consentkit_daily SET count = count + 1 WHERE metric = ?", [("granted:analytics",)]),
            "per-day figure granted:analytics",
        ),
        (("DELETE FROM consentkit_daily WHERE metric = ?", [("action:reject_all",)]), "action:reject_all"),
    ],
    ids=[
        "policy-edited",
        "policy-deleted",
        "shown-edited",
        "shown-deleted",
        "figure-raised",
        "figure-deleted",
    ],
)
async def test_each_edit_of_what_the_auditor_is_shown_is_found(kit_on, statement, found):
    kit, url = kit_on
    raw(url, statement)
    found_problems = await problems(kit)
    assert len(found_problems) == 1 and found in found_problems[0], found_problems


async def test_personal_fields_removed_without_an_erasure_are_found(kit_on):
    kit, url = kit_on
    raw(
        url,
        ("DELETE FROM consentkit_pii_salts WHERE seq = ?", [(2,)]),
        (
            "UPDATE consentkit_ledger SET subject_id = NULL, ip_prefix = NULL, user_agent = NULL, "
            "evidence = NULL WHERE seq = ?",
            [(2,)],
        ),
    )
    (problem,) = await problems(kit)
    assert "2 records are de-identified but erase records account for 1" in problem


async def test_the_desks_last_verification_must_name_a_head_the_chain_has(kit_on):
    kit, _ = kit_on
    report = await kit.ledger.verify()
    honest = {"at": "2026-12-03T08:00:00Z", "ok": True, "records": report.records, "head": report.head_hash}
    await kit.ledger.set_meta("last_verify", json.dumps(honest))
    assert await problems(kit) == []
    await kit.ledger.set_meta("last_verify", json.dumps({**honest, "head": "f" * 64}))
    (problem,) = await problems(kit)
    assert "last verification names head ffffffffffffffff" in problem
