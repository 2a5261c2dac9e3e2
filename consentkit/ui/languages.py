"""The visitor's language: chosen from ``Accept-Language`` among the policy's, and the gettext
catalogs (Babel) that translate consentkit's own texts into it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel import negotiate_locale
from babel.support import NullTranslations, Translations

from ..cache import BoundedCache

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "consentkit"
CACHE_SIZE = 4096


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


class Languages:
    """Picks one of a policy's languages for each visitor, remembering the answer per header."""

    def __init__(self, available: tuple[str, ...]) -> None:
        self.available = available
        self.default = available[0]
        self._by_header: BoundedCache[str | bytes | None, str] = BoundedCache(CACHE_SIZE)
        self._get = self._by_header.get  # bound once: every page with the banner asks

    def best(self, accept_language: str | bytes | None) -> str:
        """The language that fits an ``Accept-Language`` header best (the default otherwise)."""
        hit = self._get(accept_language)
        if hit is None:
            header = (
                accept_language.decode("latin-1") if isinstance(accept_language, bytes) else accept_language
            )
            hit = self._by_header.put(accept_language, negotiate(header, self.available))
        return hit


def ui_locales() -> tuple[str, ...]:
    """Languages consentkit's own texts are translated into (English is the source)."""
    found = {p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")}
    return ("en", *sorted(found - {"en"}))


def translations(locale: str) -> NullTranslations:
    """The gettext catalog for ``locale`` (``fr-CA`` falls back to ``fr``), else English."""
    for candidate in (locale.replace("-", "_"), locale.split("-")[0]):
        if (LOCALES_DIR / candidate / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file():
            return Translations.load(str(LOCALES_DIR), [candidate], domain=DOMAIN)
    return NullTranslations()
