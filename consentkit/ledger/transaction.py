"""Writing to the ledger, once for both backends.

Appending a batch and erasing a subject are written here (migrating the schema in ``schema.py``)
as coroutines over a ``Transaction``: one open write transaction that holds the chain's lock.
Each backend supplies the transaction and keeps only what really differs — how it connects, how
it batches (group commit), how it locks the chain's head, how it sends many rows.

PostgreSQL's transaction awaits asyncpg. SQLite's does its work at once in the writer thread
(``sqlite3`` is synchronous), so its coroutines never wait and ``run_sync`` runs them there.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote, quote_plus

from ..errors import SubjectNotFound
from .daily import daily_counts_of_batch, upsert_rows
from .queries import (
    FORGET_IN_ACCESS_LOG,
    FORGET_OLD_KEYS,
    FORGET_PERSONAL_FIELDS,
    FORGET_SALTS,
    INSERT_KEY,
    INSERT_POLICY,
    INSERT_RECORD,
    INSERT_SALT,
    INSERT_SHOWN,
    UPSERT_DAILY,
    Insert,
    RecordFilter,
    select_records,
)
from .records import LedgerRecord, NewRecord, as_record_row, erasure_record, seal_batch, utc_timestamp

T = TypeVar("T")
#: How long a decision's idempotency key is remembered (the IETF draft's advice: a day at least).
KEY_LIFETIME = timedelta(hours=24)
# Keys older than that are deleted when a batch crosses a multiple of this many records.
_SWEEP_EVERY = 1024
#: The chain's last record as ``(seq, hash, recorded_at)``, or None for an empty chain.
Head: TypeAlias = tuple[int, str, str] | None


class Transaction(abc.ABC):
    """One open write transaction, as the shared writing code sees it (``?`` placeholders)."""

    #: ``"sqlite"`` or ``"postgres"``: for the few migration steps whose test of what is already
    #: there each dialect spells its own way (``schema.py``).
    dialect: str

    def __init__(self) -> None:
        # Digests of the policies and shown contents this transaction stored: the ledger learns
        # them once it commits.
        self.stored_policies: set[str] = set()
        self.stored_shown: set[str] = set()

    @abc.abstractmethod
    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of one query."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement."""

    @abc.abstractmethod
    async def insert(self, statement: Insert, rows: list[tuple[Any, ...]]) -> None:
        """Insert many rows, as few round trips as the backend can."""

    @abc.abstractmethod
    def stream(self, sql: str) -> AsyncIterator[Any]:
        """The rows of a large query, in constant memory."""

    @abc.abstractmethod
    async def lock_head(self) -> Head:
        """The chain's head, locked against other writers until the transaction ends."""

    async def move_head(self, last: LedgerRecord) -> None:  # noqa: B027 (optional hook)
        """Record the chain's new head, if the backend keeps it apart from the records."""


