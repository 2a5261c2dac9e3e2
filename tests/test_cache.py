"""The package's one bounded cache."""

import pytest

from consentkit.cache import BoundedCache


def test_a_full_cache_drops_its_oldest_entry_and_keeps_the_rest() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    for n, key in enumerate("abcd"):
        cache.put(key, n)
    assert list(cache) == ["b", "c", "d"]
    assert cache.get("a") is None and cache.get("d") == 3


def test_replacing_a_key_does_not_evict_another() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    assert dict(cache) == {"a": 3, "b": 2}


def test_a_flood_of_new_keys_never_grows_it_past_its_limit() -> None:
    cache: BoundedCache[int, int] = BoundedCache(100)
    for n in range(10_000):
        cache.put(n, n)
    assert len(cache) == 100 and min(cache) == 9_900


def test_an_empty_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        BoundedCache(0)
