"""What every ledger backend offers, and everything the backends do the same way.

A backend supplies connections, group commit and the chain's lock: ``open``, ``close``,
``append``, ``_pages`` (raw rows, streamed), ``_select`` (one query) and ``_write`` (one write
transaction, see ``transaction.py``). Every other operation is written here once.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from .queries import RecordFilter, select_records
from .records import LedgerRecord, NewRecord, RecordPage, RecordRow, utc_timestamp
from .transaction import StoredTexts, T, Transaction, Work, erase_subject
from .verify import ChainVerifier, VerifyReport

if TYPE_CHECKING:
    from .keys import SigningKey


def last_written(result: object) -> LedgerRecord | None:
    """The record of highest ``seq`` a write returned (an append's batch, an erasure's record):
    if the write committed, that one is in the ledger under this ``seq`` and ``hash``; if not, it
    is not (a hash commits to its place in the chain). What a backend looks up when a COMMIT's
    answer was lost. (A repeated idempotency key's record is older, and there either way.)"""
    if isinstance(result, LedgerRecord):
        return result
    if isinstance(result, list) and result and all(isinstance(r, LedgerRecord) for r in result):
        last: LedgerRecord = max(result, key=lambda r: int(r.seq))
        return last
    return None


class Ledger(abc.ABC):
    """An append-only, hash-chained consent ledger."""

    url: str

    def __init__(self) -> None:
        self._texts = StoredTexts()
        self.commits = 0  # write transactions committed by this object (for benchmarks)

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create or check the schema. Raises LedgerCorrupt for a foreign store,
        LedgerUnavailable when it cannot be reached (the kit retries later)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release connections."""

    @abc.abstractmethod
    async def append(self, entry: NewRecord) -> LedgerRecord:
        """Append one record and return it once durably committed.

        Raises LedgerUnavailable when it cannot be written; then nothing was acknowledged.
        """

    # -- what a backend supplies ------------------------------------------------------------

    @abc.abstractmethod
    def _pages(self, flt: RecordFilter, *, with_salts: bool) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Stream the rows of ``select_records(flt)`` in ``seq`` order, a page at a time, in
        constant memory, as the driver returns them."""

    @abc.abstractmethod
    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one read query (``?`` placeholders)."""

    @abc.abstractmethod
    async def _write(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction and commit it (then ``_committed``).

        Raises LedgerUnavailable when the ledger cannot be written; then nothing was.
        """

    def _committed(self, tx: Transaction) -> None:
        """Bookkeeping after a write transaction committed (never after a rollback)."""
        self.commits += 1
        self._texts.committed(tx)

    # -- reading ------------------------------------------------------------------------------

    async def row_pages(
        self, flt: RecordFilter | None = None, *, with_salts: bool = False
    ) -> AsyncIterator[Sequence[RecordRow]]:
        """Stream stored rows in ``seq`` order, a page at a time, in constant memory. The
        ``purpose`` filter is not applied here (see ``RecordFilter.row_filter``)."""
        async for rows in self._pages(flt or RecordFilter(), with_salts=with_salts):
            yield RecordPage(rows)

    async def records(
        self, flt: RecordFilter | None = None, *, with_salts: bool = False
    ) -> AsyncIterator[LedgerRecord]:
        """Stream records in ``seq`` order, in constant memory."""
        flt = flt or RecordFilter()
        keep = flt.row_filter()
        async for rows in self.row_pages(flt, with_salts=with_salts):
            for row in rows:
                if keep is None or keep(row):
                    yield LedgerRecord.from_row(row)

    async def verify(self) -> VerifyReport:
        """Check the whole chain; the report names the first bad ``seq``."""
        verifier = ChainVerifier()
        await self.feed_verifier(verifier)
        return verifier.report()

    async def feed_verifier(self, verifier: ChainVerifier, flt: RecordFilter | None = None) -> None:
        """Feed the chain (or the part ``flt`` selects) with its salts to ``verifier``, until it
        finds a problem. ``verify``'s hot path: the driver's rows go to it as they come."""
        async for rows in self._pages(flt or RecordFilter(), with_salts=True):
            if not verifier.feed_rows(rows):
                break

    async def history(self, subject_id: str) -> list[LedgerRecord]:
        """One subject's records, oldest first."""
        sql, params = select_records(RecordFilter(subject_id=subject_id))
        rows = await self._select(sql + " ORDER BY l.seq", tuple(params))
        return [LedgerRecord.from_row(row) for row in RecordPage(rows)]

    async def policy_text(self, digest: str) -> str | None:
        """The canonical JSON of the policy with this digest, as stored when first used."""
        rows = await self._select("SELECT policy FROM consentkit_policies WHERE digest = ?", (digest,))
        return str(rows[0][0]) if rows else None

    async def shown_content(self, digest: str) -> str | None:
        """What visitors were shown under this digest (``shown_digest``), as stored when first used."""
        rows = await self._select("SELECT content FROM consentkit_shown WHERE digest = ?", (digest,))
        return str(rows[0][0]) if rows else None

    async def daily(
        self, first_day: str | None = None, last_day: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Per-day figures kept with every commit: ``{day: {metric: count}}`` (see ``daily.py``)."""
        rows = await self._select(
            "SELECT day, metric, count FROM consentkit_daily WHERE day >= ? AND day <= ? ORDER BY day",
            (first_day or "", last_day or "9999"),
        )
        out: dict[str, dict[str, int]] = {}
        for day, metric, count in rows:
            out.setdefault(day, {})[metric] = int(count)
        return out

    async def count_subjects(self) -> int:
        """How many distinct subjects have records (erased ones no longer count)."""
        return int((await self._select("SELECT count(DISTINCT subject_id) FROM consentkit_ledger"))[0][0])

    async def last_seq(self) -> int:
        """The highest ``seq`` in the ledger (0 when empty)."""
        return int((await self._select("SELECT coalesce(max(seq), 0) FROM consentkit_ledger"))[0][0])

    async def access_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest accesses to the auditor's desk, newest first."""
        rows = await self._select(
            'SELECT at, "user", ip_prefix, method, path, status FROM consentkit_audit_log '
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("at", "user", "ip_prefix", "method", "path", "status")
        return [dict(zip(keys, tuple(row), strict=True)) for row in rows]

    # -- the transparency log (treestore.py) ---------------------------------------------------

    async def checkpoint(self, signing_key: str | SigningKey, origin: str) -> str:
        """Sign a checkpoint of the tree of every record now in the ledger, store it and return
        the signed note. Fills the stored chunk roots after the last one first (only here, never
        when a decision is written)."""
        from .treestore import make_checkpoint

        return await make_checkpoint(self, signing_key, origin)

    async def latest_checkpoint(self) -> str | None:
        """The signed note of the last checkpoint made, or None."""
        from .treestore import latest_checkpoint

        made = await latest_checkpoint(self)
        return made.note if made else None

    async def inclusion_proof(self, seq: int, size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of record ``seq`` in the tree of the first ``size`` records
        (default: the latest checkpoint's): ``seq``, ``leaf_index``, ``record_hash``,
        ``tree_size``, ``root_hash``, ``inclusion`` (hex, RFC 9162 order) and ``checkpoint`` (the
        stored note of that size, or None). That tree must be stored: make a checkpoint first."""
        from .treestore import prove_inclusion

        return await prove_inclusion(self, seq, size)

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``old_size`` records to ``new_size``."""
        from .treestore import prove_consistency

        return await prove_consistency(self, old_size, new_size)

    async def get_meta(self, key: str) -> str | None:
        """A value of the ledger's own bookkeeping (e.g. ``last_verify``)."""
        rows = await self._select("SELECT value FROM consentkit_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    # -- writing outside append ---------------------------------------------------------------

    async def erase(self, subject_id: str) -> LedgerRecord:
        """De-identify a subject: delete the personal fields (subject id, address prefix, user
        agent, evidence) of its records and their salts, and append an ``erase`` record (without
        the id). The chain still verifies, because it commits to the salted digests, which stay.

        Raises SubjectNotFound when no record belongs to the subject. Returns the erase record.
        """
        record = await self._write(lambda tx: erase_subject(tx, subject_id, self._texts))
        await self._after_erase()
        return record

    async def _after_erase(self) -> None:
        """What a backend does so that an erased subject is gone from its files, not only from
        its tables (SQLite: empty the write-ahead log; PostgreSQL: see the README)."""
        return None

    async def log_access(
        self, user: str | None, ip_prefix: str | None, method: str, path: str, status: int
    ) -> None:
        """Keep one access to the auditor's desk."""
        await self._execute(
            'INSERT INTO consentkit_audit_log (at, "user", ip_prefix, method, path, status) '
            "VALUES (?, ?, ?, ?, ?, ?)",
            (utc_timestamp(), user, ip_prefix, method, path, status),
        )

    async def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ledger's own bookkeeping."""
        await self._execute(
            "INSERT INTO consentkit_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One write outside the chain (``?`` placeholders), in a transaction of its own."""
        await self._write(lambda tx: tx.execute(sql, params))
