"""The SQL both backends send, written once with ``?`` placeholders.

SQLite takes it as it is; the PostgreSQL backend spells the placeholders ``$1, $2…``
(``dollars``). Everything here is plain SQL both dialects understand (``ON CONFLICT`` needs
SQLite 3.24, 2018), so that a query is never written twice. What really differs between the
two (DDL types, the chain's lock) lives in ``schema.py`` and in each backend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Columns of the ledger table in storage order (``RecordRow``), as ``l.``-qualified SQL.
COLUMNS_SQL = (
    "l.seq, l.event_id, l.recorded_at, l.subject_id, l.action, l.purposes, l.method, "
    "l.policy_revision, l.policy_version, l.policy_digest, l.locale, l.ip_prefix, l.user_agent, "
    "l.gpc, l.evidence, l.pii_digest, l.prev_hash, l.hash, l.shown_digest, l.region, l.model"
)


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
        """A test for ``RecordRow`` values, for the filters a backend does not apply in its query."""
        if self.purpose is None:
            return None
        needle = f'"{self.purpose}":'
        return lambda row: needle in row.purposes


def where_clause(flt: RecordFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters (``?``, in order) for a filter's indexed fields."""
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
            clauses.append(f"l.{column} {op} ?")
    return clauses, params


def select_records(
    flt: RecordFilter, *, with_salts: bool = False, keyset: bool = False
) -> tuple[str, list[Any]]:
    """A query of ``RecordRow`` rows matching a filter (without ``ORDER BY``), and its parameters.

    ``keyset=True`` adds ``l.seq > ?`` for reading page after page: first, with its parameter
    to be passed first, because SQLite scans a rowid range from the first lower bound on ``seq``
    it finds; with a range's ``seq >= first`` before it, every page would be read from the
    range's start again.
    """
    clauses, params = where_clause(flt)
    if keyset:
        clauses.insert(0, "l.seq > ?")
    salt = ", s.salt FROM consentkit_ledger l LEFT JOIN consentkit_pii_salts s ON s.seq = l.seq"
    sql = f"SELECT {COLUMNS_SQL}{salt if with_salts else ', NULL FROM consentkit_ledger l'}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql, params


@dataclass(frozen=True, slots=True)
class Insert:
    """An INSERT of rows of ``width`` values: ``head`` ``VALUES (…), (…)…`` ``tail``.

    SQLite sends many rows per statement (``sql(n)``), PostgreSQL one statement per row in a
    pipeline (``executemany``); see each backend's ``Transaction.insert``.
    """

    head: str
    width: int
    tail: str = ""

    def sql(self, rows: int = 1) -> str:
        """The statement for ``rows`` rows."""
        return _insert_sql(self, rows)


@functools.lru_cache(maxsize=256)
def _insert_sql(statement: Insert, rows: int) -> str:
    group = "(" + ",".join("?" * statement.width) + ")"
    return f"{statement.head} VALUES {','.join([group] * rows)}{statement.tail}"


INSERT_RECORD = Insert(
    "INSERT INTO consentkit_ledger (seq, event_id, recorded_at, subject_id, action, purposes, "
    "method, policy_revision, policy_version, policy_digest, locale, ip_prefix, user_agent, gpc, "
    "evidence, pii_digest, prev_hash, hash, shown_digest, region, model)",
    21,
)
INSERT_SALT = Insert("INSERT INTO consentkit_pii_salts (seq, salt)", 2)
# The first record to refer to a policy stores its text; the others find it there.
INSERT_POLICY = Insert(
    "INSERT INTO consentkit_policies (digest, revision, version, policy, first_seen)",
    5,
    " ON CONFLICT (digest) DO NOTHING",
)
# Each distinct content shown to visitors, stored once by its digest (``consentkit/ui/shown.py``).
INSERT_SHOWN = Insert(
    "INSERT INTO consentkit_shown (digest, content, first_seen)", 3, " ON CONFLICT (digest) DO NOTHING"
)
# Idempotency keys: the record each key's first decision wrote, for a day (``transaction.py``).
INSERT_KEY = Insert(
    "INSERT INTO consentkit_idempotency (key, seq, created_at)",
    3,
    # A key older than a day that was not swept yet is reused as a new one.
    " ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, created_at = excluded.created_at",
)
FORGET_OLD_KEYS = "DELETE FROM consentkit_idempotency WHERE created_at < ?"
UPSERT_DAILY = Insert(
    "INSERT INTO consentkit_daily (day, metric, count)",
    3,
    " ON CONFLICT (day, metric) DO UPDATE SET count = consentkit_daily.count + excluded.count",
)

# Erasure (README, "For auditors and privacy officers"): the salts first, while the records
# still name the subject.
FORGET_SALTS = (
    "DELETE FROM consentkit_pii_salts WHERE seq IN (SELECT seq FROM consentkit_ledger WHERE subject_id = ?)"
)
# The desk's access log keeps the paths auditors opened, and a search for a subject puts its id in
# one (?subject=ID): an erasure takes it out there too. replace() is the same in both dialects.
FORGET_IN_ACCESS_LOG = (
    "UPDATE consentkit_audit_log SET path = replace(path, ?, '[erased]') WHERE replace(path, ?, '') <> path"
)
FORGET_PERSONAL_FIELDS = (
    "UPDATE consentkit_ledger SET subject_id = NULL, ip_prefix = NULL, user_agent = NULL, "
    "evidence = NULL WHERE subject_id = ?"
)


@functools.lru_cache(maxsize=256)
def dollars(sql: str) -> str:
    """``?`` placeholders (the backends' shared spelling) to PostgreSQL's ``$1, $2…``."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, start=1))
