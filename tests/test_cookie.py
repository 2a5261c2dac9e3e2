"""The signed consent cookie value: round trip, rejection of anything wrong, keys, size, octets."""

from __future__ import annotations

import hashlib
import time

import pytest
from conftest import SECRET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner

from consentkit import ConfigurationError, ConsentKit, Policy, Purpose
from consentkit.cookie import SALT, CookieCodec, StoredDecision, new_subject_id

OLD_KEY = "old-secret-key-fedcba9876543210"
NEW_KEY = "new-secret-key-0f1e2d3c4b5a6978"
OTHER_KEY = "someone-elses-key-00112233445566"

# RFC 6265 §4.1.1: cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
COOKIE_OCTETS = frozenset(
    chr(c) for c in [0x21, *range(0x23, 0x2C), *range(0x2D, 0x3B), *range(0x3C, 0x5C), *range(0x5D, 0x7F)]
)


def decision(**overrides) -> StoredDecision:
    fields = {
        "subject_id": new_subject_id(),
        "revision": 3,
        "granted": frozenset({"analytics"}),
        "denied": frozenset({"ads"}),
        "decided_at": int(time.time()),
        "receipt": "0123456789abcdef",
        "gpc": False,
    }
    fields.update(overrides)
    return StoredDecision(**fields)


def forge(payload: str, key: str = SECRET) -> str:
    """Sign an arbitrary payload the way consent cookies are signed (HMAC-SHA256, the cookie salt)."""
    signer = TimestampSigner(key, salt=SALT, sep=".", digest_method=hashlib.sha256)
    return signer.sign(payload).decode("ascii")


@pytest.fixture
def codec() -> CookieCodec:
    return CookieCodec([SECRET])


# -- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "d",
    [
        decision(),
        decision(granted=frozenset(), denied=frozenset({"analytics", "ads"})),
        decision(granted=frozenset({"analytics", "ads"}), denied=frozenset(), gpc=True),
        decision(granted=frozenset(), denied=frozenset(), revision=1, receipt=""),
    ],
    ids=["save", "reject-all", "accept-all-under-gpc", "nothing-decided"],
)
def test_round_trip(codec, d):
    value = codec.encode(d)
    assert codec.decode(value) == d
    # a fresh codec with the same key (another process) reads it the same way
    assert CookieCodec([SECRET]).decode(value) == d


def test_subject_ids_are_random_url_safe_128_bit():
    ids = {new_subject_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        assert len(sid) >= 22  # 16 random bytes in URL-safe base64
        assert set(sid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


purpose_ids = st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(purpose_ids, unique=True, max_size=12),
    data=st.data(),
    revision=st.integers(min_value=1, max_value=10**9),
    decided_at=st.integers(min_value=0, max_value=2**40),
    gpc=st.booleans(),
)
def test_round_trip_any_decision_and_value_is_cookie_octets(codec, ids, data, revision, decided_at, gpc):
    granted = frozenset(data.draw(st.lists(st.sampled_from(ids), unique=True)) if ids else [])
    d = decision(
        granted=granted,
        denied=frozenset(ids) - granted,
        revision=revision,
        decided_at=decided_at,
        gpc=gpc,
        receipt=hashlib.sha256(str(revision).encode()).hexdigest()[:16],
    )
    value = codec.encode(d)
    assert set(value) <= COOKIE_OCTETS, set(value) - COOKIE_OCTETS
    assert codec.decode(value) == d


# -- anything wrong is None, never an exception -------------------------------------------------


def test_tampered_payload_is_rejected(codec):
    value = codec.encode(decision(granted=frozenset(), denied=frozenset({"analytics", "ads"})))
    payload, rest = value.split(".", 1)
    forged = payload.replace("~3~~ads-analytics~", "~3~ads-analytics~~")  # try to turn a refusal into a grant
    assert forged != payload
    assert codec.decode(f"{forged}.{rest}") is None
    assert codec.decode(value.replace("~3~", "~4~", 1)) is None  # the revision


def test_every_single_character_change_is_rejected_or_harmless(codec):
    d = decision()
    value = codec.encode(d)
    alphabet = "aZ09-_.~"
    for i, ch in enumerate(value):
        for repl in alphabet:
            if repl == ch:
                continue
            result = codec.decode(value[:i] + repl + value[i + 1 :])
            # base64's unused trailing bits can make a signature character irrelevant; the
            # only acceptable outcomes are "rejected" and "exactly the original decision".
            assert result is None or result == d, (i, repl)


def test_truncated_values_are_rejected(codec):
    value = codec.encode(decision())
    for n in range(len(value)):
        assert codec.decode(value[:n]) is None, n


def test_value_signed_with_an_unknown_key_is_rejected(codec):
    value = CookieCodec([OTHER_KEY]).encode(decision())
    assert codec.decode(value) is None


def test_value_signed_with_another_salt_is_rejected(codec):
    # Another itsdangerous user of the same key (sessions, say) cannot mint consent cookies.
    d = decision()
    payload = codec.encode(d).rsplit(".", 2)[0]
    other = TimestampSigner(SECRET, salt="itsdangerous.Signer", sep=".", digest_method=hashlib.sha256)
    assert codec.decode(other.sign(payload).decode("ascii")) is None
    assert codec.decode(forge(payload)) == d  # the control: the right salt verifies


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        "1",
        "garbage",
        "a.b.c",
        "a.b.c.d.e",
        "1~x~1~~~1~~.AAAA.AAAA",
        "\x00\x01\x02",
        "%00%ff",
        '"quoted"',
        "consentkit=abc",
        "=" * 50,
        "é",
        "café~1~2.abc.def",
        "\u202e\ufeff",
        "\udcff",  # a lone surrogate, as surrogateescape decoding of bad bytes produces
        "x" * 4097,
        "1~" + "a" * 5000,
    ],
    ids=repr,
)
def test_garbage_is_undecided_and_never_raises(codec, value):
    assert codec.decode(value) is None


