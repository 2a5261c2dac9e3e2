"""The one migration mechanism (``consentkit/ledger/schema.py``) on both backends.

A ledger of every older schema version — made by the same mechanism, stopped at that version,
with records written the way that version wrote them — opens as a ledger of the current version:
the same tables and indexes as a new one, the per-day figures of its records, its chain intact
and continued. A ledger of a newer version, or of consentkit tables without a version, is refused
and left alone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from consentkit import LedgerCorrupt, open_ledger
from consentkit.ledger import NewRecord
from consentkit.ledger.daily import daily_counts_of_batch, daily_counts_of_rows, upsert_rows
from consentkit.ledger.queries import INSERT_POLICY, INSERT_RECORD, INSERT_SALT, UPSERT_DAILY, Insert
from consentkit.ledger.records import seal_batch
from consentkit.ledger.schema import MIGRATIONS, SCHEMA_VERSION, Step, migrate
from consentkit.ledger.sqlite import _transaction, path_from_url
from consentkit.ledger.transaction import Transaction, run_sync

OLDER_VERSIONS = range(1, SCHEMA_VERSION)
RECORD_BEFORE_4 = Insert(INSERT_RECORD.head.replace(", shown_digest, region, model)", ")"), 18)
RECORD_BEFORE_5 = Insert(INSERT_RECORD.head.replace(", region, model)", ")"), 19)


def entries(n: int = 12) -> list[NewRecord]:
    actions = ("accept_all", "reject_all", "save", "withdraw")
    return [
        NewRecord(
            subject_id=f"s{i % 5}",
            action=actions[i % 4],
            purposes={"necessary": True, "analytics": i % 4 == 0, "ads": i % 3 == 0},
            method="banner",
            policy_revision=1,
            policy_version="2026-11-01",
            policy_digest="d" * 64,
            locale="en",
            ip_prefix="203.0.113.0/24",
            user_agent="Mozilla/5.0",
            gpc=i % 4 == 1,
            policy_json='{"policy":1}',
        )
        for i in range(n)
    ]


async def write_old_ledger(tx: Transaction, dialect: Any, version: int, batch: list[NewRecord]) -> None:
    """What consentkit of ``version`` left behind: its schema, and records as it wrote them."""
    await migrate(tx, dialect, "the old ledger", target=version)
    sealed = seal_batch(batch, None)
    first = batch[0]
    policy = (first.policy_digest, first.policy_revision, first.policy_version, first.policy_json)
    await tx.insert(INSERT_POLICY, [(*policy, sealed[0].recorded_at)])
    if version >= 5:
        await tx.insert(INSERT_RECORD, [r.row() for r in sealed])
    elif version == 4:  # before version 5, records had no region and model
        await tx.insert(RECORD_BEFORE_5, [r.row()[:-2] for r in sealed])
    else:  # before version 4, no shown_digest either
        await tx.insert(RECORD_BEFORE_4, [r.row()[:-3] for r in sealed])
    await tx.insert(INSERT_SALT, [(r.seq, r.pii_salt) for r in sealed])
    if version >= 2:  # from version 2 on, every commit keeps the per-day figures
        await tx.insert(UPSERT_DAILY, upsert_rows(daily_counts_of_batch(batch, sealed)))


# -- the two backends, as the tests see them ------------------------------------------------------


class SQLiteFiles:
    dialect = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def new_url(self) -> str:
        return f"sqlite:///{self.tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"

    async def run(self, url: str, work: Callable[[Transaction], Awaitable[Any]]) -> None:
        conn = sqlite3.connect(path_from_url(url), isolation_level=None)
        try:
            _transaction(conn, work)  # type: ignore[arg-type]
        finally:
            conn.close()

    async def raw(self, url: str, sql: str) -> list[Any]:
        conn = sqlite3.connect(path_from_url(url), isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    async def schema(self, url: str) -> list[Any]:
        return await self.raw(url, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")

    async def describe(self, url: str) -> list[str]:
        """Each table's columns (name, type, NOT NULL, PK), then each index."""
        out = []
        for (table,) in await self.raw(
            url, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ):
            columns = await self.raw(url, f"PRAGMA table_info({table})")
            out.append(
                f"{table}("
                + ", ".join(
                    f"{n} {t}{' NOT NULL' if nn else ''}{' PK' if pk else ''}"
                    for _, n, t, nn, _, pk in columns
                )
                + ")"
            )
        indexes = await self.raw(
            url, "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
        )
        return out + [sql or name for name, sql in indexes]


