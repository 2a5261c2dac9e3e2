"""The consent policy: what a site asks its visitors for (the README's "The policy file").

A policy is loaded from TOML (:meth:`Policy.from_toml`) or built in Python, and validated by
pydantic. Every problem is reported with the file, the key and what is wrong, so that a site fails
at startup rather than asking visitors for something it cannot honour.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .canonical import canonical_json
from .errors import PolicyError, UnknownPurposeError
from .regions import Regions

PURPOSE_ID_PATTERN = re.compile(r"^[a-z0-9_]{1,32}$")
LOCALE_PATTERN = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*$")
# Cookie names are RFC 6265 tokens; "*" is our glob.
COOKIE_PATTERN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")
MAX_LIFETIME_DAYS = 395  # 13 months: the longest any European regulator tolerates
CONSENT_MODE_TYPES = frozenset(
    {
        "ad_storage",
        "ad_user_data",
        "ad_personalization",
        "analytics_storage",
        "functionality_storage",
        "personalization_storage",
        "security_storage",
    }
)
OPT_OUT_SIGNALS = frozenset({"gpc"})


class Purpose(BaseModel):
    """One purpose a visitor can grant or refuse (or, if essential, cannot refuse)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: StrictStr
    essential: StrictBool = False
    title: dict[StrictStr, StrictStr]
    description: dict[StrictStr, StrictStr]
    cookies: tuple[StrictStr, ...] = ()
    consent_mode: tuple[StrictStr, ...] = ()
    opt_out_signals: tuple[StrictStr, ...] = ()
    # Sensitive personal information (the CCPA's term): where the law is opt-out, the page
    # offers "Limit the Use of My Sensitive Personal Information" for it.
    sensitive: StrictBool = False

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise PolicyError(
                "<python>", _pydantic_problems(exc, {"purposes": [data]}, prefix="purpose")
            ) from None

    def text(self, field: str, locale: str, default_locale: str) -> str:
        """The purpose's ``title`` or ``description`` in ``locale``, else the default locale."""
        texts: dict[str, str] = getattr(self, field)
        return texts.get(locale) or texts.get(locale.split("-")[0]) or texts[default_locale]

    @cached_property
    def cookie_regex(self) -> re.Pattern[str] | None:
        """One compiled pattern matching every cookie name the purpose declares."""
        if not self.cookies:
            return None
        alternatives = "|".join(_glob_to_regex(c) for c in self.cookies)
        return re.compile(f"(?:{alternatives})\\Z")


