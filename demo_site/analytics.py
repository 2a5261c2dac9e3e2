"""Northwind's first-party, server-side page-view counter.

It is registered as a consentkit hook of the "analytics" purpose (``@kit.hooks.on("analytics")``
in :mod:`demo_site.site`), so a page view is written only for visitors who allowed analytics.
The views go to a small SQLite file next to the consent ledger (``<ledger>-analytics.db``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS page_views (
    id INTEGER PRIMARY KEY,
    viewed_at TEXT NOT NULL,
    path TEXT NOT NULL,
    visitor TEXT,
    policy_revision INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class PageView:
    viewed_at: str
    path: str
    visitor: str | None
    policy_revision: int


def analytics_path_for(ledger_url: str) -> Path:
    """Where the page views of a ledger go: next to an SQLite ledger, else in the current directory."""
    if ledger_url.startswith("sqlite:///"):
        ledger = Path(ledger_url[len("sqlite:///") :])
        return ledger.with_name(f"{ledger.stem}-analytics.db")
    return Path("demo-analytics.db")


class PageViews:
    """An append-only table of page views (one connection, used from worker threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def _add(self, path: str, visitor: str | None, revision: int) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            self._connection().execute(
                "INSERT INTO page_views (viewed_at, path, visitor, policy_revision) VALUES (?, ?, ?, ?)",
                (now, path[:512], visitor, revision),
            )

    def _recent(self, limit: int) -> list[PageView]:
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT viewed_at, path, visitor, policy_revision FROM page_views "
                    "ORDER BY id DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [PageView(*row) for row in rows]

    def _count(self) -> int:
        with self._lock:
            (count,) = self._connection().execute("SELECT count(*) FROM page_views").fetchone()
        return int(count)

    async def add(self, path: str, visitor: str | None, revision: int) -> None:
        """Keep one page view."""
        await asyncio.to_thread(self._add, path, visitor, revision)

    async def recent(self, limit: int = 10) -> list[PageView]:
        """The latest page views, newest first."""
        return await asyncio.to_thread(self._recent, limit)

    async def count(self) -> int:
        """How many page views are kept."""
        return await asyncio.to_thread(self._count)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
