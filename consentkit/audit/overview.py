"""The figures of the auditor's overview and of ``consentkit report``, from the per-day table.

Reading the pre-aggregated ``consentkit_daily`` (kept in the same transaction as every
record) makes the overview of a ledger of millions of records a matter of a few hundred rows.

Those figures count every decision: a visitor who posts a thousand times counts a thousand times.
:func:`build_per_subject` (the desk's ``?count=subjects``) counts each subject's latest decision
once instead; it reads the records of the range to do so, so it is only made when asked for.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from ..ledger import Ledger, RecordFilter
from ..ledger.full_check import FullCheck
from ..ledger.vocabulary import Action
from .charts import line_chart, stacked_bars
from .stats import breaks_down

#: The decisions of the "How visitors decided" chart, with their labels.
MIX = (
    (Action.ACCEPT_ALL, "Accept all"),
    (Action.REJECT_ALL, "Reject all"),
    (Action.SAVE, "Customize"),
    (Action.WITHDRAW, "Withdraw"),
)
#: What the overview's consent rates count (the desk's ``?count=``): every decision, or each
#: subject's latest decision once.
COUNTS = ("decisions", "subjects")
#: The actions that are someone's decision about purposes, as the per-day figures count them.
DECISION_ACTIONS = frozenset(
    a.value for a in (Action.ACCEPT_ALL, Action.REJECT_ALL, Action.SAVE, Action.WITHDRAW, Action.RECORD)
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
    per_subject: bool = False  # decisions, rates, mix and GPC count each subject's latest once
    # Decisions and consent rates per law and per region (decisions made under ledger schema 5
    # on): ``{"opt_out": (decisions, {purpose: rate})}``, ``{"US-CA": …}``.
    by_model: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    by_region: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)

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
            f"Consent rate per purpose, per {self.period}{self._counting}",
            self.labels,
            {titles.get(p, p): self.rates[p] for p in self.purposes},
        )

    def mix_chart(self) -> Markup:
        """How visitors decided, per period."""
        return stacked_bars(f"How visitors decided, per {self.period}{self._counting}", self.labels, self.mix)

    @property
    def _counting(self) -> str:
        return ", each subject's latest decision" if self.per_subject else ""


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
    o.actions = {m[7:]: n for m, n in sorted(totals.items()) if m.startswith("action:")}
    o.methods = {m[7:]: n for m, n in sorted(totals.items()) if m.startswith("method:")}
    asked = sorted(m[6:] for m in totals if m.startswith("asked:"))
    if purposes is None:
        purposes = [p for p in asked if totals.get(f"granted:{p}", 0) < totals[f"asked:{p}"]]
    o.purposes = purposes
    _decision_figures(o, buckets, totals)
    by_model, by_region = _by_prefix(totals, "model:", purposes), _by_prefix(totals, "region:", purposes)
    if breaks_down(by_model, by_region):
        o.by_model, o.by_region = by_model, by_region
    return o


def _by_prefix(
    totals: dict[str, int], prefix: str, purposes: list[str]
) -> dict[str, tuple[int, dict[str, float]]]:
    """Decisions and consent rates per law or region, from the ``model:<m>:…`` or ``region:<r>:…``
    per-day figures (``daily.py``)."""
    out: dict[str, tuple[int, dict[str, float]]] = {}
    for metric, n in sorted(totals.items()):
        if metric.startswith(prefix) and metric.endswith(":decisions"):
            key = metric[len(prefix) : -len(":decisions")]
            rates = {}
            for p in purposes:
                asked = totals.get(f"{prefix}{key}:asked:{p}", 0)
                if asked:
                    rates[p] = totals.get(f"{prefix}{key}:granted:{p}", 0) / asked
            out[key] = (n, rates)
    return out


def _decision_figures(o: Overview, buckets: dict[str, dict[str, int]], totals: dict[str, int]) -> None:
    """Decisions, GPC, consent rates and the decision mix of ``o``, from figures per period
    (``buckets``, by label) and over the range (``totals``), named as ``consentkit_daily``'s."""
    o.decisions = totals.get("decisions", 0)
    o.gpc = totals.get("gpc", 0)
    o.rates = {}
    o._totals_rate = {}
    for p in o.purposes:
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


