"""The ledger's schema on both backends: numbered versions, applied in order by ``migrate``.

Forward only: a released version is never edited; a change to the schema is the next version,
whose steps bring a ledger of the version before to it (the README's PostgreSQL section: the
tables are created and migrated by the library, never by hand). ``consentkit_meta`` holds the
version. A ledger newer than this code is refused, never touched.

Each statement is written once. Where the dialects differ only in a column type, the statement
names the type in braces (``{int8}``) and ``_TYPES`` spells it for each; where they differ
otherwise, ``Step`` holds both spellings side by side. SQLite keeps the text of a ``CREATE``
in the file, so its spelling here is exactly the text ledgers were created with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..errors import LedgerCorrupt
from .daily import Counts, add_daily_row, upsert_rows
from .queries import COLUMNS_SQL, UPSERT_DAILY
from .records import as_record_row, utc_timestamp
from .transaction import Transaction

log = logging.getLogger("consentkit.ledger")

Dialect: TypeAlias = Literal["sqlite", "postgres"]

# Column types the dialects spell differently, as (SQLite, PostgreSQL).
_TYPES: dict[str, tuple[str, str]] = {
    "int8": ("INTEGER", "BIGINT"),
    "bool": ("INTEGER", "BOOLEAN"),
    "bytes": ("BLOB", "BYTEA"),
    "serial8": ("INTEGER", "BIGSERIAL"),  # SQLite numbers an INTEGER PRIMARY KEY by itself
    "user": ("user", '"user"'),  # a reserved word in PostgreSQL
}


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a version, as each dialect spells it (None: that dialect has no such step)."""

    sqlite: str | None
    postgres: str | None

    def sql(self, dialect: Dialect) -> str | None:
        """The statement in one dialect."""
        return self.sqlite if dialect == "sqlite" else self.postgres


def both(sql: str) -> Step:
    """A statement both dialects run, each with its own column types."""
    return Step(
        sql.format_map({name: types[0] for name, types in _TYPES.items()}),
        sql.format_map({name: types[1] for name, types in _TYPES.items()}),
    )


async def _count_existing_records(db: Transaction) -> None:
    """Build the per-day figures (``daily.py``) of the records a ledger already has."""
    counts: Counts = {}
    # The columns a ledger of version 2 has (no shown_digest yet: version 4; no region and model:
    # version 5), then NULL in their places and salt's.
    columns = COLUMNS_SQL.removesuffix(_LATER_COLUMNS)
    sql = f"SELECT {columns}, NULL, NULL, NULL, NULL FROM consentkit_ledger l"
    async for row in db.stream(sql):  # streamed: constant memory on a large ledger
        add_daily_row(counts, as_record_row(row))
    await db.execute("DELETE FROM consentkit_daily")
    await db.insert(UPSERT_DAILY, upsert_rows(counts))


# The record columns added after version 2, at the end of ``COLUMNS_SQL``.
_LATER_COLUMNS = ", l.shown_digest, l.region, l.model"
assert COLUMNS_SQL.endswith(_LATER_COLUMNS)

# SQLite has no ADD COLUMN IF NOT EXISTS: each dialect asks whether the column is there.
_HAS_COLUMN = {
    "sqlite": "SELECT 1 FROM pragma_table_info('consentkit_ledger') WHERE name = ?",
    "postgres": "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'consentkit_ledger' AND column_name = ?",
}


def _add_column(name: str) -> DataStep:
    """A step that adds a text column to the records once (re-runnable, as every step: see
    ``migrate``)."""

    async def add(db: Transaction) -> None:
        if not await db.fetch(_HAS_COLUMN[db.dialect], (name,)):
            await db.execute(f"ALTER TABLE consentkit_ledger ADD COLUMN {name} TEXT")

    add.__name__ = f"add_{name}"
    return add


#: A step that moves data rather than changing tables.
DataStep: TypeAlias = Callable[[Transaction], Coroutine[Any, Any, None]]

# Made before anything else, as it holds the version (the same in both dialects).
_META = """CREATE TABLE IF NOT EXISTS consentkit_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)"""

