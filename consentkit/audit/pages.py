"""What the desk's pages and the self-contained report share: where their templates live and
the stylesheet, which both inline (the report loads nothing from anywhere)."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files

#: The folder of the desk's and the report's templates, under the package's ``templates``.
TEMPLATES = "consentkit/audit"


@cache
def stylesheet() -> str:
    """The desk's CSS, inlined into every page and into the report."""
    return (files("consentkit") / "templates" / TEMPLATES / "audit.css").read_text(encoding="utf-8")


@cache
def style_hash() -> str:
    """The CSP source that allows the inlined stylesheet and nothing else: ``sha256-…`` of the
    exact text between ``<style>`` and ``</style>`` (``base.html`` puts it there unchanged)."""
    digest = hashlib.sha256(stylesheet().encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