async def build_per_subject(
    ledger: Ledger,
    first_day: str | None = None,
    last_day: str | None = None,
    purposes: list[str] | None = None,
) -> Overview:
    """The overview of ``first_day``..``last_day`` with decisions, consent rates, the decision
    mix and the GPC share counting each subject's latest decision once — in the whole range,
    and in each period of the charts — so that a visitor who decides again and again (or a
    script that posts with one cookie) weighs as one.

    "A decision" is about a set of purposes: a subject's banner choice and an SMS opt-in made
    with ``kit.record`` are two, each counted once. Records of subjects erased since have no
    subject any more and are left out, as they are of the "Subjects" figure. Records, actions
    and methods stay counts of records.

    It reads every record of the range once, in ``seq`` order, keeping one small entry per
    subject (and per subject and period): time and memory grow with the range — about 0.7 s and
    30 MB for 100,000 records, two thirds of the time reading them.
    """
    o = await build(ledger, first_day, last_day, purposes)
    o.per_subject = True
    if not o.labels:
        return o
    cut = 10 if o.period == "day" else 7
    flt = RecordFilter(since=first_day, until=f"{last_day}T99" if last_day else None)
    latest, latest_in, parsed = await _latest_decisions(ledger, flt, cut)
    totals = _tally(Counter(latest.values()), parsed)
    per_label: dict[str, Counter[_Kind]] = {label: Counter() for label in o.labels}
    for (label, _subject, _which), kind in latest_in.items():
        counted = per_label.get(label)
        if counted is None:  # a period the per-day figures lack: not charted
            counted = per_label[label] = Counter()
        counted[kind] += 1
    buckets = {label: _tally(per_label[label], parsed) for label in o.labels}
    _decision_figures(o, buckets, totals)
    return o


_Kind = tuple[str, str, bool]  # (purposes JSON, action, gpc)


async def _latest_decisions(
    ledger: Ledger, flt: RecordFilter, cut: int
) -> tuple[dict[tuple[str, int], _Kind], dict[tuple[str, str, int], _Kind], dict[str, dict[str, bool]]]:
    """Each subject's latest decision per set of purposes, in the range and per period (the
    first ``cut`` characters of ``recorded_at``), and the purposes JSON texts parsed."""
    # The purposes JSON of a record -> the id of its set of purposes (parsed once per distinct
    # text: a ledger holds few distinct decisions, however many records).
    sets: dict[str, int] = {}
    set_ids: dict[frozenset[str], int] = {}
    # One shared tuple per distinct (purposes, action, gpc): entries cost a pointer, not a copy.
    kinds: dict[_Kind, _Kind] = {}
    latest: dict[tuple[str, int], _Kind] = {}
    latest_in: dict[tuple[str, str, int], _Kind] = {}
    decision = DECISION_ACTIONS.__contains__
    async for page in ledger.row_pages(flt):
        for row in page:
            subject = row.subject_id
            action = row.action
            if subject is None or not decision(action):
                continue
            text = row.purposes
            which = sets.get(text)
            if which is None:
                which = sets[text] = set_ids.setdefault(frozenset(json.loads(text)), len(set_ids))
            kind = (text, action, bool(row.gpc))
            kind = kinds.setdefault(kind, kind)
            latest[(subject, which)] = kind  # rows come oldest first: the last one wins
            latest_in[(row.recorded_at[:cut], subject, which)] = kind
    return latest, latest_in, {text: json.loads(text) for text in sets}


def _tally(counted: Counter[_Kind], parsed: dict[str, dict[str, bool]]) -> dict[str, int]:
    """The per-day figures' names (decisions, actions, GPC, asked/granted per purpose) of
    counted latest decisions."""
    figures: dict[str, int] = {}
    for (text, action, gpc), n in counted.items():
        figures["decisions"] = figures.get("decisions", 0) + n
        figures[f"action:{action}"] = figures.get(f"action:{action}", 0) + n
        if gpc:
            figures["gpc"] = figures.get("gpc", 0) + n
        for pid, granted in parsed[text].items():
            figures[f"asked:{pid}"] = figures.get(f"asked:{pid}", 0) + n
            if granted:
                figures[f"granted:{pid}"] = figures.get(f"granted:{pid}", 0) + n
    return figures


def verification(check: FullCheck, seconds: float | None = None) -> dict[str, Any]:
    """A verification's outcome as the overview shows it (and the desk keeps it in the ledger's
    ``last_verify``): when, whether the chain is intact and where it broke if it did, what else
    was found wrong (``problems``), and the checkpoint the tree was checked against."""
    report = check.report
    outcome: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ok": check.ok,
        "records": report.records,
        "head": report.head_hash,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
        "problems": check.problems,
        "checkpoint": check.checkpoint,
    }
    if seconds is not None:
        outcome["seconds"] = round(seconds, 2)
    return outcome
