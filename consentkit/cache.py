"""One bounded cache for the whole package.

The middleware remembers answers that visitors ask for again and again (the consent of a
``Cookie`` header, the filled-in banner of a consent, the language of an ``Accept-Language``).
Every such memory must stay bounded whatever a client sends. ``BoundedCache`` is a ``dict``,
so a hit is one C-level ``get``; an insert past the limit drops the oldest entry (first in,
first out), so a flood of new keys never empties the cache of the ones in steady use all at
once, as clearing it would.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A ``dict`` of at most ``limit`` entries: read it with ``get``, fill it with ``put``."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a cache holds at least one entry")
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` for ``key`` (dropping the oldest entry when full); returns it."""
        if len(self) >= self.limit and key not in self:
            del self[next(iter(self))]
        self[key] = value
        return value