class PostgresSchemas:
    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.made: list[str] = []

    def new_url(self) -> str:
        schema = f"ck_test_{uuid.uuid4().hex[:12]}"
        self.made.append(schema)
        return f"{self.dsn}?schema={schema}"

    @staticmethod
    def schema_of(url: str) -> str:
        return url.rsplit("schema=", 1)[1]

    async def _connect(self, url: str) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        schema = self.schema_of(url)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path = "{schema}"')
        return conn

    async def run(self, url: str, work: Callable[[Transaction], Awaitable[Any]]) -> None:
        from consentkit.ledger.postgres import _PostgresTransaction

        conn = await self._connect(url)
        try:
            async with conn.transaction():
                await work(_PostgresTransaction(conn))
        finally:
            await conn.close()

    async def raw(self, url: str, sql: str) -> list[Any]:
        conn = await self._connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def schema(self, url: str) -> list[Any]:
        """Columns, indexes and constraints, with the schema's own name taken out."""
        name = self.schema_of(url)
        return [
            tuple(str(v).replace(name, "S") for v in row)
            for sql in (
                "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 3",
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
                "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_namespace n ON n.oid = c.connamespace WHERE nspname = current_schema() ORDER BY 1",
            )
            for row in await self.raw(url, sql)
        ]

    async def describe(self, url: str) -> list[str]:
        """Each table's columns (name, type, NOT NULL), then each index and constraint."""
        out = []
        tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        for (table,) in await self.raw(url, tables):
            columns = await self.raw(
                url,
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position",
            )
            out.append(
                f"{table}("
                + ", ".join(f"{c} {t}{'' if n == 'YES' else ' NOT NULL'}" for c, t, n in columns)
                + ")"
            )
        out += [
            row[0]
            for row in await self.raw(
                url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
            )
        ]
        out += [
            f"{row[0]}: {row[1]}"
            for row in await self.raw(
                url,
                "SELECT conrelid::regclass::text || '.' || conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_namespace n ON n.oid = c.connamespace WHERE nspname = current_schema() AND contype <> 'n' "
                "ORDER BY 1",
            )
        ]
        name = self.schema_of(url)
        return [line.replace(f'"{name}".', "").replace(f"{name}.", "") for line in out]


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        yield SQLiteFiles(tmp_path)
        return
    import asyncpg

    schemas = PostgresSchemas(request.getfixturevalue("pg_dsn"))
    yield schemas
    conn = await asyncpg.connect(schemas.dsn)
    try:
        for schema in schemas.made:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# -- migrations ---------------------------------------------------------------------------------

