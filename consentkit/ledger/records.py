"""Ledger records and the hash chain that makes them tamper-evident (README, "The consent ledger").

Each record's hash commits to the previous hash and to the record's canonical JSON. Personal
fields (subject id, address prefix, user agent, evidence) enter the hash only through
``pii_digest``, a SHA-256 over a per-record random salt and those fields. The salts are stored
apart from the records: erasing a subject deletes its salts and personal fields, and the chain
still verifies, because the digests stay and nothing can be learnt from them without the salt
(crypto-shredding).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, overload

from ..canonical import canonical_json
from ..entropy import random_bytes
from .vocabulary import ACTIONS as ACTIONS  # re-exported: callers import them from here
from .vocabulary import METHODS as METHODS
from .vocabulary import Action, Method

GENESIS_HASH = "0" * 64
RECEIPT_LENGTH = 16
SALT_BYTES = 32


class RecordRow(NamedTuple):
    """One stored record as the backends read it: its columns in storage order, then its salt.

    Every read of the ledger (``row_pages``, exports, ``verify``) works on these rows as the
    database returns them, so the fields are the stored values: ``purposes`` and ``evidence`` are
    canonical JSON text, byte for byte what the hash committed to, and ``gpc`` is 0/1 on SQLite.
    ``salt`` is only read for verification (None otherwise, and once a subject is erased).
    """

    seq: int
    event_id: str
    recorded_at: str
    subject_id: str | None
    action: str
    purposes: str
    method: str
    policy_revision: int
    policy_version: str
    policy_digest: str
    locale: str
    ip_prefix: str | None
    user_agent: str | None
    gpc: bool | int
    evidence: str | None
    pii_digest: str
    prev_hash: str
    hash: str
    shown_digest: str | None = None
    region: str | None = None
    model: str | None = None
    salt: bytes | None = None


# Field order of exports and of the ledger table: the row's fields but the salt, never exported.
EXPORT_FIELDS: tuple[str, ...] = RecordRow._fields[:-1]

#: A row of a database driver (a tuple, an asyncpg ``Record``) as a ``RecordRow``, without
#: checks: ``tuple.__new__`` runs in C, which matters at a million rows.
as_record_row: Any = functools.partial(tuple.__new__, RecordRow)


class RecordPage(Sequence[RecordRow]):
    """A page of rows as the database driver returned them, read as ``RecordRow`` values.

    Each ``RecordRow`` is made when it is read and let go before the next one: a whole page of
    them alive at once would go up the garbage collector's generations (unlike plain tuples, a
    tuple subclass is never untracked) and cost an export of a million rows a sixth of its speed.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[RecordRow]:
        return map(as_record_row, self._rows)

    @overload
    def __getitem__(self, index: int) -> RecordRow: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordRow]: ...

    def __getitem__(self, index: int | slice) -> RecordRow | list[RecordRow]:
        if isinstance(index, slice):
            return list(map(as_record_row, self._rows[index]))
        row: RecordRow = as_record_row(self._rows[index])
        return row


_enc = json.encoder.encode_basestring  # the C encoder for one JSON string: fast and exact


