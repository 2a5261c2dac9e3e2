"""The demo's "Visit as…" control: it plays the CDN or proxy that tells a site where its visitor is.

A real site behind Cloudflare reads ``cf-ipcountry``; the demo runs on 127.0.0.1 with no proxy,
so the visitor picks a region on /demo, a cookie remembers it, and :func:`as_if_from` sets the
two headers that ``consent.toml``'s ``[regions]`` names — after dropping any the visitor sent,
as a trusted proxy must.
"""

from __future__ import annotations

# "Visit as…" (/demo): where the demo pretends its visitor is, as a CDN would tell the site.
VISIT_AS_COOKIE = "demo_visit_as"
VISIT_AS = {
    "DE": "Germany",
    "CA-QC": "Quebec",
    "CA-ON": "Ontario",
    "US-CA": "California",
    "US-TX": "Texas",
    "JP": "Japan",
}
_REGION_HEADERS = (b"x-demo-country", b"x-demo-subdivision")  # consent.toml's [regions]


def as_if_from(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers as the demo's pretend proxy passes them on: a visitor's own region
    headers dropped (a real proxy must do the same), the chosen region's set."""
    chosen = None
    for key, value in headers:
        if key == b"cookie":
            for part in value.split(b";"):
                name, _, val = part.strip().partition(b"=")
                if name == VISIT_AS_COOKIE.encode() and val.decode("latin-1") in VISIT_AS:
                    chosen = val.decode("latin-1")
    kept = [(k, v) for k, v in headers if k not in _REGION_HEADERS]
    if chosen is not None:
        country, _, subdivision = chosen.partition("-")
        kept.append((_REGION_HEADERS[0], country.encode()))
        if subdivision:
            kept.append((_REGION_HEADERS[1], subdivision.encode()))
    return kept