# What a new ledger is made of, as ledgers have been made since schema version 5. Never edit a
# released version to change this: add the next version (schema.py), and this with it.
RELEASED_SCHEMA = {
    "sqlite": [
        "consentkit_audit_log(id INTEGER PK, at TEXT NOT NULL, user TEXT, ip_prefix TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL)",
        "consentkit_checkpoints(id INTEGER PK, size INTEGER NOT NULL, root BLOB NOT NULL, tail_root BLOB, note TEXT NOT NULL, made_at TEXT NOT NULL)",
        "consentkit_daily(day TEXT NOT NULL PK, metric TEXT NOT NULL PK, count INTEGER NOT NULL)",
        "consentkit_idempotency(key TEXT PK, seq INTEGER NOT NULL, created_at TEXT NOT NULL)",
        "consentkit_ledger(seq INTEGER PK, event_id TEXT NOT NULL, recorded_at TEXT NOT NULL, subject_id TEXT, action TEXT NOT NULL, purposes TEXT NOT NULL, method TEXT NOT NULL, policy_revision INTEGER NOT NULL, policy_version TEXT NOT NULL, policy_digest TEXT NOT NULL, locale TEXT NOT NULL, ip_prefix TEXT, user_agent TEXT, gpc INTEGER NOT NULL, evidence TEXT, pii_digest TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, shown_digest TEXT, region TEXT, model TEXT)",
        "consentkit_meta(key TEXT PK, value TEXT NOT NULL)",
        "consentkit_pii_salts(seq INTEGER PK, salt BLOB NOT NULL)",
        "consentkit_policies(digest TEXT PK, revision INTEGER NOT NULL, version TEXT NOT NULL, policy TEXT NOT NULL, first_seen TEXT NOT NULL)",
        "consentkit_shown(digest TEXT PK, content TEXT NOT NULL, first_seen TEXT NOT NULL)",
        "consentkit_tree_chunks(chunk INTEGER PK, root BLOB NOT NULL)",
        "CREATE INDEX consentkit_idempotency_created_at ON consentkit_idempotency (created_at)",
        "CREATE INDEX consentkit_ledger_hash ON consentkit_ledger (hash)",
        "CREATE INDEX consentkit_ledger_subject ON consentkit_ledger (subject_id)",
        "sqlite_autoindex_consentkit_daily_1",
        "sqlite_autoindex_consentkit_idempotency_1",
        "sqlite_autoindex_consentkit_ledger_1",
        "sqlite_autoindex_consentkit_meta_1",
        "sqlite_autoindex_consentkit_policies_1",
        "sqlite_autoindex_consentkit_shown_1",
    ],
    "postgres": [
        "consentkit_audit_log(id bigint NOT NULL, at text NOT NULL, user text, ip_prefix text, method text NOT NULL, path text NOT NULL, status integer NOT NULL)",
        "consentkit_checkpoints(id bigint NOT NULL, size bigint NOT NULL, root bytea NOT NULL, tail_root bytea, note text NOT NULL, made_at text NOT NULL)",
        "consentkit_daily(day text NOT NULL, metric text NOT NULL, count bigint NOT NULL)",
        "consentkit_head(id integer NOT NULL, seq bigint NOT NULL, hash text NOT NULL, recorded_at text NOT NULL)",
        "consentkit_idempotency(key text NOT NULL, seq bigint NOT NULL, created_at text NOT NULL)",
        "consentkit_ledger(seq bigint NOT NULL, event_id text NOT NULL, recorded_at text NOT NULL, subject_id text, action text NOT NULL, purposes text NOT NULL, method text NOT NULL, policy_revision integer NOT NULL, policy_version text NOT NULL, policy_digest text NOT NULL, locale text NOT NULL, ip_prefix text, user_agent text, gpc boolean NOT NULL, evidence text, pii_digest text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL, shown_digest text, region text, model text)",
        "consentkit_meta(key text NOT NULL, value text NOT NULL)",
        "consentkit_pii_salts(seq bigint NOT NULL, salt bytea NOT NULL)",
        "consentkit_policies(digest text NOT NULL, revision integer NOT NULL, version text NOT NULL, policy text NOT NULL, first_seen text NOT NULL)",
        "consentkit_shown(digest text NOT NULL, content text NOT NULL, first_seen text NOT NULL)",
        "consentkit_tree_chunks(chunk bigint NOT NULL, root bytea NOT NULL)",
        "CREATE UNIQUE INDEX consentkit_audit_log_pkey ON consentkit_audit_log USING btree (id)",
        "CREATE UNIQUE INDEX consentkit_checkpoints_pkey ON consentkit_checkpoints USING btree (id)",
        "CREATE UNIQUE INDEX consentkit_daily_pkey ON consentkit_daily USING btree (day, metric)",
        "CREATE UNIQUE INDEX consentkit_head_pkey ON consentkit_head USING btree (id)",
        "CREATE INDEX consentkit_idempotency_created_at ON consentkit_idempotency USING btree (created_at)",
        "CREATE UNIQUE INDEX consentkit_idempotency_pkey ON consentkit_idempotency USING btree (key)",
        "CREATE UNIQUE INDEX consentkit_ledger_event_id_key ON consentkit_ledger USING btree (event_id)",
        "CREATE INDEX consentkit_ledger_hash ON consentkit_ledger USING btree (hash text_pattern_ops)",
        "CREATE UNIQUE INDEX consentkit_ledger_pkey ON consentkit_ledger USING btree (seq)",
        "CREATE INDEX consentkit_ledger_recorded_at ON consentkit_ledger USING btree (recorded_at)",
        "CREATE INDEX consentkit_ledger_subject ON consentkit_ledger USING btree (subject_id)",
        "CREATE UNIQUE INDEX consentkit_meta_pkey ON consentkit_meta USING btree (key)",
        "CREATE UNIQUE INDEX consentkit_pii_salts_pkey ON consentkit_pii_salts USING btree (seq)",
        "CREATE UNIQUE INDEX consentkit_policies_pkey ON consentkit_policies USING btree (digest)",
        "CREATE UNIQUE INDEX consentkit_shown_pkey ON consentkit_shown USING btree (digest)",
        "CREATE UNIQUE INDEX consentkit_tree_chunks_pkey ON consentkit_tree_chunks USING btree (chunk)",
        "consentkit_audit_log.consentkit_audit_log_pkey: PRIMARY KEY (id)",
        "consentkit_checkpoints.consentkit_checkpoints_pkey: PRIMARY KEY (id)",
        "consentkit_daily.consentkit_daily_pkey: PRIMARY KEY (day, metric)",
        "consentkit_head.consentkit_head_id_check: CHECK ((id = 1))",
        "consentkit_head.consentkit_head_pkey: PRIMARY KEY (id)",
        "consentkit_idempotency.consentkit_idempotency_pkey: PRIMARY KEY (key)",
        "consentkit_ledger.consentkit_ledger_event_id_key: UNIQUE (event_id)",
        "consentkit_ledger.consentkit_ledger_pkey: PRIMARY KEY (seq)",
        "consentkit_meta.consentkit_meta_pkey: PRIMARY KEY (key)",
        "consentkit_pii_salts.consentkit_pii_salts_pkey: PRIMARY KEY (seq)",
        "consentkit_policies.consentkit_policies_pkey: PRIMARY KEY (digest)",
        "consentkit_shown.consentkit_shown_pkey: PRIMARY KEY (digest)",
        "consentkit_tree_chunks.consentkit_tree_chunks_pkey: PRIMARY KEY (chunk)",
    ],
}


