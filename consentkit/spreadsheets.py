"""CSV cells that a spreadsheet shows but never runs (OWASP, "CSV Injection").

Every CSV consentkit writes — the auditor's exports, ``consentkit export``, a visitor's own
history — may be opened in a spreadsheet, which runs a cell that starts like a formula.
"""

from __future__ import annotations

#: What a cell may not start with unless it is to be run.
FORMULA_STARTS = frozenset("=+-@\t\r")


def inert(value: str) -> str:
    """``value`` as a spreadsheet shows it but never runs it: a ``'`` before a formula's start."""
    return "'" + value if value[:1] in FORMULA_STARTS else value
