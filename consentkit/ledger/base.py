"""What every ledger backend offers."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from .records import LedgerRecord, NewRecord, utc_timestamp
from .verify import ChainVerifier, VerifyReport

SCHEMA_VERSION = 2  # 2: per-day figures (consentkit_daily) and the audit access log


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records to read. Times are ISO 8601 strings compared with ``recorded_at``."""

    since: str | None = None  # inclusive
    until: str | None = None  # exclusive
    subject_id: str | None = None
    purpose: str | None = None  # records whose decision mentions this purpose
    action: str | None = None
    first_seq: int | None = None  # inclusive bounds on seq (parallel verification reads ranges)
    last_seq: int | None = None
    receipt: str | None = None  # records whose hash starts with this (a cookie's receipt)
    method: str | None = None

    def row_filter(self) -> Callable[[Any], bool] | None:
        """A test for raw rows, for the filters a backend does not apply in its query."""
        if self.purpose is None:
            return None
        needle = f'"{self.purpose}":'
        return lambda row: needle in row[5]


def where_clause(flt: RecordFilter, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
    """SQL conditions (each prefixed with `` AND ``) and parameters for a filter's indexed fields.

    ``placeholder(n)`` spells the n-th parameter (``?`` for SQLite, ``$n`` for PostgreSQL).
    """
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("recorded_at", flt.since, ">="),
        ("recorded_at", flt.until, "<"),
        ("subject_id", flt.subject_id, "="),
        ("action", flt.action, "="),
        ("method", flt.method, "="),
        ("seq", flt.first_seq, ">="),
        ("seq", flt.last_seq, "<="),
        # A hex prefix as a range, so that the index on hash serves it: "ab12" <= h < "ab12g".
        ("hash", flt.receipt, ">="),
        ("hash", None if flt.receipt is None else flt.receipt + "g", "<"),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f" AND l.{column} {op} {placeholder(len(params))}")
    return "".join(clauses), params


# Columns of the ledger table in storage order, as ``l.``-qualified SQL.
COLUMNS_SQL = (
    "l.seq, l.event_id, l.recorded_at, l.subject_id, l.action, l.purposes, l.method, "
    "l.policy_revision, l.policy_version, l.policy_digest, l.locale, l.ip_prefix, l.user_agent, "
    "l.gpc, l.evidence, l.pii_digest, l.prev_hash, l.hash"
)


class Ledger(abc.ABC):
    """An append-only, hash-chained consent ledger."""

    url: str

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

    @abc.abstractmethod
    def row_pages(
        self, flt: RecordFilter | None = None, *, with_salts: bool = False
    ) -> AsyncIterator[list[Any]]:
        """Stream raw rows (``EXPORT_FIELDS`` order, then the salt or None) in ``seq`` order, a
        page at a time, in constant memory. The ``purpose`` filter is not applied here."""

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

    @abc.abstractmethod
    async def history(self, subject_id: str) -> list[LedgerRecord]:
        """One subject's records, oldest first."""

    @abc.abstractmethod
    async def policy_text(self, digest: str) -> str | None:
        """The canonical JSON of the policy with this digest, as stored when first used."""

    @abc.abstractmethod
    async def erase(self, subject_id: str) -> LedgerRecord:
        """De-identify a subject: delete the personal fields (subject id, address prefix, user
        agent, evidence) of its records and their salts, and append an ``erase`` record (without
        the id). The chain still verifies, because it commits to the salted digests, which stay.

        Raises SubjectNotFound when no record belongs to the subject. Returns the erase record.
        """

    async def verify(self) -> VerifyReport:
        """Check the whole chain; the report names the first bad ``seq``."""
        verifier = ChainVerifier()
        async for rows in self.row_pages(with_salts=True):
            if not verifier.feed_rows(rows):
                break
        return verifier.report()

    # -- the small queries both backends answer the same way ---------------------------------

    @abc.abstractmethod
    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one read query (``?`` placeholders)."""

    @abc.abstractmethod
    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One write outside the chain (``?`` placeholders)."""

    async def daily(
        self, first_day: str | None = None, last_day: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Per-day figures kept with every commit: ``{day: {metric: count}}`` (see ``add_daily``)."""
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

    async def log_access(
        self, user: str | None, ip_prefix: str | None, method: str, path: str, status: int
    ) -> None:
        """Keep one access to the auditor's desk."""
        await self._execute(
            'INSERT INTO consentkit_audit_log (at, "user", ip_prefix, method, path, status) '
            "VALUES (?, ?, ?, ?, ?, ?)",
            (utc_timestamp(), user, ip_prefix, method, path, status),
        )

    async def access_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest accesses to the auditor's desk, newest first."""
        rows = await self._select(
            'SELECT at, "user", ip_prefix, method, path, status FROM consentkit_audit_log '
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("at", "user", "ip_prefix", "method", "path", "status")
        return [dict(zip(keys, tuple(row), strict=True)) for row in rows]

    async def get_meta(self, key: str) -> str | None:
        """A value of the ledger's own bookkeeping (e.g. ``last_verify``)."""
        rows = await self._select("SELECT value FROM consentkit_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ledger's own bookkeeping."""
        await self._execute(
            "INSERT INTO consentkit_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
