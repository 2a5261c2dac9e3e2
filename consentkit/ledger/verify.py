"""Checking a ledger's chain: sequence, links, hashes, personal-field digests and ordering."""

from __future__ import annotations

from dataclasses import dataclass

from .records import (
    ACTIONS,
    GENESIS_HASH,
    METHODS,
    LedgerRecord,
    chain_hash,
    committed_json,
    pii_digest,
    pii_json,
)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification."""

    ok: bool
    records: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    erased: int = 0  # records whose personal fields were crypto-shredded


class ChainVerifier:
    """Feed records in ``seq`` order; the first problem found is kept."""

    def __init__(self) -> None:
        self.count = 0
        self.erased = 0
        self.head = GENESIS_HASH
        self._expected_seq = 1
        self._last_time = ""
        self.bad_seq: int | None = None
        self.problem: str | None = None

    def feed(self, r: LedgerRecord) -> bool:
        """Check one record; ``False`` once a problem has been found."""
        problem = self._check(r)
        if problem is not None:
            self.bad_seq, self.problem = r.seq, problem
            return False
        self.count += 1
        self.head = r.hash
        self._expected_seq = r.seq + 1
        self._last_time = r.recorded_at
        return True

    def report(self) -> VerifyReport:
        """What was found so far."""
        return VerifyReport(
            ok=self.problem is None,
            records=self.count,
            head_hash=self.head,
            first_bad_seq=self.bad_seq,
            problem=self.problem,
            erased=self.erased,
        )

    def _check(self, r: LedgerRecord) -> str | None:
        if r.seq != self._expected_seq:
            if r.seq > self._expected_seq:
                return f"records {self._expected_seq}..{r.seq - 1} are missing"
            return f"seq out of order: expected {self._expected_seq}"
        if r.prev_hash != self.head:
            return "prev_hash does not match the previous record's hash (a record was removed or altered)"
        if r.recorded_at < self._last_time:
            return f"recorded_at {r.recorded_at} is earlier than the previous record's {self._last_time}"
        if r.action not in ACTIONS:
            return f"unknown action {r.action!r}"
        if r.method not in METHODS:
            return f"unknown method {r.method!r}"
        personal = (r.subject_id, r.ip_prefix, r.user_agent, r.evidence_json)
        if r.pii_salt is None:
            if any(v is not None for v in personal):
                return "personal fields present but their salt is missing"
            self.erased += 1
        elif pii_digest(r.pii_salt, pii_json(*personal)) != r.pii_digest:
            return "personal fields (subject, address, user agent or evidence) were altered"
        expected = chain_hash(
            r.prev_hash,
            committed_json(
                seq=r.seq,
                event_id=r.event_id,
                recorded_at=r.recorded_at,
                action=r.action,
                purposes_json=r.purposes_json,
                method=r.method,
                policy_revision=r.policy_revision,
                policy_version=r.policy_version,
                policy_digest=r.policy_digest,
                locale=r.locale,
                gpc=r.gpc,
                pii_digest=r.pii_digest,
            ),
        )
        if expected != r.hash:
            return "hash does not match the record's contents (the record was altered)"
        return None
