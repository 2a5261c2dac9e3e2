"""kit.record: consents that are not cookies, in the same ledger and chain."""

from __future__ import annotations

import pytest

from consentkit import ConsentKit, InvalidRecordError


@pytest.fixture
async def any_kit(make_kit, any_ledger_url):
    kit: ConsentKit = make_kit(ledger=any_ledger_url)
    yield kit
    await kit.aclose()


async def test_opt_in_and_withdrawal_are_recorded_with_their_evidence(any_kit):
    shown = "Yes, send me offers by SMS. Reply STOP to withdraw."
    opt_in = await any_kit.record(
        "account:1", {"sms_marketing": True}, evidence={"wording": shown, "channel": "web_form"}
    )
    out = await any_kit.record(
        "account:1",
        {"sms_marketing": False},
        action="withdraw",
        evidence={"channel": "sms", "keyword": "STOP"},
    )
    history = await any_kit.ledger.history("account:1")
    assert [(r.action, r.purposes, r.method) for r in history] == [
        ("record", {"sms_marketing": True}, "api"),
        ("withdraw", {"sms_marketing": False}, "api"),
    ]
    assert history[0].evidence == {"wording": shown, "channel": "web_form"}
    assert [r.receipt for r in history] == [opt_in.receipt, out.receipt]
    assert history[0].policy_digest == any_kit.policy.digest
    assert (await any_kit.ledger.verify()).ok


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("", {"x": True}), {}, "subject_id"),
        (("a" * 300, {"x": True}), {}, "subject_id"),
        (("s", {}), {}, "non-empty"),
        (("s", {"SMS": True}), {}, "purpose id"),
        (("s", {"sms": "yes"}), {}, "True or False"),
        (("s", {"sms": True}), {"method": "banner"}, "method"),
        (("s", {"sms": True}), {"action": "accept_all"}, "action"),
        (("s", {"sms": True}), {"evidence": {"when": object()}}, "JSON"),
        (("s", {"sms": True}), {"evidence": ["not", "a", "mapping"]}, "mapping"),
        (("s", {"sms": True}), {"evidence": {"blob": "x" * 70_000}}, "64 KiB"),
    ],
)
async def test_bad_records_are_refused_and_write_nothing(any_kit, args, kwargs, words):
    with pytest.raises(InvalidRecordError, match=words):
        await any_kit.record(*args, **kwargs)
    assert [r async for r in any_kit.ledger.records()] == []


async def test_record_with_the_request_keeps_address_agent_and_language(make_kit):
    from starlette.requests import Request

    kit = make_kit()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/account",
        "headers": [(b"user-agent", b"Mozilla/5.0 Test"), (b"accept-language", b"fr-CA,fr")],
        "client": ("198.51.100.77", 4000),
    }
    rec = await kit.record("account:7", {"sms_marketing": True}, request=Request(scope))
    assert (rec.ip_prefix, rec.user_agent, rec.locale) == ("198.51.100.0/24", "Mozilla/5.0 Test", "fr")
    await kit.record("account:7", {"email_marketing": True})
    await kit.record("account:7", {"sms_marketing": False}, action="withdraw")
    assert await kit.current("account:7") == {"sms_marketing": False, "email_marketing": True}
    assert await kit.current("account:8") == {}
    await kit.aclose()


async def test_form_problem_applies_the_decision_rule_to_the_sites_own_forms(make_kit):
    from starlette.requests import Request

    kit = make_kit()

    def request(headers):
        return Request(
            {
                "type": "http",
                "method": "POST",
                "path": "/account",
                "headers": headers,
                "client": ("127.0.0.1", 1),
                "state": {"consent": kit.reader.of(None, False)},
            }
        )

    assert (
        kit.form_problem(request([(b"host", b"testserver"), (b"origin", b"http://testserver")]), None) is None
    )
    assert "not this site" in kit.form_problem(
        request([(b"host", b"testserver"), (b"origin", b"https://evil.example")]), None
    )
    assert "token" in kit.form_problem(request([(b"host", b"testserver")]), None)
    assert kit.form_problem(request([(b"host", b"testserver")]), kit.csrf.token(None)) is None
    await kit.aclose()
