"""What the desk's pages and the self-contained report share: where their templates live and
the stylesheet, which both inline (the report loads nothing from anywhere)."""

from __future__ import annotations

from importlib.resources import files

#: The folder of the desk's and the report's templates, under the package's ``templates``.
TEMPLATES = "consentkit/audit"


def stylesheet() -> str:
    """The desk's CSS, inlined into every page and into the report."""
    return (files("consentkit") / "templates" / TEMPLATES / "audit.css").read_text(encoding="utf-8")
