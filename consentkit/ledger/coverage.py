"""What ``verify`` checks besides the chain: everything else an auditor is shown.

The chain (``verify.py``) and the tree (``treestore.py``) prove the records. An auditor is also
shown things that are stored beside them, which whoever runs the database could edit without
touching a record; each is checked here against the records or its digest:

- the **policy texts** (the desk's "policy text shown"): each must hash to its digest, and every
  digest a record names must have its text;
- the **shown contents** (what the banner showed, ``shown_digest``): likewise;
- the **per-day figures** (``consentkit_daily``, the overview's charts and rates): they must be
  exactly what the records add up to;
- **de-identified records**: only as many as the ``erase`` records account for (an operator who
  nulls a record's personal fields and deletes its salt, without an erasure, is found);
- the desk's **last verification** (its "intact" badge): the head it names must be the hash of
  the record it names.

What the records say about all of these comes from the chain's own pass, which reads every
record anyway: it counts the records of each (day, action, method, decision, policy, shown
content) group (``ChainVerifier.groups``), a few thousand for a year, and this adds them up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .daily import Counts, add_daily

if TYPE_CHECKING:
    from .base import Ledger

_TEXTS = {
    "policy text": "SELECT digest, policy FROM consentkit_policies",
    "shown content": "SELECT digest, content FROM consentkit_shown",
}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Tally:
    """What the records add up to, from the aggregate's groups."""

    def __init__(self) -> None:
        self.daily: Counts = {}
        self.named: dict[str, set[str]] = {"policy text": set(), "shown content": set()}
        self.accounted = 0  # records the erase records say they de-identified
        self.problems: list[str] = []

    def add(self, group: Iterable[Any], n: int) -> None:
        day, action, method, gpc, purposes, policy, shown, erased, model, region = group
        self.named["policy text"].add(policy)
        if shown is not None:
            self.named["shown content"].add(shown)
        try:
            decision = json.loads(purposes)
            if erased is not None:
                self.accounted += int(json.loads(erased)["erased_records"]) * int(n)
        except (ValueError, TypeError, KeyError):
            # The chain pass names the record; here only the figures would be off.
            self.problems.append(f"records of {day} hold a {action} record that cannot be read")
            return
        add_daily(self.daily, day, action, method, bool(gpc), decision, int(n), model, region)


async def check_coverage(ledger: Ledger, erased: int, groups: Mapping[tuple[Any, ...], int]) -> list[str]:
    """What is wrong with everything the auditor is shown beside the records (nothing: ``[]``).

    ``erased`` and ``groups`` are what the chain's pass over every record found
    (``VerifyReport.erased``, ``ChainVerifier.groups``).
    """
    tally = _Tally()
    for group, n in groups.items():
        tally.add(group, n)
    problems = tally.problems
    for kind, sql in _TEXTS.items():
        stored = set()
        for digest, text in await ledger._select(sql):
            stored.add(digest)
            if _sha256(str(text)) != digest:
                problems.append(f"the stored {kind} {digest} does not match its digest (it was altered)")
        missing = sorted(tally.named[kind] - stored)
        if missing:
            problems.append(f"records name {len(missing)} {kind}(s) the ledger does not hold: {missing[0]}…")
    problems += _daily_problems(tally.daily, await ledger.daily())
    if erased != tally.accounted:
        problems.append(
            f"{erased} records are de-identified but erase records account for {tally.accounted}: "
            "personal fields were removed without an erasure"
            if erased > tally.accounted
            else "erase records account for more de-identified records than the ledger holds"
        )
    problems += await _last_verify_problems(ledger)
    return problems


def _daily_problems(counted: Counts, stored: dict[str, dict[str, int]]) -> list[str]:
    """The first per-day figure that differs from what the records add up to, if any."""
    kept = {(day, metric): n for day, metrics in stored.items() for metric, n in metrics.items()}
    for key in sorted(set(counted) | set(kept)):
        if counted.get(key, 0) != kept.get(key, 0):
            day, metric = key
            return [
                f"the per-day figure {metric} of {day} is {kept.get(key, 0)} in the ledger, "
                f"but the records make it {counted.get(key, 0)}"
            ]
    return []


async def _last_verify_problems(ledger: Ledger) -> list[str]:
    """The desk's badge must name a head the chain has (``Ledger.get_meta('last_verify')``)."""
    raw = await ledger.get_meta("last_verify")
    if raw is None:
        return []
    try:
        last = json.loads(raw)
        records, head = int(last["records"]), str(last["head"])
    except (ValueError, TypeError, KeyError):
        return ["the desk's last verification (last_verify) cannot be read"]
    if records == 0:
        return []
    rows = await ledger._select("SELECT hash FROM consentkit_ledger WHERE seq = ?", (records,))
    if not rows or rows[0][0] != head:
        return [
            f"the desk's last verification names head {head[:16]}… at record {records}, "
            "which the chain does not have"
        ]
    return []
