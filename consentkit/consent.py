"""A visitor's consent as the site sees it on one request (the README's "How consent is decided")."""

from __future__ import annotations

from typing import Any

from .cookie import StoredDecision
from .errors import UnknownPurposeError
from .policy import Policy
from .regions import STRICTNESS, Model

# A cookie may say it was decided a little in the future when clocks disagree.
CLOCK_SKEW_SECONDS = 300


class Consent:
    """What a visitor allows, after the policy's validity rules and any Global Privacy Control.

    ``granted`` holds every purpose the site may use now (essential ones included); ``denied``
    the ones the visitor refused or a signal denied. An undecided visitor has only the essential
    purposes granted and ``needs_prompt`` set; ``previous`` then holds an earlier decision (a
    past revision, or expired) for pre-filling the banner. Instances are immutable and shared.

    ``model`` is the law of the visitor's ``region`` (``consentkit/regions.py``): under
    ``opt_out`` and ``notice`` an undecided visitor has every purpose granted but those a GPC
    signal or an earlier refusal denies.
    """

    __slots__ = (
        "_policy",
        "decided",
        "decided_at",
        "denied",
        "gpc",
        "gpc_confirmed",
        "granted",
        "model",
        "previous",
        "receipt",
        "region",
        "revision",
        "stored",
        "subject_id",
        "valid_until",
    )

    _policy: Policy
    decided: bool
    decided_at: int | None
    denied: frozenset[str]
    gpc: bool
    gpc_confirmed: bool
    granted: frozenset[str]
    model: Model
    previous: StoredDecision | None
    receipt: str | None
    region: str | None
    revision: int | None
    stored: StoredDecision | None
    subject_id: str | None
    valid_until: float

    def __init__(
        self,
        policy: Policy,
        *,
        decided: bool,
        granted: frozenset[str],
        denied: frozenset[str],
        gpc: bool,
        subject_id: str | None = None,
        decided_at: int | None = None,
        revision: int | None = None,
        receipt: str | None = None,
        previous: StoredDecision | None = None,
        gpc_confirmed: bool = False,
        valid_until: float = float("inf"),
        stored: StoredDecision | None = None,
        model: Model = Model.OPT_IN,
        region: str | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "_policy", policy)
        set_(self, "decided", decided)
        set_(self, "granted", granted)
        set_(self, "denied", denied)
        set_(self, "gpc", gpc)
        set_(self, "subject_id", subject_id)
        set_(self, "decided_at", decided_at)
        set_(self, "revision", revision)
        set_(self, "receipt", receipt)
        set_(self, "previous", previous)
        set_(self, "gpc_confirmed", gpc_confirmed)
        set_(self, "valid_until", valid_until)
        set_(self, "stored", stored)
        set_(self, "model", model)
        set_(self, "region", region)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Consent is immutable")

    @property
    def needs_prompt(self) -> bool:
        """Whether the visitor should be asked (no valid decision for the current policy)."""
        return not self.decided

    def allows(self, purpose: str) -> bool:
        """Whether the site may pursue ``purpose`` for this visitor now.

        An id the policy does not declare raises :class:`UnknownPurposeError`: a typo must not
        silently read as "refused" (or worse, be fixed later by granting).
        """
        if purpose in self.granted:
            return True
        if purpose not in self._policy.by_id:
            raise UnknownPurposeError(purpose, list(self._policy.ids))
        return False

    def purposes(self) -> dict[str, bool]:
        """``{purpose_id: allowed}`` for every purpose, in policy order."""
        return {pid: pid in self.granted for pid in self._policy.ids}

    def __repr__(self) -> str:
        state = "decided" if self.decided else "undecided"
        plain = self.region is None and self.model is Model.OPT_IN
        where = "" if plain else f" {self.model} in {self.region}"
        return f"<Consent {state}{where} granted={sorted(self.granted)} gpc={self.gpc}>"


def evaluate(
    policy: Policy,
    stored: StoredDecision | None,
    gpc: bool,
    now: float,
    model: Model = Model.OPT_IN,
    region: str | None = None,
) -> Consent:
    """Apply the validity rules (the README's "How consent is decided"), the law of the
    visitor's region and the GPC signal to what a cookie carried."""
    essential = policy.essential_ids
    if stored is None:
        return _undecided(policy, gpc, model, region)
    lifetime = policy.consent_lifetime_days * 86400
    # A float: every request that reads consent compares it with time.time(), and a float
    # against an int is the slow comparison.
    valid_until = float(stored.decided_at + lifetime)
    optional = policy.optional_ids
    if (
        stored.revision != policy.revision
        or now >= valid_until
        or stored.decided_at > now + CLOCK_SKEW_SECONDS
        or not all(p in stored.granted or p in stored.denied for p in optional)
        # A choice made under a laxer law is not consent under a stricter one (a visitor from
        # California in Germany is asked, their choices pre-filled).
        or STRICTNESS[stored.model] < STRICTNESS[model]
    ):
        return _undecided(policy, gpc, model, region, stored)
    granted = stored.granted.intersection(optional)
    if gpc and not stored.gpc:
        # A choice made without the signal yields to it; one made after seeing the GPC notice
        # (recorded with gpc=true) is the visitor's own, more specific, word.
        granted = granted - policy.gpc_ids
    return Consent(
        policy,
        decided=True,
        granted=granted | essential,
        denied=frozenset(optional).difference(granted),
        gpc=gpc,
        subject_id=stored.subject_id,
        decided_at=stored.decided_at,
        revision=stored.revision,
        receipt=stored.receipt,
        gpc_confirmed=stored.gpc,
        valid_until=valid_until,
        stored=stored,
        model=model,
        region=region,
    )


def _undecided(
    policy: Policy, gpc: bool, model: Model, region: str | None, previous: StoredDecision | None = None
) -> Consent:
    """A visitor without a valid decision: only the essential purposes where the law is opt-in;
    elsewhere every purpose but those the visitor refused before or a GPC signal denies (an
    opt-out does not lapse with a new policy revision or a consent lifetime)."""
    essential = policy.essential_ids
    if model is Model.OPT_IN:
        granted = essential
    else:
        optional = frozenset(policy.optional_ids)
        if gpc:
            optional -= policy.gpc_ids
        if previous is not None:
            optional -= previous.denied
        granted = essential | optional
    return Consent(
        policy,
        decided=False,
        granted=granted,
        denied=frozenset() if model is Model.OPT_IN else frozenset(policy.optional_ids) - granted,
        gpc=gpc,
        subject_id=previous.subject_id if previous is not None else None,
        previous=previous,
        model=model,
        region=region,
    )
