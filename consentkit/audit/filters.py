"""The records filter an auditor asks for in the desk's query string, checked.

The same fields as ``consentkit export``'s options (the README's "The auditor's desk"): a date
range, action, purpose, subject and method. What is wrong is said, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ..ledger import RecordFilter
from ..ledger.vocabulary import ACTIONS, METHODS

#: The query parameters a filter is read from, as the filter forms and links spell them.
FIELDS = ("since", "until", "action", "purpose", "subject", "method")


def day(value: str | None) -> str | None:
    """``YYYY-MM-DD`` if ``value`` is such a date, else ``None``."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        return None


def read_filter(params: Mapping[str, str]) -> tuple[list[str], RecordFilter, dict[str, str]]:
    """The filter ``params`` ask for, with what is wrong in them, and the values as given (for
    the form and the links that keep them)."""
    query = {k: params.get(k, "") for k in FIELDS}
    problems: list[str] = []
    since = until = None
    if query["since"]:
        since = day(query["since"])
        if since is None:
            problems.append("since must be a date like 2026-11-01")
    if query["until"]:
        last = day(query["until"])
        if last is None:
            problems.append("until must be a date like 2026-11-30")
        else:
            until = f"{last}T99"  # the whole day, inclusive
    if query["action"] and query["action"] not in ACTIONS:
        problems.append(f"unknown action {query['action']!r}")
    if query["method"] and query["method"] not in METHODS:
        problems.append(f"unknown method {query['method']!r}")
    flt = RecordFilter(
        since=since,
        until=until,
        subject_id=query["subject"] or None,
        purpose=query["purpose"] or None,
        action=query["action"] or None,
        method=query["method"] or None,
    )
    return problems, flt, query
