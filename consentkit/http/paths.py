"""Paths a visitor may be sent back to: the ``next`` of a form, a same-site ``Referer``, the
page being shown. Anything that could leave the site becomes ``/`` or a 400, never a redirect
elsewhere."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.types import Scope

MAX_PATH = 2048
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def is_safe_next(value: str) -> bool:
    """Whether ``value`` is a path on this site (no scheme, no host, no tricks).

    One leading ``/`` and no second one right after it means no scheme and no host; browsers
    read a backslash as a slash and drop control characters, so neither may appear at all.
    """
    return (
        value.startswith("/")
        and not value.startswith("//")
        and len(value) <= MAX_PATH
        and _UNSAFE_IN_PATH.search(value) is None
    )


def same_site_referer(headers: Mapping[str, str]) -> str | None:
    """The path of a ``Referer`` on this site's host, or ``None``."""
    referer = headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc.lower() != (headers.get("host") or "").lower():
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if is_safe_next(path) else None


def here(scope: Scope) -> str:
    """The path and query of the page being answered (what a banner's forms come back to)."""
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    return path + "?" + query.decode("latin-1") if query else path