async def test_a_new_ledger_is_made_as_ledgers_of_this_version_always_were(backend):
    assert SCHEMA_VERSION == 5, "a new version: describe what it makes in RELEASED_SCHEMA"
    url = backend.new_url()
    ledger = open_ledger(url)
    try:
        await ledger.open()
    finally:
        await ledger.close()
    assert await backend.describe(url) == RELEASED_SCHEMA[backend.dialect]


def test_versions_are_numbered_in_order_and_every_statement_has_both_dialects_or_says_why_not():
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    for steps in MIGRATIONS.values():
        for step in steps:
            if isinstance(step, Step):
                assert step.sqlite or step.postgres
                for sql in (step.sqlite, step.postgres):
                    # Re-runnable: a half-made old ledger (tables of the next version) still opens.
                    assert sql is None or "IF NOT EXISTS" in sql
                    assert sql is None or "{" not in sql  # every type word was spelt out


@pytest.mark.parametrize("version", OLDER_VERSIONS)
async def test_a_ledger_of_each_older_version_opens_as_the_current_one(backend, version):
    old_url, new_url = backend.new_url(), backend.new_url()
    batch = entries()
    await backend.run(old_url, lambda tx: write_old_ledger(tx, backend.dialect, version, batch))
    assert await backend.raw(old_url, "SELECT value FROM consentkit_meta WHERE key = 'schema_version'") == [
        (str(version),)
    ]

    ledger = open_ledger(old_url)
    fresh = open_ledger(new_url)
    try:
        await ledger.open()
        await fresh.open()
        assert await ledger.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert await backend.schema(old_url) == await backend.schema(new_url)
        rows = [row async for page in ledger.row_pages() for row in page]
        expected: dict[str, dict[str, int]] = {}
        for (day, metric), count in daily_counts_of_rows(rows).items():
            expected.setdefault(day, {})[metric] = count
        assert await ledger.daily() == expected
        assert sum(figures["records"] for figures in expected.values()) == len(batch)
        report = await ledger.verify()
        assert report.ok and report.records == len(batch)
        # The chain goes on where the old one stopped (PostgreSQL: its head row is made from it).
        added = await ledger.append(entries(1)[0])
        assert added.seq == len(batch) + 1 and added.prev_hash == report.head_hash
        assert (await ledger.verify()).ok
        await ledger.log_access("auditor", None, "GET", "/consent/audit", 200)
    finally:
        await ledger.close()
        await fresh.close()


