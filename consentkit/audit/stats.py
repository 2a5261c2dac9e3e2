"""Aggregates of the ledger for operators and auditors: decisions, consent rates, GPC share."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..ledger.records import LedgerRecord
from ..ledger.vocabulary import Action

#: The actions that are decisions on purposes (counted in consent rates and the GPC share).
DECISIONS: frozenset[str] = frozenset(
    {Action.ACCEPT_ALL, Action.REJECT_ALL, Action.SAVE, Action.WITHDRAW, Action.RECORD}
)
PERIODS = {"day": 10, "month": 7}  # prefix length of recorded_at
#: The ``by_region`` key of records made where the region was unknown (or not recorded: records
#: of ``kit.record`` and those written before ledger schema 5).
UNKNOWN_REGION = "unknown"


def breaks_down(models: Iterable[str], regions: Iterable[str]) -> bool:
    """Whether figures per law and region say more than the totals: a site without regions
    records every decision as ``opt_in`` in an unknown region, one row that repeats them."""
    return len(set(models)) > 1 or any(r != UNKNOWN_REGION for r in regions)


@dataclass
class Bucket:
    """Counts over one period (or the whole ledger)."""

    records: int = 0
    decisions: int = 0
    gpc: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    granted: Counter[str] = field(default_factory=Counter)
    asked: Counter[str] = field(default_factory=Counter)

    def add(self, r: LedgerRecord, purposes: dict[str, bool] | None) -> None:
        """Count one record (``purposes`` already parsed, for decisions)."""
        self.records += 1
        self.actions[r.action] += 1
        self.methods[r.method] += 1
        if purposes is None:
            return
        self.decisions += 1
        if r.gpc:
            self.gpc += 1
        for pid, on in purposes.items():
            self.asked[pid] += 1
            if on:
                self.granted[pid] += 1

    def consent_rate(self) -> dict[str, float]:
        """Share of decisions that granted each purpose."""
        return {pid: self.granted[pid] / n for pid, n in sorted(self.asked.items()) if n}

    def gpc_share(self) -> float:
        """Share of decisions made while the browser sent Global Privacy Control."""
        return self.gpc / self.decisions if self.decisions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "records": self.records,
            "decisions": self.decisions,
            "actions": dict(sorted(self.actions.items())),
            "methods": dict(sorted(self.methods.items())),
            "consent_rate": {k: round(v, 4) for k, v in self.consent_rate().items()},
            "gpc_share": round(self.gpc_share(), 4),
        }


@dataclass
class Stats:
    """The whole ledger's figures, and the same per period."""

    period: str
    total: Bucket = field(default_factory=Bucket)
    periods: dict[str, Bucket] = field(default_factory=dict)
    subjects: int = 0
    # The same per region (``US-CA``, ``DE``, or ``UNKNOWN_REGION``) and per law (``opt_in``,
    # ``opt_out``, ``notice``; records without one are left out): consent rates differ by law.
    regions: dict[str, Bucket] = field(default_factory=dict)
    models: dict[str, Bucket] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "subjects": self.subjects,
            **self.total.to_dict(),
            "by_" + self.period: {k: b.to_dict() for k, b in self.periods.items()},
            "by_region": {k: b.to_dict() for k, b in sorted(self.regions.items())},
            "by_model": {k: b.to_dict() for k, b in sorted(self.models.items())},
        }


async def compute(records: AsyncIterator[LedgerRecord], period: str = "day") -> Stats:
    """Aggregate a stream of records (one pass; memory grows only with distinct subjects)."""
    cut = PERIODS[period]
    stats = Stats(period=period)
    subjects: set[int] = set()  # hashes: a tenth of the memory of the ids themselves
    for_period: dict[str, Bucket] = stats.periods
    for_region, for_model = stats.regions, stats.models
    async for r in records:
        key = r.recorded_at[:cut]
        bucket = for_period.get(key)
        if bucket is None:
            bucket = for_period[key] = Bucket()
        purposes = json.loads(r.purposes_json) if r.action in DECISIONS else None
        stats.total.add(r, purposes)
        bucket.add(r, purposes)
        region = r.region or UNKNOWN_REGION
        (for_region.get(region) or for_region.setdefault(region, Bucket())).add(r, purposes)
        if r.model is not None:
            (for_model.get(r.model) or for_model.setdefault(r.model, Bucket())).add(r, purposes)
        if r.subject_id is not None:
            subjects.add(hash(r.subject_id))
    stats.subjects = len(subjects)
    return stats