def new_event_id() -> str:
    """A random (version 4, RFC 9562) UUID, formatted without building a ``uuid.UUID``."""
    b = bytearray(random_bytes(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_salt() -> bytes:
    """A fresh random salt for one record's personal fields."""
    return random_bytes(SALT_BYTES)


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append: everything but its place in the chain.

    What does not depend on the chain (canonical JSON, the salted digest of the personal
    fields) is worked out here, by the caller, so that the single writer does the least.
    """

    subject_id: str | None
    action: str
    purposes: Mapping[str, bool]
    method: str
    policy_revision: int
    policy_version: str
    policy_digest: str
    locale: str
    ip_prefix: str | None = None
    user_agent: str | None = None
    gpc: bool = False
    evidence: Mapping[str, Any] | None = None
    event_id: str = field(default_factory=new_event_id)
    # The policy's canonical JSON, stored once per digest so that auditors can read the text.
    policy_json: str | None = None
    # What the visitor was shown, by digest (None: nothing of ours was shown, e.g. kit.record),
    # and the content itself, stored once per digest (``consentkit/ui/shown.py``).
    shown_digest: str | None = None
    shown_json: str | None = None
    # The visitor's region and the law there (``consentkit/regions.py``); None: not known (an
    # API record), and then neither goes into the hash.
    region: str | None = None
    model: str | None = None
    # The decision's Idempotency-Key: a repeat of a key already written is not written again,
    # and gets the first record back (``transaction.py``).
    idempotency_key: str | None = None
    purposes_json: str = field(init=False)
    evidence_json: str | None = field(init=False)
    salt: bytes = field(init=False)
    pii_digest: str = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "purposes_json", canonical_json(dict(self.purposes)))
        evidence_json = None if self.evidence is None else canonical_json(dict(self.evidence))
        set_(self, "evidence_json", evidence_json)
        salt = new_salt()
        set_(self, "salt", salt)
        set_(
            self,
            "pii_digest",
            pii_digest(salt, pii_json(self.subject_id, self.ip_prefix, self.user_agent, evidence_json)),
        )


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One committed ledger record."""

    seq: int
    event_id: str
    recorded_at: str
    subject_id: str | None
    action: str
    purposes_json: str  # canonical JSON of {purpose_id: bool}
    method: str
    policy_revision: int
    policy_version: str
    policy_digest: str
    locale: str
    ip_prefix: str | None
    user_agent: str | None
    gpc: bool
    evidence_json: str | None  # canonical JSON or None
    pii_digest: str
    prev_hash: str
    hash: str
    shown_digest: str | None = None  # what the banner or preference center showed (None: nothing)
    # The visitor's region (ISO 3166, "US-CA"; None: unknown) and the law there (opt_in, opt_out,
    # notice; None in records before ledger schema 5, and in kit.record's).
    region: str | None = None
    model: str | None = None
    pii_salt: bytes | None = None  # only filled for verification; never exported

    @property
    def receipt(self) -> str:
        """The short receipt carried by the consent cookie: the hash's prefix."""
        return self.hash[:RECEIPT_LENGTH]

    @property
    def purposes(self) -> dict[str, bool]:
        """The full resulting decision."""
        result: dict[str, bool] = json.loads(self.purposes_json)
        return result

    @property
    def evidence(self) -> dict[str, Any] | None:
        """What the person was shown and how they agreed (API records), if any."""
        return None if self.evidence_json is None else json.loads(self.evidence_json)

    def row(self) -> tuple[Any, ...]:
        """The record's columns in storage order (``EXPORT_FIELDS``), as both backends store them."""
        return (
            self.seq,
            self.event_id,
            self.recorded_at,
            self.subject_id,
            self.action,
            self.purposes_json,
            self.method,
            self.policy_revision,
            self.policy_version,
            self.policy_digest,
            self.locale,
            self.ip_prefix,
            self.user_agent,
            self.gpc,
            self.evidence_json,
            self.pii_digest,
            self.prev_hash,
            self.hash,
            self.shown_digest,
            self.region,
            self.model,
        )

    @classmethod
    def from_row(cls, row: RecordRow) -> LedgerRecord:
        """A record from its stored row (with its salt, if the row carries one)."""
        salt = row.salt
        # Positional, in field order: keywords would cost a microsecond more per record read.
        return cls(
            row.seq,
            row.event_id,
            row.recorded_at,
            row.subject_id,
            row.action,
            row.purposes,
            row.method,
            row.policy_revision,
            row.policy_version,
            row.policy_digest,
            row.locale,
            row.ip_prefix,
            row.user_agent,
            bool(row.gpc),
            row.evidence,
            row.pii_digest,
            row.prev_hash,
            row.hash,
            row.shown_digest,
            row.region,
            row.model,
            None if salt is None else bytes(salt),
        )

    def to_row(self) -> RecordRow:
        """The record as a stored row, with its salt (what ``verify`` checks)."""
        return RecordRow._make((*self.row(), self.pii_salt))

    def to_dict(self) -> dict[str, Any]:
        """The record as exported (JSON Lines), fields in ``EXPORT_FIELDS`` order."""
        out = dict(zip(EXPORT_FIELDS, self.row(), strict=True))
        out["purposes"], out["evidence"] = self.purposes, self.evidence  # as JSON values, not text
        return out


def utc_timestamp(now: datetime | None = None) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``, as records carry it."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def pii_json(
    subject_id: str | None, ip_prefix: str | None, user_agent: str | None, evidence_json: str | None
) -> str:
    """Canonical JSON of a record's personal fields."""
    return (
        f'{{"evidence":{"null" if evidence_json is None else evidence_json},'
        f'"ip_prefix":{_str(ip_prefix)},'
        f'"subject_id":{_str(subject_id)},'
        f'"user_agent":{_str(user_agent)}}}'
    )


def pii_digest(salt: bytes, personal_json: str) -> str:
    """The salted digest of a record's personal fields, which the chain commits to."""
    return hashlib.sha256(salt + personal_json.encode("utf-8")).hexdigest()


def committed_json(
    seq: int,
    event_id: str,
    recorded_at: str,
    action: str,
    purposes_json: str,
    method: str,
    policy_revision: int,
    policy_version: str,
    policy_digest: str,
    locale: str,
    gpc: bool | int,
    pii_digest: str,
    shown_digest: str | None = None,
    region: str | None = None,
    model: str | None = None,
) -> str:
    """Canonical JSON (sorted keys, no spaces) of what a record's hash commits to.

    Positional on purpose: ``consentkit verify`` calls it once per record. ``shown_digest`` is
    left out when there is none, and ``model`` and ``region`` (null where the region is unknown)
    when there is no model, so that the records written before they existed (ledger schemas 4
    and 5) hash as they always did.
    """
    if model is None:
        law = region_key = ""
    else:
        law = f'"model":{_enc(model)},'
        region_key = f'"region":{_str(region)},'
    return (
        f'{{"action":{_enc(action)},"event_id":{_enc(event_id)},'
        f'"gpc":{"true" if gpc else "false"},"locale":{_enc(locale)},'
        f'"method":{_enc(method)},{law}"pii_digest":{_enc(pii_digest)},'
        f'"policy_digest":{_enc(policy_digest)},"policy_revision":{policy_revision},'
        f'"policy_version":{_enc(policy_version)},"purposes":{purposes_json},'
        f'"recorded_at":{_enc(recorded_at)},{region_key}"seq":{seq}'
        + ("}" if shown_digest is None else f',"shown_digest":{_enc(shown_digest)}}}')
    )


def chain_hash(prev_hash: str, committed: str) -> str:
    """``sha256(prev_hash ‖ canonical_json(record))`` as hex."""
    return hashlib.sha256((prev_hash + committed).encode("utf-8")).hexdigest()


def seal(entry: NewRecord, *, seq: int, prev_hash: str, recorded_at: str) -> LedgerRecord:
    """Give a new record its place in the chain."""
    committed = committed_json(
        seq,
        entry.event_id,
        recorded_at,
        entry.action,
        entry.purposes_json,
        entry.method,
        entry.policy_revision,
        entry.policy_version,
        entry.policy_digest,
        entry.locale,
        entry.gpc,
        entry.pii_digest,
        entry.shown_digest,
        entry.region,
        entry.model,
    )
    return LedgerRecord(
        seq=seq,
        event_id=entry.event_id,
        recorded_at=recorded_at,
        subject_id=entry.subject_id,
        action=entry.action,
        purposes_json=entry.purposes_json,
        method=entry.method,
        policy_revision=entry.policy_revision,
        policy_version=entry.policy_version,
        policy_digest=entry.policy_digest,
        locale=entry.locale,
        ip_prefix=entry.ip_prefix,
        user_agent=entry.user_agent,
        gpc=entry.gpc,
        evidence_json=entry.evidence_json,
        pii_digest=entry.pii_digest,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, committed),
        shown_digest=entry.shown_digest,
        region=entry.region,
        model=entry.model,
        pii_salt=entry.salt,
    )


