"""Choosing the visitor's language from ``Accept-Language``."""

from __future__ import annotations

from functools import lru_cache

from babel import negotiate_locale


def parse_accept_language(header: str) -> list[str]:
    """Language tags from an ``Accept-Language`` header, best first (``q=0`` dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > 0:
            weighted.append((-q, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


@lru_cache(maxsize=1024)
def negotiate(header: str | None, available: tuple[str, ...]) -> str:
    """The best of ``available`` (the first is the default) for an ``Accept-Language`` header."""
    if header:
        wanted = [t.replace("_", "-") for t in parse_accept_language(header)]
        match = negotiate_locale(wanted, list(available), sep="-")
        if match is None:
            # "fr-CA" should find "fr", and "fr" should find "fr-CA" when only that exists.
            bases = {a.split("-")[0].lower(): a for a in reversed(available)}
            for tag in wanted:
                hit = bases.get(tag.split("-")[0].lower())
                if hit is not None:
                    return hit
        if match is not None:
            # Babel may echo the visitor's spelling ("FR"): answer with ours.
            by_lower = {a.lower(): a for a in available}
            return by_lower.get(match.lower().replace("_", "-"), available[0])
    return available[0]
