"""consentkit: consent and cookie management for Python web sites.

Mount one ASGI middleware, describe your purposes in one policy file, ask
``get_consent(request).allows("analytics")`` anywhere, and keep every decision in a
tamper-evident consent ledger.
"""

from .consent import Consent
from .errors import (
    ConfigurationError,
    ConsentkitError,
    LedgerCorrupt,
    LedgerError,
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

__all__ = [
    "ConfigurationError",
    "Consent",
    "ConsentKit",
    "ConsentkitError",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
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
