"""Ledger records as ISO/IEC TS 27560:2023 consent records (``consentkit export --format iso27560``).

One ledger record becomes one JSON object in the standard's four sections — ``header``,
``processing``, ``parties``, ``events`` — with the elements named as ISO/IEC TS 27560 names them
(``schema_version``, ``record_id``, ``pii_principal_id``, ``privacy_notice``…) and, where a value
is a term of a vocabulary, the Data Privacy Vocabulary's term (``dpv:ConsentGiven``), as the W3C
DPVCG guide "consent-27560" maps them. docs/iso27560.md documents every field: its element, its
DPV term, where its value comes from, and the elements left out.

Only what the ledger knows goes in. The record itself gives the ids, the time, the decision and
the language; the policy text the ledger keeps for the record's ``policy_digest`` gives the
controller, the purposes' titles, which purposes are essential and the consent's lifetime. An
element neither knows (the controller's address, the jurisdiction, storage and retention of the
site's data, recipients, how to withdraw on this site) is left out, never guessed. A record of an
erased subject has no personal field left in the ledger, so none in its ISO record.

The export is streamed a page of rows at a time, like the other formats: :meth:`Iso27560Lines.page`
looks up the policies a page refers to (few: one per policy text ever used, kept in a bounded
cache) and formats its rows.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..cache import BoundedCache
from ..ledger.records import RecordRow
from ..ledger.vocabulary import JSON_METHODS, VISITOR_ACTIONS, Action, Method

#: What ``header.schema_version`` says: the standard, and the version of this mapping of it
#: (docs/iso27560.md). It changes when a field's meaning changes.
SCHEMA_VERSION = "ISO/IEC TS 27560:2023 (consentkit 1)"
#: The ``party_id`` of the controller named by the record's policy.
CONTROLLER_PARTY = "controller"

#: Reads the stored policy text of a digest (``Ledger.policy_text``).
PolicyText = Callable[[str], Awaitable[str | None]]

# DPV terms (https://w3id.org/dpv#) of the values below.
CONSENT = "dpv:Consent"
EXPRESSED_CONSENT = "dpv:ExpressedConsent"
DATA_CONTROLLER = "dpv:DataController"
GIVEN = "dpv:ConsentGiven"
REFUSED = "dpv:ConsentRefused"
WITHDRAWN = "dpv:ConsentWithdrawn"
EXPIRED = "dpv:ConsentExpired"

# Policies remembered across pages. A ledger holds one policy text per revision or wording ever
# used, a handful in practice; the bound only keeps a pathological ledger's export in constant
# memory (a page's own policies are held for that page whatever the bound).
_POLICIES_KEPT = 64
_VISITOR_ACTIONS = frozenset(a.value for a in VISITOR_ACTIONS)
# How POST /consent collects a visitor's decision (kit.record's are api, signal and operator).
_VISITOR_METHODS = frozenset(m.value for m in (*JSON_METHODS, Method.NO_JS_FORM))
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class PurposeText:
    """What a policy says of one purpose: essential or not, its title and description by locale."""

    essential: bool
    title: Mapping[str, str]
    description: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """What the ISO record takes from the policy a ledger record names (by its digest)."""

    controller: str | None
    contact: str | None
    privacy_url: str | None
    lifetime_days: int | None
    default_locale: str
    purposes: Mapping[str, PurposeText]

    def text(self, texts: Mapping[str, str], locale: str) -> str | None:
        """A title or description in ``locale``, else its language, else the policy's default
        (the banner's own rule, ``Purpose.text``); ``None`` when the policy has none."""
        return texts.get(locale) or texts.get(locale.split("-")[0]) or texts.get(self.default_locale)


def notice_facts(policy_json: str) -> NoticeFacts | None:
    """The facts of a stored policy text (its canonical JSON), or ``None`` if it is not one.

    Lenient on purpose: an export reads what is there (like ``consentkit export`` of a tampered
    ledger), so a field that is missing or of the wrong type is left out, never fatal.
    """
    try:
        data = json.loads(policy_json)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    purposes: dict[str, PurposeText] = {}
    for item in data.get("purposes") or ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            purposes[item["id"]] = PurposeText(
                essential=item.get("essential") is True,
                title=_texts(item.get("title")),
                description=_texts(item.get("description")),
            )
    lifetime = data.get("consent_lifetime_days")
    default_locale = data.get("default_locale")
    return NoticeFacts(
        controller=_str(data.get("controller")),
        contact=_str(data.get("contact")),
        privacy_url=_str(data.get("privacy_url")),
        # bool is an int in Python; a policy's lifetime is a positive number of days.
        lifetime_days=lifetime if type(lifetime) is int and lifetime > 0 else None,
        default_locale=default_locale if isinstance(default_locale, str) else "",
        purposes=purposes,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and v}


def event_state(action: str, allowed: bool) -> str | None:
    """The DPV consent status a record leaves a purpose in (``None``: the record is no consent
    event, an erasure).

    A purpose allowed is consent given, whatever the action. A purpose not allowed was withdrawn
    by ``withdraw``, lapsed by ``expire``, and refused otherwise: ``reject_all``, ``save``,
    ``record`` and a ``gpc`` opt-out say no without saying whether an earlier yes existed (the
    ledger would have to be read backwards to know, which a streamed export does not do).
    """
    if action == Action.ERASE:
        return None
    if allowed:
        return GIVEN
    if action == Action.WITHDRAW:
        return WITHDRAWN
    if action == Action.EXPIRE:
        return EXPIRED
    return REFUSED


def iso_record(row: RecordRow, notice: NoticeFacts | None) -> dict[str, Any]:
    """One ledger row as an ISO/IEC TS 27560 consent record (docs/iso27560.md, field by field).

    ``notice`` is what the row's policy says (``None`` when the ledger does not hold its text):
    without it the record has no parties, titles, lawful bases or validity, since nothing else
    in the ledger says them.
    """
    subject = row.subject_id  # None once erased, and for the erasure's own record
    decision = _loads(row.purposes)
    if not isinstance(decision, dict):  # only a tampered row; the export still reads it
        decision = {}
    known = notice.purposes if notice is not None else {}
    controlled = notice is not None and notice.controller is not None

    header: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "record_id": row.event_id}
    if subject is not None:
        header["pii_principal_id"] = subject

    privacy_notice: dict[str, Any] = {
        "policy_digest": row.policy_digest,
        "policy_revision": row.policy_revision,
        "policy_version": row.policy_version,
    }
    if notice is not None and notice.privacy_url is not None:
        privacy_notice["url"] = notice.privacy_url
    if row.shown_digest is not None:  # the banner as this visitor saw it (consentkit/ui/shown.py)
        privacy_notice["shown_digest"] = row.shown_digest

    purposes: list[dict[str, Any]] = []
    by_state: dict[str, list[str]] = {}
    for pid, allowed in decision.items():
        text = known.get(pid)
        entry: dict[str, Any] = {"purpose_id": pid}
        if notice is not None and text is not None:
            title = notice.text(text.title, row.locale)
            description = notice.text(text.description, row.locale)
            if title is not None:
                entry["purpose"] = title
            if description is not None:
                entry["description"] = description
        essential = text is not None and text.essential
        if essential:
            # Strictly necessary: always on, never asked for, so not a consent and no event.
            entry["essential"] = True
        elif notice is not None:
            # A purpose the policy does not call essential, or one of kit.record's own (an SMS
            # opt-in): asked for, so consent is its basis. Without the policy we cannot tell.
            entry["lawful_basis"] = CONSENT
        if controlled:
            entry["pii_controllers"] = [CONTROLLER_PARTY]
        purposes.append(entry)
        state = None if essential else event_state(row.action, bool(allowed))
        if state is not None:
            by_state.setdefault(state, []).append(pid)

    record: dict[str, Any] = {
        "header": header,
        "processing": {"privacy_notice": privacy_notice, "language": row.locale, "purposes": purposes},
    }
    if notice is not None and notice.controller is not None:
        party: dict[str, Any] = {
            "party_id": CONTROLLER_PARTY,
            "party_name": notice.controller,
            "party_role": DATA_CONTROLLER,
        }
        if notice.contact is not None:
            party["party_contact"] = notice.contact
        record["parties"] = [party]
    record["events"] = [_event(row, subject, notice, state, pids) for state, pids in by_state.items()]
    record["ledger"] = _ledger(row)
    return record