def test_non_ascii_inside_a_valid_value_is_rejected(codec):
    value = codec.encode(decision())
    assert codec.decode(value + "é") is None
    assert codec.decode("é" + value) is None
    assert codec.decode(value.replace("~", "\u223c", 1)) is None


def test_oversized_value_is_rejected_even_if_correctly_signed(codec):
    big = decision(subject_id="s" * 5000)
    value = codec.encode(big)
    assert len(value) > 4096
    assert codec.decode(value) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=300))
def test_arbitrary_text_never_raises(codec, value):
    assert codec.decode(value) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(min_value=0, max_value=200), junk=st.text(min_size=1, max_size=20))
def test_spliced_valid_value_never_raises(codec, start, junk):
    d = decision()
    value = codec.encode(d)
    start %= len(value)
    mangled = value[:start] + junk + value[start:]
    result = codec.decode(mangled)
    assert result is None or result == d


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("2~{sid}~3~analytics~ads~{now}~abc~", "unknown format version"),
        ("0~{sid}~3~analytics~ads~{now}~abc~", "unknown format version"),
        ("~{sid}~3~analytics~ads~{now}~abc~", "no format version"),
        ("1~{sid}~3~analytics~ads~{now}~abc", "seven fields"),
        ("1~{sid}~3~analytics~ads~{now}~abc~~extra", "nine fields"),
        ("1~~3~analytics~ads~{now}~abc~", "no subject"),
        ("1~{sid}~three~analytics~ads~{now}~abc~", "revision not a number"),
        ("1~{sid}~-3~analytics~ads~{now}~abc~", "negative revision"),
        ("1~{sid}~3~analytics~ads~soon~abc~", "decided_at not a number"),
        ("1~{sid}~3~analytics~ads-analytics~{now}~abc~", "granted and denied at once"),
    ],
    ids=lambda v: v if " " in v else None,
)
def test_correctly_signed_but_malformed_payload_is_rejected(codec, payload, why):
    now = int(time.time())
    sid = new_subject_id()
    # The control: a well-formed payload forged the same way does verify.
    good = forge(f"1~{sid}~3~analytics~ads~{now}~abc~")
    assert codec.decode(good) == decision(subject_id=sid, decided_at=now, receipt="abc")
    assert codec.decode(forge(payload.format(sid=sid, now=now))) is None, why


# -- keys and rotation ------------------------------------------------------------------------


def test_rotation_old_key_still_verifies_and_is_flagged():
    d = decision()
    old_value = CookieCodec([OLD_KEY]).encode(d)
    rotated = CookieCodec([NEW_KEY, OLD_KEY])
    got = rotated.decode(old_value)
    assert got is not None
    assert got.old_key is True
    assert (got.subject_id, got.granted, got.denied, got.decided_at, got.receipt) == (
        d.subject_id,
        d.granted,
        d.denied,
        d.decided_at,
        d.receipt,
    )
    # re-signing gives a value the newest key verifies without the flag
    resigned = rotated.encode(got)
    assert resigned != old_value
    again = rotated.decode(resigned)
    assert again is not None and again.old_key is False
    assert CookieCodec([NEW_KEY]).decode(resigned) is not None