MIGRATIONS: dict[int, tuple[Step | DataStep, ...]] = {
    # 1: the chain (records, their salts apart, the policies' texts) and PostgreSQL's head row.
    1: (
        both("""CREATE TABLE IF NOT EXISTS consentkit_ledger (
    seq {int8} PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    recorded_at TEXT NOT NULL,
    subject_id TEXT,
    action TEXT NOT NULL,
    purposes TEXT NOT NULL,
    method TEXT NOT NULL,
    policy_revision INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    locale TEXT NOT NULL,
    ip_prefix TEXT,
    user_agent TEXT,
    gpc {bool} NOT NULL,
    evidence TEXT,
    pii_digest TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)"""),
        both("CREATE INDEX IF NOT EXISTS consentkit_ledger_subject ON consentkit_ledger (subject_id)"),
        Step(
            sqlite=None,
            postgres="CREATE INDEX IF NOT EXISTS consentkit_ledger_recorded_at "
            "ON consentkit_ledger (recorded_at)",
        ),
        # Receipts are hash prefixes: PostgreSQL's index serves LIKE/range scans only with
        # text_pattern_ops (outside the C locale); SQLite's does as it is.
        Step(
            sqlite="CREATE INDEX IF NOT EXISTS consentkit_ledger_hash ON consentkit_ledger (hash)",
            postgres="CREATE INDEX IF NOT EXISTS consentkit_ledger_hash "
            "ON consentkit_ledger (hash text_pattern_ops)",
        ),
        both("""CREATE TABLE IF NOT EXISTS consentkit_pii_salts (
    seq {int8} PRIMARY KEY,
    salt {bytes} NOT NULL
)"""),
        both("""CREATE TABLE IF NOT EXISTS consentkit_policies (
    digest TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    version TEXT NOT NULL,
    policy TEXT NOT NULL,
    first_seen TEXT NOT NULL
)"""),
        # PostgreSQL's writers lock this one row to append (see postgres.py); SQLite's write
        # lock covers the whole file, so it reads the head from the records.
        Step(
            sqlite=None,
            postgres="""CREATE TABLE IF NOT EXISTS consentkit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    recorded_at TEXT NOT NULL
)""",
        ),
    ),
    # 2: per-day figures kept with every commit (built here for the records already there) and
    # the auditor's desk's access log.
    2: (
        both("""CREATE TABLE IF NOT EXISTS consentkit_daily (
    day TEXT NOT NULL,
    metric TEXT NOT NULL,
    count {int8} NOT NULL,
    PRIMARY KEY (day, metric)
)"""),
        both("""CREATE TABLE IF NOT EXISTS consentkit_audit_log (
    id {serial8} PRIMARY KEY,
    at TEXT NOT NULL,
    {user} TEXT,
    ip_prefix TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL
)"""),
        _count_existing_records,
    ),
    # 3: the transparency log (``treestore.py``): roots of the complete 256-leaf chunks of the
    # Merkle tree, filled when a checkpoint is made (never when a decision is written), and the
    # signed checkpoints made. ``verify`` recomputes both from the records.
    3: (
        both("""CREATE TABLE IF NOT EXISTS consentkit_tree_chunks (
    chunk {int8} PRIMARY KEY,
    root {bytes} NOT NULL
)"""),
        both("""CREATE TABLE IF NOT EXISTS consentkit_checkpoints (
    id {serial8} PRIMARY KEY,
    size {int8} NOT NULL,
    root {bytes} NOT NULL,
    tail_root {bytes},
    note TEXT NOT NULL,
    made_at TEXT NOT NULL
)"""),
    ),
    # 4: what the visitor was shown (CNIL 2020-092): each record names the banner and preference
    # center it was decided on by digest (null where nothing of ours was shown, and in the
    # records written before this version, whose hashes did not commit to it); each distinct
    # content is stored once. ``verify`` checks every content against its digest. And the
    # idempotency keys of decisions.
    4: (
        _add_column("shown_digest"),
        both("""CREATE TABLE IF NOT EXISTS consentkit_shown (
    digest TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    first_seen TEXT NOT NULL
)"""),
        # Idempotency keys (``Idempotency-Key``): the record a key's first decision wrote, so that
        # a repeat within a day answers it and writes nothing (``transaction.py``).
        both("""CREATE TABLE IF NOT EXISTS consentkit_idempotency (
    key TEXT PRIMARY KEY,
    seq {int8} NOT NULL,
    created_at TEXT NOT NULL
)"""),
        both(
            "CREATE INDEX IF NOT EXISTS consentkit_idempotency_created_at "
            "ON consentkit_idempotency (created_at)"
        ),
    ),
    # 5: the law of each visitor (``consentkit/regions.py``): the region a decision was made in
    # (ISO 3166; null where unknown) and the model there (opt_in, opt_out, notice; null in the
    # records before this version and in kit.record's, whose hashes do not commit to them).
    5: (
        _add_column("region"),
        _add_column("model"),
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1)), "versions are numbered 1, 2, 3…"

# Tables of ours in a ledger without a version: not a ledger this library made.
_OTHER_TABLES: dict[Dialect, str] = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' "
    "AND name LIKE 'consentkit_%' AND name <> 'consentkit_meta'",
    "postgres": "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
    "AND table_name LIKE 'consentkit_%' AND table_name <> 'consentkit_meta'",
}


async def schema_version(db: Transaction) -> int:
    """The ledger's schema version (0: none yet)."""
    rows = await db.fetch("SELECT value FROM consentkit_meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else 0


async def migrate(db: Transaction, dialect: Dialect, where: str, *, target: int = SCHEMA_VERSION) -> None:
    """Create the schema, or bring it to ``SCHEMA_VERSION``, in the caller's transaction.

    The caller holds a lock that keeps other processes from migrating at the same time (SQLite's
    write lock, a PostgreSQL advisory lock). ``where`` names the ledger in errors. An older
    ``target`` makes a ledger of that version (the tests' old ledgers).
    """
    await db.execute(_META)
    current = await schema_version(db)
    if current > SCHEMA_VERSION:
        raise LedgerCorrupt(
            f"{where} has ledger schema version {current}, newer than this consentkit "
            f"understands ({SCHEMA_VERSION}); upgrade consentkit"
        )
    if current == 0 and await db.fetch(_OTHER_TABLES[dialect]):
        raise LedgerCorrupt(
            f"{where}: consentkit tables exist without a schema version; this is not a ledger consentkit made"
        )
    for version in range(current + 1, target + 1):
        for step in MIGRATIONS[version]:
            if not isinstance(step, Step):
                await step(db)
            elif (sql := step.sql(dialect)) is not None:
                await db.execute(sql)
        log.info("consent ledger schema migrated to version %d", version)
    if current == 0:
        await db.execute(
            "INSERT INTO consentkit_meta (key, value) VALUES ('schema_version', ?), ('created_at', ?)",
            (str(target), utc_timestamp()),
        )
    elif current < target:
        await db.execute("UPDATE consentkit_meta SET value = ? WHERE key = 'schema_version'", (str(target),))
