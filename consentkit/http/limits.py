"""Rate limits per client, in bounded memory: the desk's failed sign-ins and visitors' decisions.

A :class:`RateLimiter` allows at most ``limit`` events per key within any ``window`` seconds (a
sliding log of each key's last ``limit`` times). Keys are client addresses as
:func:`consentkit.http.client.limit_key` makes them (IPv4 address, IPv6 /64).

Memory is bounded by ``max_keys`` keys of at most ``limit`` times each, and reaching the bound
never unlocks everybody at once (clearing the table would: anyone able to send from
``max_keys`` addresses could then reset their own lock, and everyone else's, whenever they
liked). When the table is full and a new key comes:

1. keys whose every event is older than the window go first: they limit nothing any more;
2. then the key below its limit whose last event is the oldest: forgetting it hands that key
   back fewer than ``limit`` events, which it would get back anyway as its window slides;
3. only when every key kept is at its limit (``max_keys`` clients locked out at once) does the
   locked key whose last event is the oldest go.

So a spray of one-off failures from new addresses, however many, never unlocks a client at its
limit: they push each other out. To unlock one, a client must lock out ``max_keys`` other keys
after it — and one who can send from that many addresses is already allowed ``max_keys × limit``
events by the per-address rule itself, so the eviction gives it nothing it did not have. A
locked client that keeps trying stays the most recent of all, and is never the one to go.
"""

from __future__ import annotations

import math
import time
from array import array

_Log = dict[str, "array[float]"]


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds, for up to ``max_keys`` keys."""

    __slots__ = ("_full", "_open", "limit", "max_keys", "window")

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("a rate limit needs limit >= 1, window > 0 and max_keys >= 1")
        self.limit = limit
        self.window = float(window)
        self.max_keys = max_keys
        # key -> its event times, oldest first (at most ``limit``). Keys below their limit and
        # keys at it are kept apart, each dict in the order of the keys' last attempt, so that
        # the one to drop when full is always first in one of them.
        self._open: _Log = {}
        self._full: _Log = {}

    def __len__(self) -> int:
        return len(self._open) + len(self._full)

    def wait(self, key: str, now: float | None = None) -> float:
        """Seconds before ``key`` may have another event (0.0: now); counts nothing."""
        hits = self._open.get(key)
        if hits is None:
            hits = self._full.get(key)
            if hits is None:
                return 0.0
        return self._wait(hits, time.monotonic() if now is None else now)

    def acquire(self, key: str, now: float | None = None) -> float:
        """Count an event of ``key`` if the limit allows it and answer 0.0; otherwise count
        nothing and answer the seconds to wait.

        The event is counted *before* the work it stands for is done, so that concurrent
        requests cannot all pass the check while the first ones are still being worked on.
        """
        now = time.monotonic() if now is None else now
        hits = self._open.pop(key, None)
        if hits is None:
            hits = self._full.pop(key, None)
        if hits is None:
            self._make_room(now)
            hits = array("d", (now,))
            wait = 0.0
        else:
            wait = self._wait(hits, now)
            if wait == 0.0:
                hits.append(now)
        # Back in at the end: the most recent attempt (a refused one too — a client that keeps
        # knocking stays where it is remembered longest).
        (self._full if len(hits) >= self.limit else self._open)[key] = hits
        return wait

    def release(self, key: str) -> None:
        """Un-count ``key``'s latest event (it turned out not to count: a sign-in that succeeded,
        a decision that could not be recorded)."""
        hits = self._full.pop(key, None)
        if hits is None:
            hits = self._open.pop(key, None)
            if hits is None:
                return
        hits.pop()
        if hits:
            self._open[key] = hits

    def clear(self) -> None:
        """Forget every key: an operator's deliberate unlock, never an automatic one."""
        self._open.clear()
        self._full.clear()

    @staticmethod
    def retry_after(wait: float) -> str:
        """A ``Retry-After`` value (whole seconds, at least 1) for a wait."""
        return str(max(1, math.ceil(wait)))

    def _wait(self, hits: array[float], now: float) -> float:
        """Drop ``hits`` older than the window; the wait until one more fits in it."""
        start = now - self.window
        old = 0
        while old < len(hits) and hits[old] <= start:
            old += 1
        if old:
            del hits[:old]
        if len(hits) < self.limit:
            return 0.0
        return hits[0] - start  # until the oldest counted event leaves the window

    def _make_room(self, now: float) -> None:
        """Make room for one more key (the module's docstring says which go, and why)."""
        if len(self) < self.max_keys:
            return
        start = now - self.window
        for log in (self._open, self._full):
            while log:
                first = next(iter(log))
                hits = log[first]
                if hits and hits[-1] > start:
                    break
                del log[first]  # every event of it is outside the window
        while len(self) >= self.max_keys:
            log = self._open if self._open else self._full
            del log[next(iter(log))]
