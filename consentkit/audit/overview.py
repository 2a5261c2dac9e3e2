"""The figures of the auditor's overview and of ``consentkit report``, from the per-day table.

Reading the pre-aggregated ``consentkit_daily`` (kept in the same transaction as every
record) makes the overview of a ledger of millions of records a matter of a few hundred rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from ..ledger import Ledger
from ..ledger.verify import VerifyReport
from ..ledger.vocabulary import Action
from .charts import line_chart, stacked_bars

#: The decisions of the "How visitors decided" chart, with their labels.
MIX = (
    (Action.ACCEPT_ALL, "Accept all"),
    (Action.REJECT_ALL, "Reject all"),
    (Action.SAVE, "Customize"),
    (Action.WITHDRAW, "Withdraw"),
)


@dataclass
class Overview:
    """Everything the overview page shows."""

    records: int = 0
    subjects: int = 0
    decisions: int = 0
    gpc: int = 0
    first_day: str | None = None
    last_day: str | None = None
    period: str = "day"
    labels: list[str] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    rates: dict[str, list[float | None]] = field(default_factory=dict)
    mix: dict[str, list[int]] = field(default_factory=dict)
    gpc_by_period: list[float | None] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    last_verify: dict[str, Any] | None = None

    @property
    def gpc_share(self) -> float:
        """Share of decisions made while the browser sent Global Privacy Control."""
        return self.gpc / self.decisions if self.decisions else 0.0

    def rate(self, purpose: str) -> float | None:
        """A purpose's consent rate over the whole range."""
        return self._totals_rate.get(purpose)

    _totals_rate: dict[str, float] = field(default_factory=dict)

    def rate_chart(self, titles: dict[str, str]) -> Markup:
        """Consent rate per purpose over time."""
        return line_chart(
            f"Consent rate per purpose, per {self.period}",
            self.labels,
            {titles.get(p, p): self.rates[p] for p in self.purposes},
        )

    def mix_chart(self) -> Markup:
        """How visitors decided, per period."""
        return stacked_bars(f"How visitors decided, per {self.period}", self.labels, self.mix)


async def build(
    ledger: Ledger,
    first_day: str | None = None,
    last_day: str | None = None,
    purposes: list[str] | None = None,
) -> Overview:
    """The overview of ``first_day``..``last_day`` (``YYYY-MM-DD``, inclusive).

    ``purposes`` lists the purposes to chart (default: every one seen except those always
    granted, such as essential ones).
    """
    daily = await ledger.daily(first_day, last_day)
    o = Overview()
    o.subjects = await ledger.count_subjects()
    raw = await ledger.get_meta("last_verify")
    o.last_verify = json.loads(raw) if raw else None
    if not daily:
        return o
    days = sorted(daily)
    o.first_day, o.last_day = days[0], days[-1]
    o.period = "day" if len(days) <= 62 else "month"
    cut = 10 if o.period == "day" else 7
    buckets: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for day in days:
        bucket = buckets.setdefault(day[:cut], {})
        for metric, count in daily[day].items():
            bucket[metric] = bucket.get(metric, 0) + count
            totals[metric] = totals.get(metric, 0) + count
    o.labels = sorted(buckets)
    o.records = totals.get("records", 0)
    o.decisions = totals.get("decisions", 0)
    o.gpc = totals.get("gpc", 0)
    o.actions = {m[7:]: n for m, n in sorted(totals.items()) if m.startswith("action:")}
    o.methods = {m[7:]: n for m, n in sorted(totals.items()) if m.startswith("method:")}
    asked = sorted(m[6:] for m in totals if m.startswith("asked:"))
    if purposes is None:
        purposes = [p for p in asked if totals.get(f"granted:{p}", 0) < totals[f"asked:{p}"]]
    o.purposes = purposes
    for p in purposes:
        o.rates[p] = [
            (b.get(f"granted:{p}", 0) / b[f"asked:{p}"]) if b.get(f"asked:{p}") else None
            for b in (buckets[label] for label in o.labels)
        ]
        if totals.get(f"asked:{p}"):
            o._totals_rate[p] = totals.get(f"granted:{p}", 0) / totals[f"asked:{p}"]
    for action, label in MIX:
        o.mix[label] = [buckets[k].get(f"action:{action}", 0) for k in o.labels]
    o.gpc_by_period = [
        (buckets[k].get("gpc", 0) / buckets[k]["decisions"]) if buckets[k].get("decisions") else None
        for k in o.labels
    ]
    return o


def verification(report: VerifyReport, seconds: float | None = None) -> dict[str, Any]:
    """A verification's outcome as the overview shows it (and the desk keeps it in the ledger's
    ``last_verify``): when, whether the chain is intact, and where it broke if it did."""
    outcome: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ok": report.ok,
        "records": report.records,
        "head": report.head_hash,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
    }
    if seconds is not None:
        outcome["seconds"] = round(seconds, 2)
    return outcome