async def test_opening_twice_migrates_once(backend):
    url = backend.new_url()
    await backend.run(url, lambda tx: write_old_ledger(tx, backend.dialect, 1, entries()))
    first, second = open_ledger(url), open_ledger(url)
    try:
        await asyncio.gather(first.open(), second.open())
        (figures,) = (await second.daily()).values()
        assert figures["records"] == 12  # built once, not twice
    finally:
        await first.close()
        await second.close()


async def test_a_ledger_of_a_newer_version_is_refused_and_left_alone(backend):
    url = backend.new_url()
    ledger = open_ledger(url)
    await ledger.append(entries(1)[0])
    await ledger.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    await ledger.close()
    again = open_ledger(url)
    try:
        with pytest.raises(
            LedgerCorrupt, match=rf"version {SCHEMA_VERSION + 1}, newer .* upgrade consentkit"
        ):
            await again.open()
    finally:
        await again.close()
    version = await backend.raw(url, "SELECT value FROM consentkit_meta WHERE key = 'schema_version'")
    assert version == [(str(SCHEMA_VERSION + 1),)]


async def test_consentkit_tables_without_a_version_are_refused(backend):
    url = backend.new_url()
    ledger = open_ledger(url)
    await ledger.append(entries(1)[0])
    await ledger.close()
    await backend.run(url, lambda tx: tx.execute("DELETE FROM consentkit_meta WHERE key = 'schema_version'"))
    again = open_ledger(url)
    try:
        with pytest.raises(LedgerCorrupt, match="without a schema version"):
            await again.open()
    finally:
        await again.close()


def test_sqlite_migration_runs_in_one_transaction_that_nothing_half_done_survives(tmp_path):
    """A failing step rolls the whole migration back: the file stays at its old version."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _transaction(conn, lambda tx: write_old_ledger(tx, "sqlite", 1, entries()))

        async def migrate_then_fail(tx: Transaction) -> None:
            await migrate(tx, "sqlite", str(path))
            raise RuntimeError("power cut")

        with pytest.raises(RuntimeError, match="power cut"):
            _transaction(conn, migrate_then_fail)
        assert conn.execute("SELECT value FROM consentkit_meta WHERE key = 'schema_version'").fetchall() == [
            ("1",)
        ]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "consentkit_daily" not in tables
    finally:
        conn.close()


def test_run_sync_refuses_a_coroutine_that_waits():
    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="waited"):
        run_sync(waits())

    async def answers() -> int:
        return 42

    assert run_sync(answers()) == 42