#: What a backend runs in one transaction.
Work: TypeAlias = Callable[[Transaction], Coroutine[Any, Any, T]]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (SQLite's transaction) to its end, here and now."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a ledger transaction waited for something inside SQLite's writer thread")


class StoredTexts:
    """The digests of policies and shown contents known to be stored, so that each text is
    written once per process.

    A digest is learnt only after the transaction that stored it has committed: after a rollback
    the text is not in the ledger, and the next record that names it must store it again.
    (Processes that do not share this cache rely on the inserts ignoring a duplicate.)
    """

    def __init__(self) -> None:
        self._policies: set[str] = set()
        self._shown: set[str] = set()

    def missing_policies(self, entries: Iterable[NewRecord]) -> list[NewRecord]:
        """One entry per policy of ``entries`` whose text is not known to be stored."""
        new: dict[str, NewRecord] = {}
        for entry in entries:
            if entry.policy_json is not None and entry.policy_digest not in self._policies:
                new.setdefault(entry.policy_digest, entry)
        return list(new.values())

    def missing_shown(self, entries: Iterable[NewRecord]) -> dict[str, str]:
        """``{digest: content}`` of the shown contents of ``entries`` not known to be stored."""
        return {
            e.shown_digest: e.shown_json
            for e in entries
            if e.shown_digest is not None and e.shown_json is not None and e.shown_digest not in self._shown
        }

    def committed(self, tx: Transaction) -> None:
        """Learn the texts a committed transaction stored."""
        self._policies.update(tx.stored_policies)
        self._shown.update(tx.stored_shown)


async def append_records(tx: Transaction, entries: list[NewRecord], texts: StoredTexts) -> list[LedgerRecord]:
    """Chain ``entries`` after the head and write them, with their salts, the texts they name
    (policies, shown contents) and the per-day figures."""
    return await _append_after(tx, await tx.lock_head(), entries, texts)


async def _append_after(
    tx: Transaction, head: Head, entries: list[NewRecord], texts: StoredTexts
) -> list[LedgerRecord]:
    """Write ``entries`` after ``head``; the result holds one record per entry, in order: the
    one written, or for a repeated idempotency key the one its first decision wrote."""
    if any(e.idempotency_key is not None for e in entries):
        return await _append_keyed(tx, head, entries, texts)
    return await _write(tx, head, entries, texts)


async def _write(
    tx: Transaction, head: Head, entries: list[NewRecord], texts: StoredTexts
) -> list[LedgerRecord]:
    sealed = seal_batch(entries, head)
    first_seen = sealed[0].recorded_at
    new_policies = texts.missing_policies(entries)
    if new_policies:
        await tx.insert(
            INSERT_POLICY,
            [
                (e.policy_digest, e.policy_revision, e.policy_version, e.policy_json, first_seen)
                for e in new_policies
            ],
        )
        tx.stored_policies.update(e.policy_digest for e in new_policies)
    new_shown = texts.missing_shown(entries)
    if new_shown:
        await tx.insert(INSERT_SHOWN, [(d, content, first_seen) for d, content in new_shown.items()])
        tx.stored_shown.update(new_shown)
    await tx.insert(INSERT_RECORD, [r.row() for r in sealed])
    await tx.insert(INSERT_SALT, [(r.seq, r.pii_salt) for r in sealed])
    await tx.insert(UPSERT_DAILY, upsert_rows(daily_counts_of_batch(entries, sealed)))
    await tx.move_head(sealed[-1])
    return sealed


async def _append_keyed(
    tx: Transaction, head: Head, entries: list[NewRecord], texts: StoredTexts
) -> list[LedgerRecord]:
    """Append a batch in which some entries carry an idempotency key.

    Looked up in the same transaction that writes, under the chain's lock: a key already
    written in the last day — or twice in one batch — is written once, and its repeats get the
    first record. Nothing else changes for the batch: one repeated key never fails the others.
    """
    at = sealed_time(head)
    keys = {e.idempotency_key for e in entries if e.idempotency_key is not None}
    marks = ",".join("?" * len(keys))
    rows = await tx.fetch(
        f"SELECT key, seq FROM consentkit_idempotency WHERE key IN ({marks}) AND created_at >= ?",
        (*keys, day_before(at)),
    )
    first_seq: dict[str, int] = {str(key): int(seq) for key, seq in rows}
    fresh: list[NewRecord] = []
    for e in entries:
        if e.idempotency_key is None or e.idempotency_key not in first_seq:
            fresh.append(e)
            if e.idempotency_key is not None:
                first_seq[e.idempotency_key] = -1  # written by this batch: later ones repeat it
    written = await _write(tx, head, fresh, texts) if fresh else []
    by_event = {r.event_id: r for r in written}
    new_keys = [
        (e.idempotency_key, r.seq, r.recorded_at)
        for e, r in zip(fresh, written, strict=True)
        if e.idempotency_key
    ]
    if new_keys:
        await tx.insert(INSERT_KEY, new_keys)
        first_seq.update((key, seq) for key, seq, _ in new_keys)
    if written and (written[0].seq - 1) // _SWEEP_EVERY != written[-1].seq // _SWEEP_EVERY:
        await tx.execute(FORGET_OLD_KEYS, (day_before(at),))  # now and then, not per batch
    return [
        by_event.get(e.event_id) or await _record_at(tx, first_seq[str(e.idempotency_key)]) for e in entries
    ]


async def _record_at(tx: Transaction, seq: int) -> LedgerRecord:
    sql, params = select_records(RecordFilter(first_seq=seq, last_seq=seq))
    (row,) = await tx.fetch(sql, tuple(params))
    return LedgerRecord.from_row(as_record_row(row))


def sealed_time(head: Head) -> str:
    """The ``recorded_at`` the next batch after ``head`` will get (``seal_batch``'s rule)."""
    return max(utc_timestamp(), head[2] if head is not None else "")


def day_before(recorded_at: str) -> str:
    """``recorded_at`` less ``KEY_LIFETIME``, in the same format (they compare as text)."""
    return utc_timestamp(datetime.fromisoformat(recorded_at.replace("Z", "+00:00")) - KEY_LIFETIME)


async def erase_subject(tx: Transaction, subject_id: str, texts: StoredTexts) -> LedgerRecord:
    """De-identify a subject's records and append the ``erase`` record (see ``Ledger.erase``)."""
    # The head first: another erasure of the same subject waits here, then finds nothing left.
    head = await tx.lock_head()
    sql, params = select_records(RecordFilter(subject_id=subject_id))
    rows = await tx.fetch(sql + " ORDER BY l.seq", tuple(params))
    if not rows:
        raise SubjectNotFound(f"no ledger record belongs to subject {subject_id!r}")
    await tx.execute(FORGET_SALTS, (subject_id,))
    await tx.execute(FORGET_PERSONAL_FIELDS, (subject_id,))
    # As a desk URL carried it: as is, and percent- or form-encoded.
    for spelling in {subject_id, quote(subject_id, safe=""), quote_plus(subject_id)}:
        await tx.execute(FORGET_IN_ACCESS_LOG, (spelling, spelling))
    erase = erasure_record(LedgerRecord.from_row(as_record_row(rows[-1])), len(rows))
    return (await _append_after(tx, head, [erase], texts))[0]
