"""consentkit: consent and cookie management for Python web sites.

Mount one ASGI middleware, describe your purposes in one policy file, ask
``get_consent(request).allows("analytics")`` anywhere, and keep every decision in a
tamper-evident consent ledger.

The names below are imported on first use, so that the ``consentkit`` command (which needs
only the ledger) starts without loading the web stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .consent import Consent
    from .errors import (
        ConfigurationError,
        ConsentkitError,
        InvalidRecordError,
        LedgerCorrupt,
        LedgerError,
        LedgerNotFound,
        LedgerUnavailable,
        PolicyError,
        SubjectNotFound,
        UnknownPurposeError,
    )
    from .gating import consent_of as get_consent
    from .kit import ConsentKit
    from .ledger import Ledger, LedgerRecord, RecordFilter, VerifyReport, open_ledger
    from .policy import Policy, Purpose

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "Consent": ".consent",
    "ConfigurationError": ".errors",
    "ConsentkitError": ".errors",
    "InvalidRecordError": ".errors",
    "LedgerCorrupt": ".errors",
    "LedgerError": ".errors",
    "LedgerNotFound": ".errors",
    "LedgerUnavailable": ".errors",
    "PolicyError": ".errors",
    "SubjectNotFound": ".errors",
    "UnknownPurposeError": ".errors",
    "get_consent": ".gating",
    "ConsentKit": ".kit",
    "Ledger": ".ledger",
    "LedgerRecord": ".ledger",
    "RecordFilter": ".ledger",
    "VerifyReport": ".ledger",
    "open_ledger": ".ledger",
    "Policy": ".policy",
    "Purpose": ".policy",
}
__all__ = [
    "ConfigurationError",
    "Consent",
    "ConsentKit",
    "ConsentkitError",
    "InvalidRecordError",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerNotFound",
    "LedgerRecord",
    "LedgerUnavailable",
    "Policy",
    "PolicyError",
    "Purpose",
    "RecordFilter",
    "SubjectNotFound",
    "UnknownPurposeError",
    "VerifyReport",
    "get_consent",
    "open_ledger",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'consentkit' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), "consent_of" if name == "get_consent" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
