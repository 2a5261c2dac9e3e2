"""What a visitor was shown when they decided, as the ledger keeps it (CNIL 2020-092).

Every decision made on the banner or the preference center records ``shown_digest``: the
SHA-256 of a small JSON document, the *shown content*, that holds exactly what that visitor's
banner and preference center said — rendered in their language, for their state (first visit,
a policy revised since their last choice, a Global Privacy Control signal) — and which versions
of the stylesheet and the widget drew it. The ledger stores each distinct content once, beside
the policy texts; the auditor's desk shows it and ``consentkit verify`` checks it against its
digest, so that "what was the visitor shown?" has an answer that cannot be edited afterwards.

The content, canonical JSON (sorted keys, no spaces; the README's "For auditors"):

``format``
    ``"consentkit-shown/1"``: changes only if these fields change meaning.
``locale``
    the language the texts are in.
``banner``
    the HTML of the banner with its preference center, as the templates (the site's overrides
    included) rendered it; the two things that differ from visitor to visitor are written as
    ``{csrf_token}`` and ``{return_path}``.
``stylesheet``, ``widget``
    the file names the page loaded them by, which carry a digest of their contents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from html.parser import HTMLParser

from ..cache import BoundedCache
from ..canonical import canonical_json
from ..consent import Consent
from .rendering import PLACES, Renderer

FORMAT = "consentkit-shown/1"
# One entry per language and banner state that decisions were made on: a handful per language.
_CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Shown:
    """A shown content and its digest (what a record's ``shown_digest`` names)."""

    digest: str
    content: str


def sha256_hex(text: str) -> str:
    """The digest of a stored text (a shown content, a policy's canonical JSON): SHA-256 of its
    UTF-8 bytes, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ShownView:
    """A stored shown content as the auditor's desk presents it."""

    intact: bool  # the content still hashes to the digest records name
    locale: str
    texts: list[str]  # what a visitor read, in order: the banner's text without its markup
    html: str
    widget: str
    stylesheet: str

    @classmethod
    def of(cls, content: str, digest: str) -> ShownView:
        """The view of ``content``, stored under ``digest`` (lenient: a tampered content shows
        as such, never breaks the page)."""
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        html = str(data.get("banner", ""))
        reader = _Texts()
        reader.feed(html)
        return cls(
            intact=sha256_hex(content) == digest,
            locale=str(data.get("locale", "")),
            texts=reader.texts,
            html=html,
            widget=str(data.get("widget", "")),
            stylesheet=str(data.get("stylesheet", "")),
        )


class _Texts(HTMLParser):
    """The visible texts of a banner, one per run of text between tags."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._hidden = 0  # inside <script>/<style>/<template>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._hidden:
            self.texts.append(text)


class ShownContents:
    """Works out what the banner showed a visitor, once per language and banner state."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        self._stylesheet = renderer.css_url.rsplit("/", 1)[-1]
        self._widget = renderer.js_url.rsplit("/", 1)[-1]
        # Keyed by the rendering itself: the renderer hands out one string object per state,
        # whose hash Python keeps, so a decision's lookup costs one dictionary probe.
        self._known: BoundedCache[tuple[str, str], Shown] = BoundedCache(_CACHE_SIZE)

    def of(self, consent: Consent, locale: str) -> Shown:
        """What a visitor whose consent was ``consent`` saw in ``locale``."""
        html = self._renderer.banner_source(consent, locale)
        key = (locale, html)
        known = self._known.get(key)
        if known is not None:
            return known
        banner = html
        for placeholder, name in PLACES.items():
            banner = banner.replace(placeholder, "{" + name + "}")
        content = canonical_json(
            {
                "banner": banner,
                "format": FORMAT,
                "locale": locale,
                "stylesheet": self._stylesheet,
                "widget": self._widget,
            }
        )
        return self._known.put(key, Shown(sha256_hex(content), content))