def erasure_record(last: LedgerRecord, count: int) -> NewRecord:
    """The record that says a subject's records were erased, without saying whose.

    It carries the policy fields of the subject's last record (what they had last agreed to) and
    only the number of records erased.
    """
    return NewRecord(
        subject_id=None,
        action=Action.ERASE,
        purposes={},
        method=Method.OPERATOR,
        policy_revision=last.policy_revision,
        policy_version=last.policy_version,
        policy_digest=last.policy_digest,
        locale=last.locale,
        evidence={"erased_records": count},
    )


def seal_batch(entries: list[NewRecord], head: tuple[int, str, str] | None) -> list[LedgerRecord]:
    """Chain ``entries`` after ``head`` (``(seq, hash, recorded_at)`` of the last record, or None).

    Call it while holding the ledger's write lock, so that nobody else appends in between.
    All records of one batch share one ``recorded_at``; it never goes back along the chain even
    when the clock (or another writer's) does.
    """
    seq, prev, last_time = head if head is not None else (0, GENESIS_HASH, "")
    recorded_at = max(utc_timestamp(), last_time)
    sealed = []
    for entry in entries:
        seq += 1
        rec = seal(entry, seq=seq, prev_hash=prev, recorded_at=recorded_at)
        prev = rec.hash
        sealed.append(rec)
    return sealed


def _str(value: str | None) -> str:
    return "null" if value is None else _enc(value)
