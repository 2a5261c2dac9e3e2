"""The law of each visitor: which consent model applies where (the README's "Regions").

A site behind a CDN or proxy that tells it each visitor's country (and subdivision) lists, in the
policy's ``[regions]`` table, the headers that carry them and a model per region:

* ``opt_in`` — nothing but the essential purposes until the visitor agrees (GDPR, the UK,
  Quebec's Law 25): what consentkit does without a ``[regions]`` table;
* ``opt_out`` — the purposes are allowed until the visitor opts out, and a Global Privacy Control
  signal opts them out of the purposes that honour it (the US state laws);
* ``notice`` — the visitor is told, nothing is blocked, and refusing stays one click away.

The most specific rule wins: ``US-CA`` before ``US`` before a group (``EU`` before ``EEA``), and
``default`` where the region is unknown or no rule names it. Header values are trusted only from
the configured names, and only when they are ISO 3166 codes: anything else (missing, repeated,
``XX``, ``T1``) is an unknown region, never an error for the visitor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from babel import Locale

from .cache import BoundedCache
from .errors import PolicyError


class Model(StrEnum):
    """The consent model of a visitor's region."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    NOTICE = "notice"


#: How strict each model is: a choice made under one counts under another no stricter.
STRICTNESS = {Model.NOTICE: 0, Model.OPT_OUT: 1, Model.OPT_IN: 2}

# Two-letter territory codes of CLDR (Babel's data) that are not countries (the EU, the UN,
# "unknown", private use) or are only exceptionally reserved in ISO 3166-1 (Ascension, Diego
# Garcia…). "XK" (Kosovo) stays: it is user-assigned, but CDNs send it.
_NOT_COUNTRIES = frozenset(
    {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "AC", "CP", "CQ", "DG", "EA", "IC", "TA"}
)
_TERRITORIES = frozenset(map(str, Locale("en").territories))
COUNTRIES = frozenset(c for c in _TERRITORIES if len(c) == 2 and c.isalpha()) - _NOT_COUNTRIES

# The 27 member states of the European Union since 1 February 2020 (europa.eu, "EU countries"),
# by their ISO 3166-1 codes (Greece is GR, though the EU writes EL), and the European Economic
# Area: the EU with Iceland, Liechtenstein and Norway (the EEA Agreement, efta.int).
EU = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})  # fmt: skip
EEA = EU | {"IS", "LI", "NO"}
GROUPS: Mapping[str, frozenset[str]] = {"EU": EU, "EEA": EEA}

_MODE_STATE = {Model.OPT_IN: "denied", Model.OPT_OUT: "granted", Model.NOTICE: "granted"}
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]{1,64}\Z")


class Regions:
    """The ``[regions]`` table of a policy, checked; :meth:`model_of` applies it."""

    __slots__ = ("country_header", "default", "rules", "subdivision_header")

    def __init__(
        self,
        *,
        country_header: str,
        subdivision_header: str | None = None,
        default: str = Model.OPT_IN,
        rules: Mapping[str, str] | None = None,
    ) -> None:
        problems = _problems(country_header, subdivision_header, default, rules or {})
        if problems:
            raise PolicyError("<python>", problems)
        self.country_header = country_header.lower()
        self.subdivision_header = subdivision_header.lower() if subdivision_header else None
        self.default = Model(default)
        self.rules = {key.upper(): Model(value) for key, value in (rules or {}).items()}

    @classmethod
    def from_mapping(cls, data: Any) -> Regions:
        """The ``[regions]`` table of a policy file; :class:`PolicyError` names what is wrong."""
        if not isinstance(data, Mapping):
            raise PolicyError("<python>", [("regions", "must be a [regions] table")])
        unknown = sorted(set(data) - {"country_header", "subdivision_header", "default", "rules"})
        if unknown:
            raise PolicyError(
                "<python>", [(f"regions.{k}", "unknown key (check the spelling)") for k in unknown]
            )
        if "country_header" not in data:
            raise PolicyError("<python>", [("regions.country_header", "required key is missing")])
        rules = data.get("rules", {})
        if not isinstance(rules, Mapping):
            raise PolicyError("<python>", [("regions.rules", 'must be a table like { "US" = "opt_out" }')])
        return cls(
            country_header=data["country_header"],
            subdivision_header=data.get("subdivision_header"),
            default=data.get("default", Model.OPT_IN),
            rules=rules,
        )

    def to_dict(self) -> dict[str, Any]:
        """The table as the policy file has it (what the policy's digest covers)."""
        out: dict[str, Any] = {"country_header": self.country_header, "default": str(self.default)}
        if self.subdivision_header is not None:
            out["subdivision_header"] = self.subdivision_header
        out["rules"] = {key: str(model) for key, model in sorted(self.rules.items())}
        return out

    def model_of(self, region: str | None) -> Model:
        """The model for a region (``"US-CA"``, ``"FR"``, or ``None`` when unknown)."""
        if region is None:
            return self.default
        rules = self.rules
        hit = rules.get(region)
        if hit is not None:
            return hit
        country = region.partition("-")[0]
        hit = rules.get(country)
        if hit is not None:
            return hit
        for group in ("EU", "EEA"):  # the smaller group first: it is the more specific
            hit = rules.get(group)
            if hit is not None and country in GROUPS[group]:
                return hit
        return self.default

    def consent_mode_defaults(self, types: Iterable[str]) -> list[dict[str, Any]]:
        """Google Consent Mode ``default`` commands for these rules: one per model with the
        ``region`` list it applies to (ISO 3166 codes; the groups spelled out as the countries
        without a rule of their own), then the general default. Tags start granted where the
        law is opt-out or a notice, denied where it is opt-in, before any page has read a
        visitor's cookie (Google applies the most specific region, as these rules do)."""
        regions: dict[Model, set[str]] = {}
        for key, model in self.rules.items():
            if key not in GROUPS:
                regions.setdefault(model, set()).add(key)
        for group in ("EU", "EEA"):
            group_model = self.rules.get(group)
            if group_model is None:
                continue
            for country in GROUPS[group]:
                if country in self.rules or (group == "EEA" and "EU" in self.rules and country in EU):
                    continue
                regions.setdefault(group_model, set()).add(country)
        types = sorted(types)
        out: list[dict[str, Any]] = [
            {**dict.fromkeys(types, _MODE_STATE[model]), "region": sorted(codes)}
            for model, codes in sorted(regions.items())
        ]
        out.append(dict.fromkeys(types, _MODE_STATE[self.default]))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regions) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items(), key=str)))

    def __repr__(self) -> str:
        return f"Regions({self.to_dict()!r})"


