"""Reading a request's consent from its headers: one pass, remembered answers, bounded work."""

from __future__ import annotations

import time

from consentkit import Policy
from consentkit.cookie import CookieCodec, StoredDecision, new_subject_id
from consentkit.http.reading import MAX_VALUES, ConsentReader, scan

KEY = "reading-test-key-0123456789"


class CountingCodec(CookieCodec):
    """A codec that counts the signatures it is asked to check."""

    checked = 0

    def decode(self, value: str) -> StoredDecision | None:
        CountingCodec.checked += 1
        return super().decode(value)


def decision(policy: Policy) -> StoredDecision:
    return StoredDecision(
        subject_id=new_subject_id(),
        revision=policy.revision,
        granted=frozenset({"analytics"}),
        denied=frozenset(policy.optional_ids) - {"analytics"},
        decided_at=int(time.time()) - 60,
        receipt="0123456789abcdef",
        gpc=False,
    )


def test_one_pass_finds_cookies_gpc_and_language() -> None:
    headers = [
        (b"cookie", b"a=1"),
        (b"accept-language", b"fr-CA"),
        (b"sec-gpc", b" 1 "),
        (b"cookie", b"b=2"),
    ]
    assert scan(headers) == (b"a=1; b=2", True, b"fr-CA")
    assert scan([(b"sec-gpc", b"true")]) == (None, False, None)


def test_a_valid_cookie_grants_what_it_says_and_a_missing_one_nothing(policy: Policy) -> None:
    codec = CookieCodec([KEY])
    reader = ConsentReader(policy, codec, "consentkit")
    value = codec.encode(decision(policy))
    consent = reader.of(f"_ga=1; consentkit={value}".encode(), False)
    assert consent.decided and consent.allows("analytics") and not consent.allows("ads")
    assert not reader.of(b"_ga=1", False).decided
    assert not reader.of(None, True).decided


def test_a_header_full_of_bogus_consent_cookies_costs_a_bounded_number_of_checks(policy: Policy) -> None:
    codec = CountingCodec([KEY])
    reader = ConsentReader(policy, codec, "consentkit")
    bogus = "; ".join(f"consentkit=forged.{n}.sig" for n in range(3500))
    CountingCodec.checked = 0
    started = time.perf_counter()
    consent = reader.of(bogus.encode(), False)
    elapsed = time.perf_counter() - started
    assert not consent.decided
    assert CountingCodec.checked == MAX_VALUES
    assert elapsed < 0.05


def test_the_first_valid_consent_cookie_wins_among_a_few(policy: Policy) -> None:
    codec = CookieCodec([KEY])
    reader = ConsentReader(policy, codec, "consentkit")
    good = codec.encode(decision(policy))
    consent = reader.of(f"consentkit=broken; consentkit={good}".encode(), False)
    assert consent.decided and consent.allows("analytics")
