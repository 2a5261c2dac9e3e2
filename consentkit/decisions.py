"""A decision's one path: from a visitor's choice to a durable record and a new consent.

Whatever collects a decision — the banner's ``POST /consent``, the widget, ``kit.record`` for a
consent that is not a cookie — hands it here, already checked, with the facts of the request
that carried it. Read top to bottom, :meth:`Decisions.decide` is what a decision does:

1. the subject is the one the visitor's cookie already names, or a new pseudonymous id;
2. the choice becomes the full decision, every purpose of the policy true or false;
3. the ledger record is appended, and this waits until it is durable (a ledger that cannot be
   written raises, and nothing is acknowledged);
4. the cookie's decision and the visitor's new consent are made from the committed record.

Nothing here knows HTTP: reading a request is ``consentkit/http/decision_form.py``'s job, and
answering one the endpoint's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .canonical import canonical_json
from .consent import Consent, evaluate
from .cookie import StoredDecision, new_subject_id
from .errors import IdempotencyKeyReused, InvalidRecordError
from .ledger import Ledger, LedgerRecord, NewRecord
from .ledger.vocabulary import RECORD_ACTIONS, RECORD_METHODS, Action, Method
from .policy import PURPOSE_ID_PATTERN, Policy

if TYPE_CHECKING:
    from .ui.shown import Shown

MAX_EVIDENCE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Choice:
    """What a visitor chose, checked against the policy."""

    action: Action
    granted: frozenset[str]  # the resulting granted purposes, essential ones included
    method: Method

    @classmethod
    def of(cls, policy: Policy, action: Action, requested: frozenset[str], method: Method) -> Choice:
        """The choice an action makes: all, only the essential ones, or what was ticked."""
        if action is Action.ACCEPT_ALL:
            granted = frozenset(policy.ids)
        elif action is Action.SAVE:
            granted = requested | policy.essential_ids
        else:  # reject_all, withdraw: a shared form's ticked boxes do not count for them
            granted = policy.essential_ids
        return cls(action, granted, method)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the ledger keeps of the request that carried a decision."""

    locale: str
    ip_prefix: str | None = None  # already truncated (/24, /48)
    user_agent: str | None = None  # already cut to 512 characters
    gpc: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """A committed decision: its record, the cookie's decision and the visitor's new consent."""

    record: LedgerRecord
    stored: StoredDecision
    consent: Consent


