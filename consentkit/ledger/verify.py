"""Checking a ledger's chain: sequence, links, hashes, personal-field digests and ordering."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .records import GENESIS_HASH, LedgerRecord, as_record_row, committed_json, pii_json
from .vocabulary import ACTIONS, METHODS

_BROKEN_LINK = "prev_hash does not match the previous record's hash (a record was removed or altered)"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification."""

    ok: bool
    records: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    erased: int = 0  # records whose personal fields were crypto-shredded
    # Records per (day, action, method, gpc, decision, policy, shown content, an erasure's
    # evidence, model, region) among those verified: what ``coverage.py`` checks the rest against.
    groups: dict[tuple[Any, ...], int] = field(default_factory=dict, compare=False, repr=False)


class ChainVerifier:
    """Feed records in ``seq`` order; the first problem found is kept.

    ``first_seq``/``head`` start the check in the middle of the chain (a range verified in
    parallel): with ``head=None`` the first record's ``prev_hash`` is taken as given and kept in
    ``first_prev`` for the caller to link with the range before.
    """

    def __init__(self, first_seq: int = 1, head: str | None = GENESIS_HASH) -> None:
        self.count = 0
        self.erased = 0
        self.head = head if head is not None else ""
        self.first_prev: str | None = head
        self.first_time: str | None = None
        self._expected_seq = first_seq
        self._last_time = ""
        self.bad_seq: int | None = None
        self.problem: str | None = None
        # How many records share each (day, action, method, gpc, decision, policy, shown content,
        # an erasure's evidence, model, region): what the figures and texts beside the chain must agree with
        # (``coverage.py``). A few thousand groups for a year, however many records.
        self.groups: dict[tuple[Any, ...], int] = {}

    def feed(self, r: LedgerRecord) -> bool:
        """Check one record; ``False`` once a problem has been found."""
        return self.feed_rows([r.to_row()])

    def _start(self, row: Sequence[Any]) -> None:
        """Note where the checked range starts, from its first row."""
        first = as_record_row(row)
        if self.first_prev is None:
            # Verifying a range from its middle: its first link is checked by the caller.
            self.first_prev = self.head = first.prev_hash
        if self.first_time is None:
            self.first_time = first.recorded_at

    def feed_rows(self, rows: Sequence[Sequence[Any]]) -> bool:
        """Check rows with salts in ``seq`` order (``RecordRow`` order, as a driver returns them);
        ``False`` at a problem. The hot loop of ``consentkit verify``: one unpack, one f-string."""
        sha = hashlib.sha256
        if rows and self.first_time is None:
            self._start(rows[0])
        expected_seq = self._expected_seq
        head = self.head
        last_time = self._last_time
        groups = self.groups
        for row in rows:
            (seq, event_id, recorded_at, subject, action, purposes, method, revision, version,
             digest, locale, ip, ua, gpc, evidence, pii, prev, hsh, shown, region, model,
             salt) = row  # fmt: skip
            problem = None
            try:
                if type(seq) is not int or type(revision) is not int:
                    problem = "seq and policy_revision must be whole numbers"
                elif seq != expected_seq:
                    if seq > expected_seq:
                        problem = f"records {expected_seq}..{seq - 1} are missing"
                    else:
                        problem = f"seq out of order: expected {expected_seq}"
                elif prev != head:
                    problem = _BROKEN_LINK
                elif recorded_at < last_time:
                    problem = f"recorded_at {recorded_at} is earlier than the previous record's {last_time}"
                elif action not in ACTIONS:
                    problem = f"unknown action {action!r}"
                elif method not in METHODS:
                    problem = f"unknown method {method!r}"
                elif salt is None:
                    if subject is not None or ip is not None or ua is not None or evidence is not None:
                        problem = "personal fields present but their salt is missing"
                    else:
                        self.erased += 1
                elif sha(bytes(salt) + pii_json(subject, ip, ua, evidence).encode()).hexdigest() != pii:
                    problem = "personal fields (subject, address, user agent or evidence) were altered"
                if problem is None:
                    committed = committed_json(
                        seq, event_id, recorded_at, action, purposes, method, revision, version, digest,
                        locale, gpc, pii, shown, region, model,
                    )  # fmt: skip
                    if sha((prev + committed).encode()).hexdigest() != hsh:
                        problem = "hash does not match the record's contents (the record was altered)"
            except (TypeError, ValueError, AttributeError):
                # A tampered column of the wrong type (a number for a text, text for the salt…):
                # a finding about the record, never a crash of the verification.
                problem = "a column holds a value of the wrong type (the record was altered)"
            if problem is not None:
                # Missing records are named by the first one missing, anything else by its own seq.
                missing = type(seq) is int and seq > expected_seq
                self.bad_seq, self.problem = (expected_seq if missing else seq), problem
                break
            self.count += 1
            group = (recorded_at[:10], action, method, gpc, purposes, digest, shown,
                     evidence if action == "erase" else None, model, region)  # fmt: skip
            groups[group] = groups.get(group, 0) + 1
            head = hsh
            expected_seq = seq + 1
            last_time = recorded_at
        self._expected_seq, self.head, self._last_time = expected_seq, head, last_time
        return self.problem is None

    @property
    def last_time(self) -> str:
        """``recorded_at`` of the last record that verified."""
        return self._last_time

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next record must have."""
        return self._expected_seq

    def report(self) -> VerifyReport:
        """What was found so far."""
        return VerifyReport(
            ok=self.problem is None,
            records=self.count,
            head_hash=self.head,
            first_bad_seq=self.bad_seq,
            problem=self.problem,
            erased=self.erased,
            groups=self.groups,
        )
