"""Streaming exports of the ledger for auditors: CSV and JSON Lines, in constant memory.

Both formats are written straight from the rows the database returns, a page at a time: the
``purposes`` and ``evidence`` columns already hold canonical JSON, byte for byte what the hash
committed to, so they are copied, never re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from .ledger.records import EXPORT_FIELDS

FORMATS = ("jsonl", "csv")
_enc = json.encoder.encode_basestring


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def jsonl_line(row: Any) -> str:
    """One stored row as a JSON Lines line, fields in ``EXPORT_FIELDS`` order.

    Ids, times, hashes, actions, methods and locales are checked when written and never need
    escaping; the free-text fields are escaped.
    """
    return (
        f'{{"seq":{row[0]},"event_id":"{row[1]}","recorded_at":"{row[2]}",'
        f'"subject_id":{_s(row[3])},"action":"{row[4]}","purposes":{row[5]},'
        f'"method":"{row[6]}","policy_revision":{row[7]},'
        f'"policy_version":{_enc(row[8])},"policy_digest":"{row[9]}",'
        f'"locale":"{row[10]}","ip_prefix":{_s(row[11])},"user_agent":{_s(row[12])},'
        f'"gpc":{"true" if row[13] else "false"},"evidence":{row[14] or "null"},'
        f'"pii_digest":"{row[15]}","prev_hash":"{row[16]}","hash":"{row[17]}"}}\n'
    )


def _q(value: str | None) -> str:
    """An RFC 4180 field: quoted only when it must be."""
    if value is None:
        return ""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(row: Any) -> str:
    """One stored row as an RFC 4180 CSV line; ``purposes`` and ``evidence`` stay JSON text.

    Values are written exactly as stored (no spreadsheet-formula escaping), so that an export
    can be checked against the ledger; open it in a spreadsheet with the import wizard.
    """
    return (
        f"{row[0]},{row[1]},{row[2]},{_q(row[3])},{row[4]},"
        f'"{row[5].replace(chr(34), chr(34) * 2)}",{_q(row[6])},{row[7]},{_q(row[8])},{row[9]},'
        f"{_q(row[10])},{_q(row[11])},{_q(row[12])},{'true' if row[13] else 'false'},"
        f"{_q(row[14])},{row[15]},{row[16]},{row[17]}\n"
    )


async def write_export(
    pages: AsyncIterator[list[Any]],
    fmt: str,
    out: TextIO,
    keep: Callable[[Any], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write pages of stored rows to ``out`` as ``jsonl`` or ``csv``; return how many rows.

    ``keep`` filters rows (the filters the database did not apply).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    line = csv_line if fmt == "csv" else jsonl_line
    if fmt == "csv":
        out.write(",".join(EXPORT_FIELDS) + "\n")
    count = 0
    async for rows in pages:
        if keep is not None:
            rows = [r for r in rows if keep(r)]
        out.write("".join(map(line, rows)))
        count += len(rows)
        if progress is not None:
            progress(count)
    return count
