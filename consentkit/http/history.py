"""A visitor's own consent history as ``GET /consent/history`` answers it: the fields a visitor
may see of their records, as JSON or as a CSV whose cells a spreadsheet will not run."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ..ledger import LedgerRecord
from ..spreadsheets import inert

HISTORY_FIELDS = (
    "seq",
    "recorded_at",
    "action",
    "purposes",
    "method",
    "policy_revision",
    "policy_version",
    "policy_digest",
    "locale",
    "gpc",
    "ip_prefix",
    "user_agent",
    "region",
    "model",
    "receipt",
)


def history_row(r: LedgerRecord) -> dict[str, Any]:
    """What a visitor is shown of one of their records."""
    return {
        "seq": r.seq,
        "recorded_at": r.recorded_at,
        "action": r.action,
        "purposes": r.purposes,
        "method": r.method,
        "policy_revision": r.policy_revision,
        "policy_version": r.policy_version,
        "policy_digest": r.policy_digest,
        "locale": r.locale,
        "gpc": r.gpc,
        "ip_prefix": r.ip_prefix,
        "user_agent": r.user_agent,
        "region": r.region,
        "model": r.model,
        "receipt": r.receipt,
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Spreadsheets run cells that start like formulas: the user agent, the policy version
        # and the language are text that others chose, and go in inert (the exports' rule).
        return inert(value)
    return value


def history_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, a header line first; ``purposes`` as compact JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HISTORY_FIELDS)
    for row in rows:
        writer.writerow(
            json.dumps(row[f], separators=(",", ":")) if f == "purposes" else _csv_cell(row[f])
            for f in HISTORY_FIELDS
        )
    return out.getvalue()