def _event(
    row: RecordRow, subject: str | None, notice: NoticeFacts | None, state: str, purposes: list[str]
) -> dict[str, Any]:
    """One consent event of a record: the purposes the record leaves in ``state``."""
    # A banner or preference-center decision: the visitor's own click, kept in their cookie for
    # the policy's lifetime and asked again after it (consent.py). kit.record's consents (api,
    # signal, operator) do not lapse, and the ledger does not say how they were expressed.
    by_visitor = row.action in _VISITOR_ACTIONS and row.method in _VISITOR_METHODS
    event: dict[str, Any] = {"event_time": row.recorded_at}
    if by_visitor and notice is not None and notice.lifetime_days is not None:
        event["validity_duration"] = f"P{notice.lifetime_days}D"
    if subject is not None and row.action != Action.EXPIRE:  # a lapse is no one's act
        event["entity_id"] = subject
    if by_visitor:
        event["event_type"] = EXPRESSED_CONSENT
    event["event_state"] = state
    event["indication_method"] = row.method
    event["purposes"] = purposes
    return event


def _ledger(row: RecordRow) -> dict[str, Any]:
    """What the ledger keeps that no ISO element holds: the record's place in the chain (to find
    it in a JSON Lines export and verify it) and, unless erased, the request's facts."""
    out: dict[str, Any] = {"seq": row.seq, "action": row.action, "gpc": bool(row.gpc), "hash": row.hash}
    if row.model is not None:  # the law of the visitor's region (consentkit/regions.py)
        out["model"] = row.model
        out["region"] = row.region
    if row.ip_prefix is not None:
        out["ip_prefix"] = row.ip_prefix
    if row.user_agent is not None:
        out["user_agent"] = row.user_agent
    if row.evidence is not None:
        evidence = _loads(row.evidence)
        out["evidence"] = row.evidence if evidence is None else evidence
    return out


def _loads(text: str) -> Any:
    """A stored JSON column's value; ``None`` if it is not JSON (a tampered row)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


class Iso27560Lines:
    """Formats pages of ledger rows as ISO 27560 JSON Lines, looking up the policies they name.

    ``policy_text`` reads a stored policy by digest (``Ledger.policy_text``); without it every
    record is exported as if its policy text were missing (see :func:`iso_record`).
    """

    def __init__(self, policy_text: PolicyText | None) -> None:
        self._policy_text = policy_text
        self._known: BoundedCache[str, NoticeFacts | None] = BoundedCache(_POLICIES_KEPT)

    async def page(self, rows: Sequence[RecordRow]) -> str:
        """The JSON Lines of one page of rows (one line per row, in order)."""
        notices: dict[str, NoticeFacts | None] = {}
        for digest in {row.policy_digest for row in rows}:
            notices[digest] = await self._notice(digest)
        return "".join(_json(iso_record(row, notices[row.policy_digest])) + "\n" for row in rows)

    async def _notice(self, digest: str) -> NoticeFacts | None:
        if digest in self._known:
            return self._known[digest]
        text = await self._policy_text(digest) if self._policy_text is not None else None
        return self._known.put(digest, None if text is None else notice_facts(text))
