"""Per-day figures, kept in ``consentkit_daily`` by every commit, in the same transaction as its
records, so that they are never behind. The auditor's overview reads them instead of the records
(a few hundred rows for a year, instead of millions).

Metrics: ``records``, ``action:<a>``, ``method:<m>``, and for decisions ``decisions``, ``gpc``,
``asked:<purpose>`` and ``granted:<purpose>``; for decisions made under a law (ledger schema 5:
``model``, ``region``) the same three per law and per region, ``model:<m>:decisions``,
``model:<m>:asked:<purpose>``, ``model:<m>:granted:<purpose>``, and ``region:<r>:…`` (``<r>``
``unknown`` where the region was not known): the overview's consent rates by law and region.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .vocabulary import Action

if TYPE_CHECKING:
    from .records import LedgerRecord, NewRecord, RecordRow

#: The actions that are someone's decision about purposes (``expire``, ``gpc`` and ``erase`` are
#: not). Plain strings, as stored.
DECISION_ACTIONS = frozenset(
    a.value for a in (Action.ACCEPT_ALL, Action.REJECT_ALL, Action.SAVE, Action.WITHDRAW, Action.RECORD)
)

#: ``{(day, metric): count}``
Counts = dict[tuple[str, str], int]


def add_daily(
    counts: Counts,
    recorded_at: str,
    action: str,
    method: str,
    gpc: bool,
    purposes: Mapping[str, bool],
    n: int = 1,
    model: str | None = None,
    region: str | None = None,
) -> None:
    """Count one record (or ``n`` alike, ``verify``'s aggregate) into per-day figures."""
    day = recorded_at[:10]
    for metric in ("records", f"action:{action}", f"method:{method}"):
        counts[(day, metric)] = counts.get((day, metric), 0) + n
    if action not in DECISION_ACTIONS:
        return
    counts[(day, "decisions")] = counts.get((day, "decisions"), 0) + n
    if gpc:
        counts[(day, "gpc")] = counts.get((day, "gpc"), 0) + n
    prefixes = ("",) if model is None else ("", f"model:{model}:", f"region:{region or 'unknown'}:")
    for prefix in prefixes[1:]:
        key = (day, f"{prefix}decisions")
        counts[key] = counts.get(key, 0) + n
    for pid, granted in purposes.items():
        for prefix in prefixes:
            key = (day, f"{prefix}asked:{pid}")
            counts[key] = counts.get(key, 0) + n
            if granted:
                key = (day, f"{prefix}granted:{pid}")
                counts[key] = counts.get(key, 0) + n


def add_daily_row(counts: Counts, row: RecordRow) -> None:
    """Count one stored row into per-day figures."""
    action = row.action
    purposes = json.loads(row.purposes) if action in DECISION_ACTIONS else {}
    add_daily(counts, row.recorded_at, action, row.method, bool(row.gpc), purposes, 1, row.model, row.region)


def daily_counts_of_rows(rows: Iterable[RecordRow]) -> Counts:
    """Per-day figures of stored rows (for building them for an existing ledger), streamed."""
    counts: Counts = {}
    for row in rows:
        add_daily_row(counts, row)
    return counts


def daily_counts_of_batch(entries: Iterable[NewRecord], sealed: Iterable[LedgerRecord]) -> Counts:
    """Per-day figures of a batch being appended (the entries and the records they became)."""
    counts: Counts = {}
    for entry, rec in zip(entries, sealed, strict=True):
        add_daily(
            counts, rec.recorded_at, entry.action, entry.method, entry.gpc, entry.purposes, 1,
            entry.model, entry.region,
        )  # fmt: skip
    return counts


def upsert_rows(counts: Counts) -> list[tuple[str, str, int]]:
    """Figures as parameter rows of ``queries.UPSERT_DAILY``."""
    return [(day, metric, n) for (day, metric), n in counts.items()]