class Decisions:
    """Turns checked choices into durable ledger records and new consents.

    ``shown`` tells what the banner and preference center showed a visitor (their consent
    before deciding, their language): its digest goes into the record and its content, once,
    into the ledger (``consentkit/ui/shown.py``).
    """

    def __init__(
        self, policy: Policy, ledger: Ledger, shown: Callable[[Consent, str], Shown] | None = None
    ) -> None:
        self.policy = policy
        self.ledger = ledger
        self.shown = shown

    async def decide(
        self, choice: Choice, before: Consent, facts: RequestFacts, key: str | None = None
    ) -> Outcome:
        """Record a visitor's choice durably; then what the cookie and the page may say.

        ``key`` (the request's ``Idempotency-Key``): a decision sent again with the key of one
        already recorded in the last day writes nothing and gets the first one's outcome.
        """
        policy = self.policy
        known = remembered(before)
        subject = known.subject_id if known is not None else new_subject_id()
        purposes = {pid: pid in choice.granted for pid in policy.ids}
        shown = self.shown(before, facts.locale) if self.shown is not None else None
        entry = self.new_record(
            subject, choice.action, purposes, choice.method, facts, shown=shown, key=key,
            region=before.region, model=before.model,
        )  # fmt: skip
        record = await self.ledger.append(entry)
        if record.event_id != entry.event_id:  # a repeat: the first decision's outcome
            if record.action != choice.action or record.purposes != purposes:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for a different decision; "
                    "send a new key with each new decision"
                )
            subject = record.subject_id or subject
        stored = StoredDecision(
            subject_id=subject,
            revision=record.policy_revision,
            granted=frozenset(p for p in policy.optional_ids if purposes[p]),
            denied=frozenset(p for p in policy.optional_ids if not purposes[p]),
            decided_at=int(datetime.fromisoformat(record.recorded_at).timestamp()),
            receipt=record.receipt,
            gpc=facts.gpc,
            model=before.model,
        )
        consent = evaluate(policy, stored, facts.gpc, time.time(), before.model, before.region)
        return Outcome(record, stored, consent)

    async def record(
        self,
        subject_id: str,
        purposes: Mapping[str, bool],
        facts: RequestFacts,
        *,
        action: str = Action.RECORD,
        method: str = Method.API,
        evidence: Mapping[str, Any] | None = None,
    ) -> LedgerRecord:
        """Record a consent that is not a cookie (``kit.record``), after checking every field."""
        entry = self.new_record(
            _check_subject(subject_id),
            _check_choice("action", action, RECORD_ACTIONS),
            _check_purposes(purposes),
            _check_choice("method", method, RECORD_METHODS),
            facts,
            _check_evidence(evidence),
        )
        return await self.ledger.append(entry)

    def new_record(
        self,
        subject_id: str,
        action: str,
        purposes: Mapping[str, bool],
        method: str,
        facts: RequestFacts,
        evidence: Mapping[str, Any] | None = None,
        *,
        shown: Shown | None = None,
        key: str | None = None,
        region: str | None = None,
        model: str | None = None,
    ) -> NewRecord:
        """A record under the current policy (``shown``: what the visitor was shown, if
        anything of ours; ``key``: the decision's idempotency key; ``region`` and ``model``:
        the law the decision was made under, see ``consentkit/regions.py``)."""
        policy = self.policy
        return NewRecord(
            subject_id=subject_id,
            # Plain strings into the ledger, whatever enum the caller holds.
            action=str(action),
            purposes=purposes,
            method=str(method),
            policy_revision=policy.revision,
            policy_version=policy.version,
            policy_digest=policy.digest,
            policy_json=policy.canonical_json,
            locale=facts.locale,
            ip_prefix=facts.ip_prefix,
            user_agent=facts.user_agent,
            gpc=facts.gpc,
            evidence=evidence,
            shown_digest=None if shown is None else shown.digest,
            shown_json=None if shown is None else shown.content,
            idempotency_key=key,
            region=region,
            model=None if model is None else str(model),
        )


def remembered(consent: Consent) -> StoredDecision | None:
    """The cookie decision behind a consent: the valid one, or an earlier one remembered."""
    return consent.stored if consent.decided else consent.previous


def _check_subject(subject_id: str) -> str:
    if not isinstance(subject_id, str) or not subject_id.strip() or len(subject_id) > 256:
        raise InvalidRecordError("subject_id must be a non-empty string of at most 256 characters")
    return subject_id


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidRecordError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _check_purposes(purposes: Mapping[str, bool]) -> dict[str, bool]:
    if not isinstance(purposes, Mapping) or not purposes:
        raise InvalidRecordError("purposes must be a non-empty mapping of purpose id to True/False")
    for pid, granted in purposes.items():
        if not isinstance(pid, str) or not PURPOSE_ID_PATTERN.match(pid):
            raise InvalidRecordError(f"purpose id {pid!r} must be 1 to 32 of a-z, 0-9 and _")
        if not isinstance(granted, bool):
            raise InvalidRecordError(f"purposes[{pid!r}] must be True or False, not {granted!r}")
    return dict(purposes)


def _check_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    if not isinstance(evidence, Mapping):
        raise InvalidRecordError("evidence must be a mapping (a JSON object)")
    try:
        text = canonical_json(dict(evidence))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"evidence must be JSON-serialisable: {exc}") from None
    if len(text) > MAX_EVIDENCE_BYTES:
        raise InvalidRecordError(
            "evidence is over 64 KiB: store large documents elsewhere and record their digest"
        )
    return dict(evidence)
