"""The export formatters, row by row: every field in its place, JSON and CSV escaping exact."""

from __future__ import annotations

import asyncio
import csv
import io
import json

from consentkit.audit.export import csv_line, export_chunks, jsonl_line, write_export
from consentkit.ledger.records import EXPORT_FIELDS, RecordRow

ROW = (
    7,
    "0b0e7a52-1c1f-4f0e-9d7a-3c6b4b1f2e10",
    "2026-11-02T10:00:00.000Z",
    'subject "7", the one',
    "record",
    '{"ads":false,"analytics":true}',
    "api",
    3,
    "2026-11",
    "d" * 64,
    "fr-CA",
    None,
    "Mozilla/5.0 (X11)\nline two, é",
    True,
    '{"form":"checkout"}',
    "p" * 64,
    "a" * 64,
    "b" * 64,
    "c" * 64,  # shown_digest
    "US-CA",  # region
    "opt_out",  # model
    None,  # the salt, never exported
)


def test_the_row_type_names_the_export_fields_then_the_salt():
    assert RecordRow._fields == (*EXPORT_FIELDS, "salt")


def test_a_jsonl_line_is_the_row_by_name():
    line = jsonl_line(RecordRow._make(ROW))
    assert line.endswith("}\n") and line.count("\n") == 1
    record = json.loads(line)
    assert list(record) == list(EXPORT_FIELDS)
    assert record["subject_id"] == ROW[3] and record["user_agent"] == ROW[12]
    assert record["purposes"] == {"ads": False, "analytics": True}
    assert record["evidence"] == {"form": "checkout"}
    assert record["ip_prefix"] is None and record["gpc"] is True and record["seq"] == 7
    assert record["region"] == "US-CA" and record["model"] == "opt_out"


def test_a_csv_line_is_the_row_by_name():
    line = csv_line(RecordRow._make(ROW))
    (cells,) = list(csv.reader(io.StringIO(line, newline="")))
    assert dict(zip(EXPORT_FIELDS, cells, strict=True)) == {
        **{name: str(value) for name, value in zip(EXPORT_FIELDS, ROW, strict=False)},
        "ip_prefix": "",
        "gpc": "true",
    }


def test_pages_are_filtered_counted_and_headed():
    async def pages():
        # As the ledger yields them: pages of named rows.
        yield [RecordRow._make(ROW), RecordRow._make((*ROW[:4], "save", *ROW[5:]))]
        yield [RecordRow._make(ROW)]

    async def collect(fmt, keep=None):
        return [chunk async for chunk in export_chunks(pages(), fmt, keep)]

    jsonl = asyncio.run(collect("jsonl", lambda r: r.action == "record"))
    assert [n for _, n in jsonl] == [1, 1]
    csv_chunks = asyncio.run(collect("csv"))
    assert csv_chunks[0] == (",".join(EXPORT_FIELDS) + "\n", 0)
    assert [n for _, n in csv_chunks[1:]] == [2, 1]
    out = io.StringIO()
    seen: list[int] = []
    assert asyncio.run(write_export(pages(), "csv", out, progress=seen.append)) == 3
    assert seen == [2, 3] and out.getvalue() == "".join(text for text, _ in csv_chunks)
