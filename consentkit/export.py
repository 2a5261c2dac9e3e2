"""Streaming exports of the ledger for auditors: CSV and JSON Lines, in constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from .ledger.records import EXPORT_FIELDS, LedgerRecord

FORMATS = ("jsonl", "csv")
_enc = json.encoder.encode_basestring


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def jsonl_line(r: LedgerRecord) -> str:
    """One record as a JSON Lines line, fields in export order.

    Built from the stored canonical JSON of ``purposes`` and ``evidence`` rather than by
    re-encoding them: faster, and byte-for-byte what the hash committed to.
    """
    return (
        f'{{"seq":{r.seq},"event_id":{_enc(r.event_id)},"recorded_at":{_enc(r.recorded_at)},'
        f'"subject_id":{_s(r.subject_id)},"action":{_enc(r.action)},"purposes":{r.purposes_json},'
        f'"method":{_enc(r.method)},"policy_revision":{r.policy_revision},'
        f'"policy_version":{_enc(r.policy_version)},"policy_digest":{_enc(r.policy_digest)},'
        f'"locale":{_enc(r.locale)},"ip_prefix":{_s(r.ip_prefix)},"user_agent":{_s(r.user_agent)},'
        f'"gpc":{"true" if r.gpc else "false"},"evidence":{r.evidence_json or "null"},'
        f'"pii_digest":{_enc(r.pii_digest)},"prev_hash":{_enc(r.prev_hash)},"hash":{_enc(r.hash)}}}\n'
    )


def csv_row(r: LedgerRecord) -> tuple[object, ...]:
    """One record as a CSV row; ``purposes`` and ``evidence`` stay canonical JSON text."""
    return (
        r.seq,
        r.event_id,
        r.recorded_at,
        r.subject_id or "",
        r.action,
        r.purposes_json,
        r.method,
        r.policy_revision,
        r.policy_version,
        r.policy_digest,
        r.locale,
        r.ip_prefix or "",
        r.user_agent or "",
        "true" if r.gpc else "false",
        r.evidence_json or "",
        r.pii_digest,
        r.prev_hash,
        r.hash,
    )


async def write_export(
    records: AsyncIterator[LedgerRecord],
    fmt: str,
    out: TextIO,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``records`` to ``out`` as ``jsonl`` or ``csv``; return how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_FIELDS)
        async for r in records:
            writer.writerow(csv_row(r))
            count += 1
            if progress is not None and count % 10000 == 0:
                progress(count)
    else:
        write = out.write
        async for r in records:
            write(jsonl_line(r))
            count += 1
            if progress is not None and count % 10000 == 0:
                progress(count)
    if progress is not None:
        progress(count)
    return count
