"""Idempotency keys: a decision sent again with its key is answered as the first time and written once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import SAME_ORIGIN, decide, make_app
from http_helpers import all_records, consent_cookie, serve

from consentkit.ledger.transaction import day_before


def key() -> str:
    return str(uuid.uuid4())


async def test_a_retried_decision_is_answered_as_the_first_and_written_once(make_kit, any_ledger_url):
    kit = make_kit(ledger=any_ledger_url)
    k = key()
    async with serve(make_app(kit), kit) as c:
        first = await decide(c, "save", ["analytics"], headers={"idempotency-key": k})
        c.cookies.clear()  # the first answer never reached the visitor: they retry cookieless
        again = await decide(c, "save", ["analytics"], headers={"idempotency-key": f'"{k}"'})
        assert first.status_code == again.status_code == 200
        assert first.json()["receipt"] == again.json()["receipt"]
        assert consent_cookie(again)[0] == consent_cookie(first)[0]  # the same subject and decision
        assert len(await all_records(kit)) == 1


async def test_concurrent_posts_with_one_key_write_one_record(make_kit, any_ledger_url):
    kit = make_kit(ledger=any_ledger_url)
    k = key()
    async with serve(make_app(kit), kit) as c:
        answers = await asyncio.gather(
            *(decide(c, "reject_all", headers={"idempotency-key": k}) for _ in range(6)),
            *(decide(c, "accept_all", headers={"idempotency-key": key()}) for _ in range(3)),
        )
        assert [a.status_code for a in answers] == [200] * 9
        assert len({a.json()["receipt"] for a in answers[:6]}) == 1
        assert len(await all_records(kit)) == 4
        assert (await kit.ledger.verify()).ok


async def test_a_key_reused_for_another_decision_is_refused_and_writes_nothing(kit):
    k = key()
    async with serve(make_app(kit), kit) as c:
        await decide(c, "accept_all", headers={"idempotency-key": k})
        refused = await decide(c, "reject_all", headers={"idempotency-key": k})
        assert refused.status_code == 422 and refused.json()["error"] == "idempotency_key_reused"
        assert "set-cookie" not in refused.headers
        assert [r.action for r in await all_records(kit)] == ["accept_all"]


@pytest.mark.parametrize("bad", ["short", "x" * 256, "has space 1234", "é" * 10])
async def test_a_malformed_key_is_a_400_and_writes_nothing(kit, bad):
    async with serve(make_app(kit), kit) as c:
        r = await c.post(
            "/consent",
            json={"action": "accept_all"},
            headers={**SAME_ORIGIN, "idempotency-key": bad.encode("utf-8")},
        )
        assert r.status_code == 400 and r.json()["error"] == "bad_idempotency_key"
        assert await all_records(kit) == []


async def test_the_plain_form_carries_its_key_in_a_field(kit):
    k = key()
    form = {"action": "reject_all", "idempotency_key": k, "next": "/"}
    async with serve(make_app(kit), kit) as c:
        for _ in range(2):
            r = await c.post("/consent", data=form, headers={**SAME_ORIGIN, "sec-fetch-site": "same-origin"})
            assert r.status_code == 303
        assert len(await all_records(kit)) == 1


async def test_a_key_is_remembered_for_a_day(kit):
    k = key()
    async with serve(make_app(kit), kit) as c:
        await decide(c, "accept_all", headers={"idempotency-key": k})
        (first,) = await all_records(kit)
        # A day later the same key is a new decision.
        await kit.ledger._write(
            lambda tx: tx.execute(
                "UPDATE consentkit_idempotency SET created_at = ?",
                (day_before(day_before(first.recorded_at)),),
            )
        )
        await decide(c, "accept_all", headers={"idempotency-key": k})
        assert len(await all_records(kit)) == 2
