"""Streaming exports of the ledger for auditors: CSV, JSON Lines and ISO/IEC TS 27560 consent
records (JSON Lines, :mod:`consentkit.audit.iso27560`), in constant memory.

CSV and JSON Lines are written straight from the rows the database returns, a page at a time: the
``purposes`` and ``evidence`` columns already hold canonical JSON, byte for byte what the hash
committed to, so they are copied, never re-encoded. ``consentkit export`` and the desk's export
write the same bytes (the README's "For auditors and privacy officers"). The ISO 27560 format is
built, not copied: its mapping reads each page's policies from the ledger (``policy_text``).

CSV is opened in spreadsheets, which run a cell that starts like a formula (``=HYPERLINK(…)``,
``@SUM(…)``). By default every CSV cell that can hold text a visitor or an operator chose is made
inert (OWASP's rule: :func:`inert`); ``raw=True`` (``consentkit export --raw``, the desk's
``?raw=1``) writes the values exactly as stored, for machines that check them against the ledger.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TextIO

from ..ledger.records import EXPORT_FIELDS, RecordRow
from ..spreadsheets import FORMULA_STARTS
from .iso27560 import Iso27560Lines, PolicyText

FORMATS = ("jsonl", "csv", "iso27560")
# The file name's ending of each format (the desk's downloads): ISO records are JSON Lines too.
_EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "iso27560": "iso27560.jsonl"}
_enc = json.encoder.encode_basestring


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
        f'"pii_digest":"{row.pii_digest}","prev_hash":"{row.prev_hash}","hash":"{row.hash}",'
        f'"shown_digest":{_s(row.shown_digest)},"region":{_s(row.region)},"model":{_s(row.model)}}}\n'
    )


def _q(value: str | None) -> str:
    """An RFC 4180 field: quoted only when it must be."""
    if value is None:
        return ""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _qi(value: str | None) -> str:
    """An RFC 4180 field of free text, made inert for spreadsheets (:func:`inert`)."""
    if value is None:
        return ""
    if value[:1] in FORMULA_STARTS:
        value = "'" + value
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(row: RecordRow) -> str:
    """One stored row as an RFC 4180 CSV line, safe to open in a spreadsheet.

    Only the cells that can hold text a visitor or an operator chose go through :func:`inert`:
    ``subject_id`` (``kit.record`` takes the site's own ids), ``policy_version`` (the policy
    file), ``locale`` (``kit.record(locale=…)``) and ``user_agent`` (the visitor's browser). The
    others cannot start like a formula, and checking them would only slow the export down:
    ``seq`` and ``policy_revision`` are positive integers, ``event_id`` a UUID, ``recorded_at`` a
    time, the hashes and digests hex, ``action`` and ``method`` words of the ledger's vocabulary
    (checked when written), ``ip_prefix`` an address we truncated ourselves, and ``purposes`` and
    ``evidence`` JSON objects (``{…}``).
    """
    return (
        f"{row.seq},{row.event_id},{row.recorded_at},{_qi(row.subject_id)},{row.action},"
        f'"{row.purposes.replace(chr(34), chr(34) * 2)}",{_q(row.method)},{row.policy_revision},'
        f"{_qi(row.policy_version)},{row.policy_digest},{_qi(row.locale)},{_q(row.ip_prefix)},"
        f"{_qi(row.user_agent)},{'true' if row.gpc else 'false'},{_q(row.evidence)},"
        f"{row.pii_digest},{row.prev_hash},{row.hash},{row.shown_digest or ''},"
        f"{_q(row.region)},{_q(row.model)}\n"
    )


def csv_line_raw(row: RecordRow) -> str:
    """One stored row as an RFC 4180 CSV line, values exactly as stored (``--raw``): for
    machines that check an export against the ledger, not for spreadsheets."""
    return (
        f"{row.seq},{row.event_id},{row.recorded_at},{_q(row.subject_id)},{row.action},"
        f'"{row.purposes.replace(chr(34), chr(34) * 2)}",{_q(row.method)},{row.policy_revision},'
        f"{_q(row.policy_version)},{row.policy_digest},{_q(row.locale)},{_q(row.ip_prefix)},"
        f"{_q(row.user_agent)},{'true' if row.gpc else 'false'},{_q(row.evidence)},"
        f"{row.pii_digest},{row.prev_hash},{row.hash},{row.shown_digest or ''},"
        f"{_q(row.region)},{_q(row.model)}\n"
    )


def content_type(fmt: str) -> str:
    """The media type of an export in ``fmt``."""
    return "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"


def file_extension(fmt: str) -> str:
    """How the name of a file of an export in ``fmt`` ends (without the dot)."""
    return _EXTENSIONS[fmt]


async def export_chunks(
    pages: AsyncIterator[Sequence[RecordRow]],
    fmt: str,
    keep: Callable[[Any], bool] | None = None,
    *,
    raw: bool = False,
    policy_text: PolicyText | None = None,
) -> AsyncIterator[tuple[str, int]]:
    """The text of an export in ``fmt``, one chunk per page of stored rows, each with how many
    rows it holds (the CSV header comes first, as a chunk of none).

    ``keep`` filters rows (the filters the database did not apply); ``raw`` writes CSV cells as
    stored, without making formulas inert (JSON Lines is always as stored); ``policy_text``
    (``Ledger.policy_text``) gives ``iso27560`` the policies the records name: without it, ISO
    records carry only what the rows hold.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    line = (csv_line_raw if raw else csv_line) if fmt == "csv" else jsonl_line
    # ISO records need the page's policies, read from the ledger: an await per page, not per row.
    iso = Iso27560Lines(policy_text) if fmt == "iso27560" else None
    if fmt == "csv":
        yield ",".join(EXPORT_FIELDS) + "\n", 0
    async for page in pages:
        rows = page if keep is None else [r for r in page if keep(r)]
        text = await iso.page(rows) if iso is not None else "".join(map(line, rows))
        yield text, len(rows)


async def write_export(
    pages: AsyncIterator[Sequence[RecordRow]],
    fmt: str,
    out: TextIO,
    keep: Callable[[Any], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    raw: bool = False,
    policy_text: PolicyText | None = None,
) -> int:
    """Write pages of stored rows to ``out`` in ``fmt`` (one of ``FORMATS``); return how many rows.

    ``keep`` filters rows (the filters the database did not apply); ``progress`` is told the
    count so far after every page; ``raw`` and ``policy_text`` as for :func:`export_chunks`.
    """
    count = 0
    async for text, rows in export_chunks(pages, fmt, keep, raw=raw, policy_text=policy_text):
        out.write(text)
        count += rows
        if progress is not None and rows:
            progress(count)
    return count
