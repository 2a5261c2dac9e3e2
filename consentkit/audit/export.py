"""Streaming exports of the ledger for auditors: CSV and JSON Lines, in constant memory.

Both formats are written straight from the rows the database returns, a page at a time: the
``purposes`` and ``evidence`` columns already hold canonical JSON, byte for byte what the hash
committed to, so they are copied, never re-encoded. ``consentkit export`` and the desk's export
write the same bytes (the README's "For auditors and privacy officers").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NamedTuple, TextIO

from ..ledger.records import EXPORT_FIELDS

FORMATS = ("jsonl", "csv")
_enc = json.encoder.encode_basestring


class RecordRow(NamedTuple):
    """A stored row by name: ``EXPORT_FIELDS``, then the salt (or ``None``).

    Stands in for ``consentkit.ledger.records.RecordRow`` until the backends yield it; then this
    class and the conversion in :func:`export_chunks` go.
    """

    seq: int
    event_id: str
    recorded_at: str
    subject_id: str | None
    action: str
    purposes: str  # canonical JSON
    method: str
    policy_revision: int
    policy_version: str
    policy_digest: str
    locale: str
    ip_prefix: str | None
    user_agent: str | None
    gpc: bool
    evidence: str | None  # canonical JSON or None
    pii_digest: str
    prev_hash: str
    hash: str
    salt: bytes | None = None


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def jsonl_line(row: RecordRow) -> str:
    """One stored row as a JSON Lines line, fields in ``EXPORT_FIELDS`` order.

    Ids, times, hashes, actions, methods and locales are checked when written and never need
    escaping; the free-text fields are escaped.
    """
    return (
        f'{{"seq":{row.seq},"event_id":"{row.event_id}","recorded_at":"{row.recorded_at}",'
        f'"subject_id":{_s(row.subject_id)},"action":"{row.action}","purposes":{row.purposes},'
        f'"method":"{row.method}","policy_revision":{row.policy_revision},'
        f'"policy_version":{_enc(row.policy_version)},"policy_digest":"{row.policy_digest}",'
        f'"locale":"{row.locale}","ip_prefix":{_s(row.ip_prefix)},"user_agent":{_s(row.user_agent)},'
        f'"gpc":{"true" if row.gpc else "false"},"evidence":{row.evidence or "null"},'
        f'"pii_digest":"{row.pii_digest}","prev_hash":"{row.prev_hash}","hash":"{row.hash}"}}\n'
    )


def _q(value: str | None) -> str:
    """An RFC 4180 field: quoted only when it must be."""
    if value is None:
        return ""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(row: RecordRow) -> str:
    """One stored row as an RFC 4180 CSV line; ``purposes`` and ``evidence`` stay JSON text.

    Values are written exactly as stored (no spreadsheet-formula escaping), so that an export
    can be checked against the ledger; open it in a spreadsheet with the import wizard.
    """
    return (
        f"{row.seq},{row.event_id},{row.recorded_at},{_q(row.subject_id)},{row.action},"
        f'"{row.purposes.replace(chr(34), chr(34) * 2)}",{_q(row.method)},{row.policy_revision},'
        f"{_q(row.policy_version)},{row.policy_digest},{_q(row.locale)},{_q(row.ip_prefix)},"
        f"{_q(row.user_agent)},{'true' if row.gpc else 'false'},{_q(row.evidence)},"
        f"{row.pii_digest},{row.prev_hash},{row.hash}\n"
    )


def content_type(fmt: str) -> str:
    """The media type of an export in ``fmt``."""
    return "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"


async def export_chunks(
    pages: AsyncIterator[Sequence[Any]], fmt: str, keep: Callable[[Any], bool] | None = None
) -> AsyncIterator[tuple[str, int]]:
    """The text of an export in ``fmt``, one chunk per page of stored rows, each with how many
    rows it holds (the CSV header comes first, as a chunk of none).

    ``keep`` filters rows (the filters the database did not apply).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    line = csv_line if fmt == "csv" else jsonl_line
    if fmt == "csv":
        yield ",".join(EXPORT_FIELDS) + "\n", 0
    make = RecordRow._make
    async for page in pages:
        rows = page if keep is None else [r for r in page if keep(r)]
        yield "".join(map(line, map(make, rows))), len(rows)


async def write_export(
    pages: AsyncIterator[Sequence[Any]],
    fmt: str,
    out: TextIO,
    keep: Callable[[Any], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write pages of stored rows to ``out`` as ``jsonl`` or ``csv``; return how many rows.

    ``keep`` filters rows (the filters the database did not apply); ``progress`` is told the
    count so far after every page.
    """
    count = 0
    async for text, rows in export_chunks(pages, fmt, keep):
        out.write(text)
        count += rows
        if progress is not None and rows:
            progress(count)
    return count
