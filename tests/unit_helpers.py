"""Helpers for the policy/cookie/consent/ledger/CLI tests: records made through the real ledger API."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from consentkit import Policy
from consentkit.ledger import NewRecord


def new_record(
    policy: Policy,
    subject_id: str | None = "subject-a",
    action: str = "save",
    purposes: dict[str, bool] | None = None,
    **fields: Any,
) -> NewRecord:
    """A record of ``policy`` as the kit would make it (policy text included)."""
    fields.setdefault("method", "banner")
    fields.setdefault("locale", policy.default_locale)
    return NewRecord(
        subject_id=subject_id,
        action=action,
        purposes=purposes if purposes is not None else {"necessary": True, "analytics": True, "ads": False},
        policy_revision=policy.revision,
        policy_version=policy.version,
        policy_digest=policy.digest,
        policy_json=policy.canonical_json,
        **fields,
    )


def tamper(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> int:
    """Change the ledger file behind the library's back, in one transaction; return rows changed."""
    conn = sqlite3.connect(path)
    changed = 0
    try:
        for statement in statements:
            sql, params = (statement, ()) if isinstance(statement, str) else statement
            changed += conn.execute(sql, params).rowcount
        conn.commit()
    finally:
        conn.close()
    return changed


# The policy the numbered records name, stored with them as the kit stores a policy's text.
NUMBERED_POLICY_JSON = '{"policy":"numbered","version":"2026-11-01"}'
NUMBERED_POLICY_DIGEST = hashlib.sha256(NUMBERED_POLICY_JSON.encode()).hexdigest()


def numbered_record(i: int) -> NewRecord:
    """The ``i``-th of many plain records (seven subjects taking turns), to grow a ledger fast."""
    return NewRecord(
        subject_id=f"s{i % 7}",
        action="accept_all",
        purposes={"necessary": True, "analytics": True},
        method="banner",
        policy_revision=1,
        policy_version="2026-11-01",
        policy_digest=NUMBERED_POLICY_DIGEST,
        policy_json=NUMBERED_POLICY_JSON,
        locale="en",
        ip_prefix="203.0.113.0/24",
    )


async def append_many(ledger: Any, n: int) -> None:
    """Append ``n`` numbered records, 200 at a time (several group commits)."""
    import asyncio

    for start in range(0, n, 200):
        await asyncio.gather(*(ledger.append(numbered_record(i)) for i in range(start, min(n, start + 200))))
