"""The one exception hierarchy of consentkit.

Every error the library raises on purpose derives from :class:`ConsentkitError`, and its message
says what to fix.
"""

from __future__ import annotations


class ConsentkitError(Exception):
    """Root of every error consentkit raises on purpose."""


class ConfigurationError(ConsentkitError):
    """The kit was set up wrongly (missing secret key, bad option, unknown ledger URL...)."""


class PolicyError(ConfigurationError):
    """A consent policy is invalid.

    ``source`` names the file (or ``<python>``), ``problems`` lists ``(key, message)`` pairs.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {key}: {message}" for key, message in problems]
        super().__init__("invalid consent policy\n  " + "\n  ".join(lines))


class UnknownPurposeError(ConsentkitError, KeyError):
    """A purpose id that the policy does not declare was asked about."""

    def __init__(self, purpose: str, known: list[str]) -> None:
        self.purpose = purpose
        super().__init__(purpose)
        self._message = (
            f"unknown purpose {purpose!r}: the policy declares {', '.join(known)}; "
            "check the spelling or add it to the policy file"
        )

    def __str__(self) -> str:
        return self._message


class InvalidRecordError(ConsentkitError, ValueError):
    """``kit.record`` was given something that cannot be recorded (nothing was written)."""


class IdempotencyKeyReused(ConsentkitError):
    """A decision repeated an ``Idempotency-Key`` whose first decision was a different one
    (nothing was written): a key names one decision, sent again only to retry it."""


class LedgerError(ConsentkitError):
    """Something is wrong with the consent ledger."""


class LedgerUnavailable(LedgerError):
    """The ledger cannot be written right now (database down, disk full, locked too long).

    Decisions answer 503 and no cookie is set; the visitor can try again.
    """


class LedgerOutcomeUnknown(LedgerError):
    """A write was sent to be committed, the connection was lost before the answer came, and the
    database did not come back in time to tell whether it was committed. Not a LedgerUnavailable:
    the record may well be in the ledger, so the visitor must not be told it is not.
    """


class LedgerCorrupt(LedgerError):
    """The ledger's storage is not a consentkit ledger, or is of an unknown schema version."""


class LedgerNotFound(LedgerError):
    """A command that reads an existing ledger was pointed where there is none (a typo?)."""


class SubjectNotFound(LedgerError):
    """No record in the ledger belongs to the subject that was named."""
