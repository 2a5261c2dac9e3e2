"""``evaluate``: the validity rules of the README's "How consent is decided" and Global Privacy Control, applied to a cookie's decision."""

from __future__ import annotations

import time
import tomllib
from typing import Any

import pytest
from conftest import EXAMPLE_POLICY

from consentkit import Consent, Policy, UnknownPurposeError
from consentkit.consent import evaluate
from consentkit.cookie import StoredDecision, new_subject_id

DAY = 86400
NOW = float(int(time.time()))


def variant(
    policy_changes: dict[str, Any] | None = None, extra_purpose: dict[str, Any] | None = None
) -> Policy:
    """The example policy with some [policy] keys changed and maybe one more purpose."""
    data = tomllib.loads(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    data["policy"].update(policy_changes or {})
    if extra_purpose is not None:
        data["purposes"].append(extra_purpose)
    return Policy.from_mapping(data)


def stored(policy: Policy, granted=(), denied=None, **overrides) -> StoredDecision:
    granted = frozenset(granted)
    fields: dict[str, Any] = {
        "subject_id": new_subject_id(),
        "revision": policy.revision,
        "granted": granted,
        "denied": frozenset(policy.optional_ids) - granted if denied is None else frozenset(denied),
        "decided_at": int(NOW) - 3600,
        "receipt": "0123456789abcdef",
        "gpc": False,
    }
    fields.update(overrides)
    return StoredDecision(**fields)


def assert_undecided(c: Consent, policy: Policy) -> None:
    assert c.decided is False
    assert c.needs_prompt is True
    assert c.granted == policy.essential_ids
    for pid in policy.optional_ids:
        assert c.allows(pid) is False
    for pid in policy.essential_ids:
        assert c.allows(pid) is True


# -- no cookie ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gpc", [False, True])
def test_no_cookie_is_undecided_with_only_essential(policy, gpc):
    c = evaluate(policy, None, gpc, NOW)
    assert_undecided(c, policy)
    assert c.gpc is gpc
    assert c.subject_id is None
    assert c.previous is None
    assert c.purposes() == {"necessary": True, "analytics": False, "ads": False}


# -- valid -------------------------------------------------------------------------------------


def test_valid_decision(policy):
    s = stored(policy, granted={"analytics"})
    c = evaluate(policy, s, False, NOW)
    assert c.decided is True
    assert c.needs_prompt is False
    assert c.allows("analytics") is True
    assert c.allows("ads") is False
    assert c.allows("necessary") is True
    assert c.granted == {"necessary", "analytics"}
    assert c.denied == {"ads"}
    assert c.subject_id == s.subject_id
    assert c.receipt == s.receipt
    assert c.decided_at == s.decided_at
    assert c.revision == policy.revision
    assert c.gpc is False
    assert c.purposes() == {"necessary": True, "analytics": True, "ads": False}
    assert list(c.purposes()) == list(policy.ids)


def test_accept_all_and_reject_all(policy):
    everything = evaluate(policy, stored(policy, granted=policy.optional_ids), False, NOW)
    assert everything.granted == set(policy.ids)
    assert everything.denied == set()
    nothing = evaluate(policy, stored(policy, granted=()), False, NOW)
    assert nothing.decided is True
    assert nothing.granted == policy.essential_ids
    assert nothing.denied == set(policy.optional_ids)


def test_consent_is_immutable(policy):
    c = evaluate(policy, stored(policy, granted={"analytics"}), False, NOW)
    with pytest.raises(AttributeError):
        c.granted = frozenset({"ads"})  # type: ignore[misc]


# -- revision ----------------------------------------------------------------------------------


def test_revision_bump_makes_everyone_undecided_and_remembers_previous(policy):
    s = stored(policy, granted={"analytics", "ads"})
    bumped = variant({"revision": policy.revision + 1})
    c = evaluate(bumped, s, False, NOW)
    assert_undecided(c, bumped)
    assert c.previous == s
    assert c.subject_id == s.subject_id  # the visitor keeps their pseudonymous id
    assert c.receipt is None


def test_cookie_from_a_newer_revision_is_not_valid_either(policy):
    s = stored(policy, granted={"analytics"}, revision=policy.revision + 1)
    c = evaluate(policy, s, False, NOW)
    assert_undecided(c, policy)
    assert c.previous == s


def test_version_label_alone_asks_nobody_again(policy):
    relabelled = variant({"version": "2027-01-01"})
    assert relabelled.digest != policy.digest
    c = evaluate(relabelled, stored(policy, granted={"analytics"}), False, NOW)
    assert c.decided is True
    assert c.allows("analytics") is True


# -- lifetime ----------------------------------------------------------------------------------


def test_expired_decision_is_undecided(policy):
    lifetime = policy.consent_lifetime_days * DAY
    s = stored(policy, granted={"analytics"}, decided_at=int(NOW) - lifetime - 1)
    c = evaluate(policy, s, False, NOW)
    assert_undecided(c, policy)
    assert c.previous == s


def test_lifetime_boundary(policy):
    lifetime = policy.consent_lifetime_days * DAY
    just_inside = stored(policy, granted={"analytics"}, decided_at=int(NOW) - lifetime + 60)
    c = evaluate(policy, just_inside, False, NOW)
    assert c.decided is True
    assert c.valid_until == just_inside.decided_at + lifetime
    at_limit = stored(policy, granted={"analytics"}, decided_at=int(NOW) - lifetime)
    assert evaluate(policy, at_limit, False, NOW).decided is False


def test_shorter_lifetime_expires_older_decisions(policy):
    s = stored(policy, granted={"analytics"}, decided_at=int(NOW) - 40 * DAY)
    assert evaluate(policy, s, False, NOW).decided is True
    short = variant({"consent_lifetime_days": 30})
    assert evaluate(short, s, False, NOW).decided is False


# -- clock skew --------------------------------------------------------------------------------


def test_decision_far_in_the_future_is_undecided(policy):
    s = stored(policy, granted={"analytics"}, decided_at=int(NOW) + 3600)
    c = evaluate(policy, s, False, NOW)
    assert_undecided(c, policy)


def test_small_clock_skew_is_tolerated(policy):
    s = stored(policy, granted={"analytics"}, decided_at=int(NOW) + 5)
    assert evaluate(policy, s, False, NOW).allows("analytics") is True


# -- every purpose must be decided -------------------------------------------------------------


def test_new_purpose_without_a_decision_is_undecided(policy):
    s = stored(policy, granted={"analytics", "ads"})
    extended = variant(
        extra_purpose={
            "id": "social",
            "title": {"en": "Social media", "fr": "Réseaux sociaux"},
            "description": {"en": "Share buttons.", "fr": "Boutons de partage."},
            "cookies": ["_fbp"],
        }
    )
    assert extended.revision == policy.revision  # nothing but the new purpose changed
    c = evaluate(extended, s, False, NOW)
    assert_undecided(c, extended)
    assert c.previous == s  # earlier choices can pre-fill the banner


def test_purpose_missing_from_both_lists_is_undecided(policy):
    s = stored(policy, granted={"analytics"}, denied=())
    assert_undecided(evaluate(policy, s, False, NOW), policy)


def test_new_essential_purpose_needs_no_decision(policy):
    s = stored(policy, granted={"analytics"})
    extended = variant(
        extra_purpose={
            "id": "security",
            "essential": True,
            "title": {"en": "Security", "fr": "Sécurité"},
            "description": {"en": "Fraud prevention.", "fr": "Prévention de la fraude."},
        }
    )
    c = evaluate(extended, s, False, NOW)
    assert c.decided is True
    assert c.allows("security") is True
    assert c.allows("analytics") is True


def test_purpose_removed_from_the_policy_grants_nothing(policy):
    # A cookie that granted a purpose the policy no longer declares.
    s = stored(policy, granted={"analytics", "retired"}, denied={"ads"})
    c = evaluate(policy, s, False, NOW)
    assert c.decided is True
    assert "retired" not in c.granted
    with pytest.raises(UnknownPurposeError):
        c.allows("retired")


# -- essential purposes ------------------------------------------------------------------------


def test_essential_purposes_are_always_allowed(policy):
    # even a (signed) cookie that lists the essential purpose as denied
    s = stored(policy, granted=(), denied={"analytics", "ads", "necessary"})
    c = evaluate(policy, s, False, NOW)
    assert c.decided is True
    assert c.allows("necessary") is True
    assert "necessary" not in c.denied
    for gpc in (False, True):
        assert evaluate(policy, None, gpc, NOW).allows("necessary") is True


# -- unknown purposes --------------------------------------------------------------------------


@pytest.mark.parametrize("decided", [False, True])
def test_allows_unknown_purpose_raises(policy, decided):
    s = stored(policy, granted={"analytics"}) if decided else None
    c = evaluate(policy, s, False, NOW)
    with pytest.raises(UnknownPurposeError) as info:
        c.allows("analytic")
    assert "analytic" in str(info.value)
    assert "analytics" in str(info.value)  # says what the policy declares
    with pytest.raises(KeyError):  # also a KeyError, for code that expects one
        c.allows("Analytics")


# -- Global Privacy Control --------------------------------------------------------------------


def test_gpc_denies_gpc_purposes_of_a_decision_made_without_it(policy):
    s = stored(policy, granted={"analytics", "ads"}, gpc=False)
    c = evaluate(policy, s, True, NOW)
    assert c.decided is True
    assert c.gpc is True
    assert c.allows("ads") is False
    assert "ads" in c.denied
    assert c.allows("analytics") is True  # analytics does not list gpc
    # without the signal, the same cookie grants ads
    assert evaluate(policy, s, False, NOW).allows("ads") is True


def test_grant_made_under_gpc_is_honoured(policy):
    s = stored(policy, granted={"analytics", "ads"}, gpc=True)
    with_signal = evaluate(policy, s, True, NOW)
    assert with_signal.allows("ads") is True
    assert with_signal.gpc_confirmed is True
    assert evaluate(policy, s, False, NOW).allows("ads") is True


def test_gpc_never_grants(policy):
    s = stored(policy, granted=(), gpc=True)
    c = evaluate(policy, s, True, NOW)
    assert c.allows("ads") is False
    assert c.allows("analytics") is False


def test_gpc_with_expired_decision_is_undecided(policy):
    s = stored(policy, granted={"ads"}, gpc=True, decided_at=int(NOW) - 400 * DAY)
    c = evaluate(policy, s, True, NOW)
    assert_undecided(c, policy)
    assert c.gpc is True