class Policy(BaseModel):
    """A site's consent policy (the README's "The policy file"). Immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    controller: StrictStr = Field(min_length=1)
    contact: StrictStr = Field(min_length=1)
    privacy_url: StrictStr = Field(min_length=1)
    revision: StrictInt = Field(ge=1)
    version: StrictStr = Field(min_length=1)
    consent_lifetime_days: StrictInt = 180
    default_locale: StrictStr = "en"
    purposes: tuple[Purpose, ...]
    # Which consent model applies where (``consentkit/regions.py``); None: opt-in everywhere.
    regions: Regions | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise PolicyError("<python>", _pydantic_problems(exc, data)) from None

    @field_validator("regions", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> Any:
        return Regions.from_mapping(value) if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _check(self) -> Policy:
        problems = _semantic_problems(self)
        if problems:
            raise PolicyError("<python>", problems)
        return self

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Load and validate a policy file; raise :class:`PolicyError` naming the problem."""
        source = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise PolicyError(source, [("(file)", f"cannot read the file: {exc.strerror}")]) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise PolicyError(source, [("(file)", "is not UTF-8 text")]) from None
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(source, [("(file)", f"is not valid TOML: {exc}")]) from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<python>") -> Policy:
        """Build a policy from the file's structure: a ``policy`` table and a ``purposes`` list."""
        unknown = sorted(set(data) - {"policy", "purposes", "regions"})
        if unknown:
            raise PolicyError(
                source,
                [(k, "unknown top-level key; expected [policy], [[purposes]], [regions]") for k in unknown],
            )
        header = data.get("policy")
        if not isinstance(header, Mapping):
            raise PolicyError(source, [("policy", "missing [policy] table")])
        fields = dict(header)
        if "purposes" in fields:
            raise PolicyError(source, [("policy.purposes", "purposes go in [[purposes]] tables")])
        fields["purposes"] = data.get("purposes", [])
        purposes = fields["purposes"]
        if not isinstance(purposes, list) or not all(isinstance(p, Mapping) for p in purposes):
            raise PolicyError(source, [("purposes", "must be [[purposes]] tables")])
        # A policy's model_dump() has its regions among the fields (None when there are none).
        if fields.get("regions") is None:
            fields.pop("regions", None)
        if "regions" in data:
            if "regions" in fields:
                raise PolicyError(source, [("policy.regions", "regions go in their own [regions] table")])
            fields["regions"] = data["regions"]
        try:
            return cls(**{**fields, "purposes": [_purpose(i, p) for i, p in enumerate(purposes)]})
        except PolicyError as exc:
            raise PolicyError(source, exc.problems) from None

    # -- derived facts ------------------------------------------------------------------------

    @cached_property
    def by_id(self) -> dict[str, Purpose]:
        """Purposes keyed by id, in declaration order."""
        return {p.id: p for p in self.purposes}

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """Every purpose id, in declaration order."""
        return tuple(p.id for p in self.purposes)

    @cached_property
    def essential_ids(self) -> frozenset[str]:
        """Purposes that are always on."""
        return frozenset(p.id for p in self.purposes if p.essential)

    @cached_property
    def optional_ids(self) -> tuple[str, ...]:
        """Purposes a visitor decides on, in declaration order."""
        return tuple(p.id for p in self.purposes if not p.essential)

    @cached_property
    def sensitive_ids(self) -> frozenset[str]:
        """Purposes that use sensitive personal information."""
        return frozenset(p.id for p in self.purposes if p.sensitive)

    @cached_property
    def gpc_ids(self) -> frozenset[str]:
        """Purposes that a Global Privacy Control signal denies."""
        return frozenset(p.id for p in self.purposes if "gpc" in p.opt_out_signals)

    @cached_property
    def locales(self) -> tuple[str, ...]:
        """Locales in which every purpose has its texts, the default first."""
        common: set[str] | None = None
        for p in self.purposes:
            have = set(p.title) & set(p.description)
            common = have if common is None else common & have
        others = sorted((common or set()) - {self.default_locale})
        return (self.default_locale, *others)

    @cached_property
    def canonical_json(self) -> str:
        """The policy as canonical JSON (sorted keys, no spaces): what the digest covers.

        What a policy leaves at its default and older versions did not know (``regions``, a
        purpose's ``sensitive``) is left out, so that the digest of an unchanged policy file
        stays what it was."""
        data = self.model_dump(mode="json", exclude={"regions"})
        for purpose in data["purposes"]:
            if not purpose["sensitive"]:
                del purpose["sensitive"]
        if self.regions is not None:
            data["regions"] = self.regions.to_dict()
        return canonical_json(data)

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) over the canonical policy, texts included."""
        return hashlib.sha256(self.canonical_json.encode("utf-8")).hexdigest()

    def purpose(self, purpose_id: str) -> Purpose:
        """The purpose with this id; :class:`UnknownPurposeError` if there is none."""
        try:
            return self.by_id[purpose_id]
        except KeyError:
            raise UnknownPurposeError(purpose_id, list(self.ids)) from None

    def check_ids(self, purpose_ids: Iterable[str]) -> None:
        """Raise :class:`UnknownPurposeError` for the first id the policy does not declare."""
        for pid in purpose_ids:
            if pid not in self.by_id:
                raise UnknownPurposeError(pid, list(self.ids))

    def cookie_purpose(self, cookie_name: str) -> str | None:
        """The id of the purpose that declares this cookie name, or ``None`` if undeclared."""
        return self._cookie_purposes.get(cookie_name) or self._match_cookie(cookie_name)

    @cached_property
    def _cookie_purposes(self) -> dict[str, str]:
        return {c: p.id for p in self.purposes for c in p.cookies if "*" not in c}

    def _match_cookie(self, name: str) -> str | None:
        for p in self.purposes:
            rx = p.cookie_regex
            if rx is not None and rx.match(name):
                return p.id
        return None


def _glob_to_regex(pattern: str) -> str:
    return ".*".join(re.escape(part) for part in pattern.split("*"))


def _semantic_problems(policy: Policy) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not 1 <= policy.consent_lifetime_days <= MAX_LIFETIME_DAYS:
        problems.append(
            (
                "policy.consent_lifetime_days",
                f"must be between 1 and {MAX_LIFETIME_DAYS} days (13 months); "
                f"got {policy.consent_lifetime_days}",
            )
        )
    if not LOCALE_PATTERN.match(policy.default_locale):
        problems.append(
            (
                "policy.default_locale",
                f"{policy.default_locale!r} is not a locale like 'en' or 'fr-CA'",
            )
        )
    if not policy.purposes:
        problems.append(("purposes", "declare at least one [[purposes]] table"))
    seen: dict[str, int] = {}
    cookie_owner: dict[str, str] = {}
    for i, p in enumerate(policy.purposes):
        key = f"purposes[{i}]"
        if not PURPOSE_ID_PATTERN.match(p.id):
            problems.append((f"{key}.id", f"{p.id!r} is not a valid id: use 1 to 32 of a-z, 0-9 and _"))
        else:
            key = f"purposes[{i}] (id={p.id!r})"
        if p.id in seen:
            problems.append((f"{key}.id", f"duplicate id: purposes[{seen[p.id]}] has it too"))
        seen.setdefault(p.id, i)
        problems.extend(_purpose_problems(key, p, policy.default_locale))
        problems.extend(_cookie_problems(key, p, cookie_owner))
    return problems


def _purpose_problems(key: str, p: Purpose, default_locale: str) -> list[tuple[str, str]]:
    """What is wrong with one purpose's texts, signals and Consent Mode types."""
    problems: list[tuple[str, str]] = []
    for field in ("title", "description"):
        texts: dict[str, str] = getattr(p, field)
        if not texts.get(default_locale, "").strip():
            problems.append((f"{key}.{field}", f"missing text for the default locale {default_locale!r}"))
        for loc in texts:
            if not LOCALE_PATTERN.match(loc):
                problems.append((f"{key}.{field}", f"{loc!r} is not a locale like 'en' or 'fr-CA'"))
    if p.essential and p.opt_out_signals:
        problems.append(
            (
                f"{key}.opt_out_signals",
                "an essential purpose cannot be refused, so it cannot honour opt-out signals; "
                "remove opt_out_signals or make the purpose non-essential",
            )
        )
    for sig in p.opt_out_signals:
        if sig not in OPT_OUT_SIGNALS:
            problems.append((f"{key}.opt_out_signals", f"unknown signal {sig!r}; known: gpc"))
    for cm in p.consent_mode:
        if cm not in CONSENT_MODE_TYPES:
            problems.append(
                (
                    f"{key}.consent_mode",
                    f"unknown Consent Mode type {cm!r}; known: {', '.join(sorted(CONSENT_MODE_TYPES))}",
                )
            )
    return problems