def test_rotation_newest_key_signs():
    rotated = CookieCodec([NEW_KEY, OLD_KEY])
    value = rotated.encode(decision())
    assert CookieCodec([NEW_KEY]).decode(value) is not None
    assert CookieCodec([OLD_KEY]).decode(value) is None


def test_rotation_unknown_key_is_rejected():
    rotated = CookieCodec([NEW_KEY, OLD_KEY])
    assert rotated.decode(CookieCodec([OTHER_KEY]).encode(decision())) is None


def test_retired_key_no_longer_verifies():
    old_value = CookieCodec([OLD_KEY]).encode(decision())
    assert CookieCodec([NEW_KEY, OLD_KEY]).decode(old_value) is not None
    assert CookieCodec([NEW_KEY]).decode(old_value) is None


def test_bytes_keys_work():
    key = SECRET.encode()
    d = decision()
    assert CookieCodec([key]).decode(CookieCodec([SECRET]).encode(d)) == d


def test_no_key_is_a_configuration_error_that_says_what_to_do():
    with pytest.raises(ConfigurationError) as info:
        CookieCodec([])
    message = str(info.value)
    assert "secret_keys" in message
    assert "development=True" in message


@pytest.mark.parametrize("keys", [["short"], [SECRET, "too-short"], [""], [None]], ids=repr)
def test_short_or_bad_key_is_a_configuration_error(keys):
    with pytest.raises(ConfigurationError) as info:
        CookieCodec(keys)
    message = str(info.value)
    assert "16" in message
    assert "secrets.token_urlsafe" in message


def test_kit_without_key_fails_at_startup(policy, ledger_url):
    with pytest.raises(ConfigurationError, match="secret"):
        ConsentKit(policy=policy, ledger=ledger_url)
    with pytest.raises(ConfigurationError):
        ConsentKit(policy=policy, secret_keys=[], ledger=ledger_url)
    with pytest.raises(ConfigurationError):
        ConsentKit(policy=policy, secret_keys=["short"], ledger=ledger_url)


def test_development_key_must_be_asked_for(policy, ledger_url):
    kit = ConsentKit(policy=policy, ledger=ledger_url, development=True)
    d = decision()
    assert kit.codec.decode(kit.codec.encode(d)) == d
    # the public development key is not the production one: its cookies are not accepted
    assert CookieCodec([SECRET]).decode(kit.codec.encode(d)) is None


# -- size -------------------------------------------------------------------------------------


def thirty_purpose_policy() -> Policy:
    purposes = [Purpose(id="necessary", essential=True, title={"en": "N"}, description={"en": "N"})]
    for i in range(30):
        pid = f"purpose_{i:02d}_" + "x" * 21
        assert len(pid) == 32
        purposes.append(Purpose(id=pid, title={"en": pid}, description={"en": pid}, cookies=[f"c{i}"]))
    return Policy(
        controller="c",
        contact="c@example.com",
        privacy_url="/p",
        revision=123456,
        version="v",
        consent_lifetime_days=395,
        purposes=purposes,
    )


@pytest.mark.parametrize("split", [0, 15, 30])
def test_thirty_long_purposes_fit_in_a_cookie(ledger_url, split):
    p = thirty_purpose_policy()
    kit = ConsentKit(policy=p, secret_keys=[SECRET], ledger=ledger_url)
    ids = list(p.optional_ids)
    d = decision(
        revision=p.revision,
        granted=frozenset(ids[:split]),
        denied=frozenset(ids[split:]),
        receipt="f" * 16,
        gpc=True,
    )
    name, header = kit.cookie.header(d)  # the kit is cookie_secure by default
    assert name == b"set-cookie"
    pair = header.split(b";", 1)[0]  # name=value: what browsers count against 4096 bytes
    assert len(pair) < 4096
    assert len(header) < 4096
    value = pair.split(b"=", 1)[1].decode("ascii")
    assert set(value) <= COOKIE_OCTETS
    got = kit.codec.decode(value)
    assert got is not None and got.granted == frozenset(ids[:split])