class RegionReader:
    """The region, and the model that applies there, of the raw values of a request's region
    headers (``ConsentReader`` finds them in the same pass as the cookie).

    The answer for each pair of header values is remembered (a few hundred regions send nearly
    all the traffic): a pair costs one lookup.
    """

    __slots__ = ("_cache", "_country", "_subdivision", "regions")

    def __init__(self, regions: Regions) -> None:
        self.regions = regions
        self._country = regions.country_header.encode("latin-1")
        self._subdivision = (
            regions.subdivision_header.encode("latin-1") if regions.subdivision_header else None
        )
        self._cache: BoundedCache[tuple[bytes | None, bytes | None], tuple[str | None, Model]] = BoundedCache(
            4096
        )

    @property
    def header_names(self) -> tuple[bytes, bytes | None]:
        """The raw (lower-case) names of the country and subdivision headers."""
        return self._country, self._subdivision

    def where(self, country: bytes | None, subdivision: bytes | None) -> tuple[str | None, Model]:
        """``(region, model)`` from the raw values of the two headers (None: not sent)."""
        if country is None:
            return None, self.regions.default
        pair = (country, subdivision)
        hit = self._cache.get(pair)
        if hit is None:
            region = parse_region(country, subdivision)
            hit = self._cache.put(pair, (region, self.regions.model_of(region)))
        return hit


def parse_region(country: bytes, subdivision: bytes | None) -> str | None:
    """``"US-CA"``, ``"US"`` or ``None`` from raw header values (never raises).

    The subdivision may come as its own part (``CA``, Cloudflare's ``cf-region-code``) or whole
    (``US-CA``); one that is not shaped like an ISO 3166-2 code is left out, the country kept.
    """
    try:
        code = country.decode("ascii").strip().upper()
    except UnicodeDecodeError:
        return None
    if code not in COUNTRIES:
        return None
    if not subdivision:
        return code
    try:
        part = subdivision.decode("ascii").strip().upper()
    except UnicodeDecodeError:
        return code
    if part.startswith(code + "-"):
        part = part[len(code) + 1 :]
    return f"{code}-{part}" if _SUBDIVISION.match(part) else code


def _problems(
    country_header: Any, subdivision_header: Any, default: Any, rules: Mapping[Any, Any]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    models = ", ".join(m.value for m in Model)
    for key, name in (("country_header", country_header), ("subdivision_header", subdivision_header)):
        if key == "subdivision_header" and name is None:
            continue
        if not isinstance(name, str) or not _HEADER_NAME.match(name.lower()):
            problems.append((f"regions.{key}", f"{name!r} is not a header name like 'cf-ipcountry'"))
    if not _is_model(default):
        problems.append(("regions.default", f"unknown model {default!r}; known: {models}"))
    for key, value in rules.items():
        where = f"regions.rules.{key}"
        if not isinstance(key, str) or not _is_rule_key(key.upper()):
            problems.append(
                (
                    where,
                    f"{key!r} is not a region: use an ISO 3166-1 country ('US'), a country and its "
                    f"subdivision ('US-CA', 'CA-QC'), or a group ({', '.join(GROUPS)})",
                )
            )
        if not _is_model(value):
            problems.append((where, f"unknown model {value!r}; known: {models}"))
    return problems


def _is_model(value: Any) -> bool:
    # A TOML list or table is no model either (and not hashable: no set lookup for it).
    return isinstance(value, str) and value in _MODELS


_MODELS = frozenset(m.value for m in Model)


def _is_rule_key(key: str) -> bool:
    if key in GROUPS or key in COUNTRIES:
        return True
    country, dash, part = key.partition("-")
    return bool(dash) and country in COUNTRIES and _SUBDIVISION.match(part) is not None
