"""The consent ledger: append-only, hash-chained, on SQLite or PostgreSQL."""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Ledger
from .queries import RecordFilter
from .records import LedgerRecord, NewRecord
from .verify import VerifyReport

__all__ = ["Ledger", "LedgerRecord", "NewRecord", "RecordFilter", "VerifyReport", "open_ledger"]


def open_ledger(url: str | Ledger, *, create: bool = True) -> Ledger:
    """The ledger a URL names: ``sqlite:///path.db`` or ``postgresql://user@host/db``.

    Nothing is connected yet; that happens on first use (or ``await ledger.open()``). With
    ``create=False`` (the auditor's commands) a ledger that does not exist yet is an error
    (LedgerNotFound) instead of being created empty.
    """
    if isinstance(url, Ledger):
        return url
    if not isinstance(url, str):
        raise ConfigurationError(f"ledger must be a URL string or a Ledger, not {type(url).__name__}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteLedger

        return SQLiteLedger.from_url(url, create=create)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresLedger
        except ImportError as exc:  # asyncpg missing
            raise ConfigurationError(
                "a PostgreSQL ledger needs the postgres extra: pip install 'consentkit[postgres]'"
            ) from exc
        return PostgresLedger(url, create=create)
    raise ConfigurationError(
        f"unknown ledger URL {url!r}: use sqlite:///path/to/ledger.db or postgresql://user@host/db"
    )