def _cookie_problems(key: str, p: Purpose, cookie_owner: dict[str, str]) -> list[tuple[str, str]]:
    """What is wrong with one purpose's cookie names; ``cookie_owner`` collects who owns which."""
    problems: list[tuple[str, str]] = []
    for c in p.cookies:
        if not COOKIE_PATTERN.match(c):
            problems.append((f"{key}.cookies", f"{c!r} is not a cookie name (or a * glob of one)"))
            continue
        other = _overlapping_owner(c, p.id, cookie_owner)
        if other is not None:
            problems.append(
                (
                    f"{key}.cookies",
                    f"cookie {c!r} is also declared by {other!r}: a name belongs to one purpose only",
                )
            )
        cookie_owner.setdefault(c, p.id)
    return problems


def _overlapping_owner(pattern: str, owner: str, declared: dict[str, str]) -> str | None:
    """Another purpose whose declared name or glob can match the same cookie as ``pattern``.

    Two globs overlap when some name matches both; we test the names each glob most plainly
    stands for (its ``*`` as nothing, or as a letter), which catches every overlap a policy
    writer is likely to make (``_ga*`` and ``_gat*``, ``_ga_*`` and ``_ga_ads``).
    """
    mine = re.compile(_glob_to_regex(pattern) + r"\Z")
    samples = {pattern.replace("*", ""), pattern.replace("*", "x")}
    for other, other_owner in declared.items():
        if other_owner == owner:
            continue
        theirs = re.compile(_glob_to_regex(other) + r"\Z")
        other_samples = {other.replace("*", ""), other.replace("*", "x")}
        if any(theirs.match(s) for s in samples) or any(mine.match(s) for s in other_samples):
            return other_owner
    return None


def _purpose(index: int, data: Mapping[str, Any]) -> Purpose:
    try:
        return Purpose(**data)
    except PolicyError as exc:
        # Name the purpose as the file does: purposes[1] (id='ads').key
        label = f"purposes[{index}]" + (f" (id={data['id']!r})" if isinstance(data.get("id"), str) else "")
        raise PolicyError(
            exc.source, [(label + k.removeprefix("purpose"), m) for k, m in exc.problems]
        ) from None


def _pydantic_problems(
    exc: ValidationError, fields: Mapping[str, Any], prefix: str | None = None
) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        if prefix is not None:
            key = prefix + "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in loc)
            problems.append((key, _message(err)))
            continue
        if loc and loc[0] == "purposes":
            key = "purposes"
            rest = loc[1:]
            if rest and isinstance(rest[0], int):
                key = f"purposes[{rest[0]}]"
                purposes = fields.get("purposes")
                if isinstance(purposes, list) and rest[0] < len(purposes):
                    entry = purposes[rest[0]]
                    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                        key += f" (id={entry['id']!r})"
                rest = rest[1:]
            key += "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in rest)
        else:
            key = "policy." + ".".join(str(part) for part in loc) if loc else "policy"
        problems.append((key, _message(err)))
    return problems


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling)"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])
