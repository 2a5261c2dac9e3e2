"""What auditors see: the desk under ``{prefix}/audit``, who may open it, the overview and its
charts, statistics, exports and the self-contained report (the README's "For auditors and
privacy officers" and "The auditor's desk").

The names below are imported on first use, like the package's own: the ``consentkit`` command
imports the exports and statistics from here, and must start without loading the web stack
that the desk needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access import hash_password
    from .desk import AuditDesk

_EXPORTS = {"AuditDesk": ".desk", "hash_password": ".access"}
__all__ = ["AuditDesk", "hash_password"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
