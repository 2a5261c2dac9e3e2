"""The consent of a request, from its ``Cookie`` and ``Sec-GPC`` headers (never raises).

This runs on every request that asks for ``request.state.consent`` and on every page that gets
the banner, so the answers are remembered: a visitor sends the same ``Cookie`` header request
after request, and a cookie value verifies the same way every time (only its age is checked
again). Both memories are bounded (:class:`~consentkit.cache.BoundedCache`), and so is the work
one header can cause, however many consent cookies it carries.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from ..cache import BoundedCache
from ..consent import Consent, evaluate
from ..cookie import CookieCodec
from ..policy import Policy
from ..regions import Model, RegionReader

Where = tuple[str | None, Model]  # a request's region and the model that applies there
RequestKey = tuple[bytes | None, bool, bytes | None, bytes | None]  # cookie, GPC, region headers

CACHE_SIZE = 16384
MAX_CACHED_HEADER = 1024  # longer Cookie headers are read every time: they bound the memory
# A browser sends one consent cookie, two at most (a path or domain variant): looking at more
# would let a single request make us check thousands of signatures.
MAX_VALUES = 4

Headers = Iterable[tuple[bytes, bytes]]


def scan(headers: Headers) -> tuple[bytes | None, bool, bytes | None]:
    """The one pass over a request's raw headers: ``(cookie, gpc, accept_language)``.

    Several ``Cookie`` headers are joined as HTTP/2 wants; ``Sec-GPC`` counts only as exactly
    ``1`` (any other value states no preference).
    """
    cookie = language = None
    gpc = False
    for key, value in headers:
        if key == b"cookie":
            cookie = value if cookie is None else cookie + b"; " + value
        elif key == b"accept-language":
            language = value
        elif key == b"sec-gpc" and value.strip() == b"1":
            gpc = True
    return cookie, gpc, language


class ConsentReader:
    """Reads the consent cookie of requests under one policy and one set of keys."""

    def __init__(self, policy: Policy, codec: CookieCodec, cookie_name: str) -> None:
        self.policy = policy
        self.codec = codec
        self._values = re.compile(rf"(?:^|;)\s*{re.escape(cookie_name)}=([^;]*)")
        self._undecided = {gpc: evaluate(policy, None, gpc, 0.0) for gpc in (False, True)}
        # One cache per GPC signal, keyed by the raw header: no key tuple to build per request.
        self._by_header: dict[bool, BoundedCache[bytes, Consent]] = {
            False: BoundedCache(CACHE_SIZE),
            True: BoundedCache(CACHE_SIZE),
        }
        self._by_value: BoundedCache[tuple[str, bool, str | None], Consent] = BoundedCache(CACHE_SIZE)
        # The caches' own get, bound once and indexed by the signal: the lookup every request makes.
        self._lookup = (self._by_header[False].get, self._by_header[True].get)
        # Where the policy has a [regions] table, the law of each request's region: its headers
        # are read in the same pass as the cookie, and the answer is remembered for the four
        # raw values together.
        self.regions = RegionReader(policy.regions) if policy.regions is not None else None
        self._by_request: BoundedCache[RequestKey, Consent] = BoundedCache(CACHE_SIZE)
        if self.regions is not None:
            self.of_headers = self._of_headers_in_region  # type: ignore[method-assign]

    def of_headers(self, headers: Headers) -> Consent:
        """The consent a request's raw ASGI headers carry (in its region, with regions)."""
        cookie, gpc, _ = scan(headers)
        return self.of(cookie, gpc)

    def of(self, cookie_header: bytes | None, gpc: bool) -> Consent:
        """The consent of a raw ``Cookie`` header (all of them joined) and the GPC signal, where
        the policy has no regions (opt-in everywhere)."""
        if cookie_header is None:
            return self._undecided[gpc]
        hit = self._lookup[gpc](cookie_header)
        if hit is not None and (not hit.decided or time.time() < hit.valid_until):
            return hit
        consent = self.of_cookie(cookie_header.decode("latin-1"), gpc)
        # An undecided answer that names a subject may turn decided later (a cookie from a clock
        # a little ahead of ours): only answers that cannot change are kept.
        if len(cookie_header) <= MAX_CACHED_HEADER and (consent.decided or consent.subject_id is None):
            self._by_header[gpc].put(cookie_header, consent)
        return consent

    def _of_headers_in_region(self, headers: Headers) -> Consent:
        regions = self.regions
        assert regions is not None
        cookie = country = subdivision = None
        gpc = False
        want_country, want_subdivision = regions.header_names
        for key, value in headers:
            if key == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif key == b"sec-gpc":
                gpc = gpc or value.strip() == b"1"
            elif key == want_country:
                # Sent twice: somebody besides the trusted proxy set it. Unknown.
                country = value if country is None else b""
            elif key == want_subdivision:
                subdivision = value if subdivision is None else b""
        asked = (cookie, gpc, country, subdivision)
        hit = self._by_request.get(asked)
        if hit is not None and (not hit.decided or time.time() < hit.valid_until):
            return hit
        where = regions.where(country, subdivision)
        if cookie is None:
            return self._by_request.put(asked, self._nothing(gpc, where))
        consent = self.of_cookie(cookie.decode("latin-1"), gpc, where)
        if len(cookie) <= MAX_CACHED_HEADER and (consent.decided or consent.subject_id is None):
            self._by_request.put(asked, consent)
        return consent

    def of_cookie(self, cookie_header: str, gpc: bool, where: Where | None = None) -> Consent:
        """The consent a ``Cookie`` header carries; the first valid consent cookie wins."""
        region, model = (None, Model.OPT_IN) if where is None else where
        values = self._values.findall(cookie_header)
        if not values:
            return self._nothing(gpc, where)
        now = time.time()
        fallback: Consent | None = None
        for raw in values[:MAX_VALUES]:
            value = raw.strip().strip('"')
            hit = self._by_value.get((value, gpc, region))
            if hit is not None and now < hit.valid_until and hit.model is model:
                return hit
            stored = self.codec.decode(value)
            if stored is None:
                continue
            consent = evaluate(self.policy, stored, gpc, now, model, region)
            if consent.decided:
                return self._by_value.put((value, gpc, region), consent)
            fallback = fallback or consent
        return fallback or self._nothing(gpc, where)

    def _nothing(self, gpc: bool, where: Where | None) -> Consent:
        """The consent of a visitor without a consent cookie."""
        if where is None:
            return self._undecided[gpc]
        return evaluate(self.policy, None, gpc, 0.0, where[1], where[0])
