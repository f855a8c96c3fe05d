"""The in-memory cache (no Redis): its size setting bounds the memory entries really take, LRU and TTL order."""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc

import orjson

from core.cache.backends import MemoryCache


def _entry(i: int) -> tuple[str, bytes]:
    key = f"skyrelay:cache:{{key-0001}}:{os.urandom(32).hex()}"
    value = orjson.dumps({"v": 1, "provider": "openai", "response": {"id": f"chatcmpl-{i}", "text": "x" * 300}})
    return key, value


async def test_the_cap_bounds_the_memory_the_entries_take() -> None:
    """Values as the response cache makes them (orjson output, ~400 bytes) and keys as it names them."""
    cap = 2 * 1024 * 1024
    cache = MemoryCache(max_bytes=cap)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):  # ~16 MiB of entries offered: most are evicted
            key, value = _entry(i)
            await cache.set(key, value, 3600)
            del value
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.size_bytes <= cap
    assert held <= cap * 1.25, f"{held / 1024 / 1024:.1f} MiB held for a {cap / 1024 / 1024:.0f} MiB cap"


async def test_least_recently_used_entries_go_first_and_expired_ones_are_misses() -> None:
    first_key, first = _entry(1)
    one_entry = len(first_key) + len(first) + 256
    cache = MemoryCache(max_bytes=one_entry * 2)
    second_key, second = _entry(2)
    third_key, third = _entry(3)
    await cache.set(first_key, first, 3600)
    await cache.set(second_key, second, 3600)
    assert await cache.get(first_key) == first  # now the most recently used
    await cache.set(third_key, third, 3600)
    assert await cache.get(second_key) is None
    assert await cache.get(first_key) == first and await cache.get(third_key) == third

    await cache.set("short", b"{}", 0.01)
    await asyncio.sleep(0.02)
    assert await cache.get("short") is None
