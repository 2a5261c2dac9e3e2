"""Helpers for the policy/cookie/consent/ledger/CLI tests: records made through the real ledger API."""

from __future__ import annotations

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
