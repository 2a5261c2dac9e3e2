"""Who may open the auditor's desk, without the desk: hashes, credentials and the failure limit."""

from __future__ import annotations

import base64

import pytest

from consentkit import ConfigurationError
from consentkit.audit import access
from consentkit.audit.access import AuditAccess, check_password, hash_password, parse_hash
from consentkit.http import limits

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_hashes_are_salted_scrypt_and_check_only_the_right_password():
    assert HASH.startswith("scrypt$16384$8$1$")
    assert hash_password(PASSWORD) != HASH  # a fresh salt every time
    stored = parse_hash(HASH)
    assert check_password(PASSWORD, stored)
    assert not check_password(PASSWORD + " ", stored)


@pytest.mark.parametrize(
    "value", [PASSWORD, "bcrypt$1$2$3$4$5", "scrypt$x$8$1$AA==$AA==", "scrypt$16384$8$1$AA=="]
)
def test_anything_but_a_hash_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError, match="hash-password"):
        parse_hash(value)


def test_short_passwords_are_refused():
    with pytest.raises(ValueError, match="12 characters"):
        hash_password("eleven char")


def test_users_the_token_and_nothing_else_get_in():
    token = "audit-token-0123456789abcdefghij"
    gate = AuditAccess({"alice": HASH}, hash_password(token))
    assert gate.enabled
    assert gate.authenticate(basic("alice", PASSWORD)) == "alice"
    assert gate.authenticate(f"Bearer {token}") == "token"
    for header in (
        None,
        "",
        basic("alice", "wrong"),
        basic("bob", PASSWORD),
        "Bearer nope",
        "Basic %%%",
        "Digest x",
    ):
        assert gate.authenticate(header) is None, header
    assert not AuditAccess(None, None).enabled
    assert AuditAccess(None, None).authenticate(f"Bearer {token}") is None


def test_failures_are_limited_per_client_within_the_window(monkeypatch):
    gate = AuditAccess({"alice": HASH}, None)
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    for _ in range(access.MAX_FAILURES):
        assert gate.retry_after("198.51.100.7") == 0
        assert gate.reserve("198.51.100.7") == 0  # counted as failed before it is checked
    assert gate.retry_after("198.51.100.7") == int(access.WINDOW)
    assert gate.reserve("198.51.100.7") == int(access.WINDOW), "refused, and not counted"
    assert gate.retry_after("198.51.100.8") == 0, "other addresses may still try"
    now[0] += access.WINDOW
    assert gate.retry_after("198.51.100.7") == 0, "the window has passed"


def test_a_success_does_not_count_as_a_failure():
    gate = AuditAccess({"alice": HASH}, None)
    for _ in range(access.MAX_FAILURES * 3):
        assert gate.reserve("198.51.100.7") == 0
        gate.succeeded("198.51.100.7")
    assert gate.retry_after("198.51.100.7") == 0
