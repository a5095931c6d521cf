"""Optional Redis cache-aside for the read-heavy desk lists (seed §7.2).

A response is filed under the current *generation*; every change bumps the
generation, so one INCR invalidates all of them on every node at once, and a
reader that loaded old rows just before the bump files them where nobody looks.
Entries also expire after ``ttl`` seconds. When Redis fails, reads go to the
database and the failure is counted: the cache is never needed for correctness.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from tidings.keys import DESKS_CACHE_GENERATION, desks_cache_entry

log = logging.getLogger(__name__)


class DeskCache:
    """Cache-aside over ``redis://`` (redis-py asyncio)."""

    def __init__(self, url: str, ttl: float) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl_ms = max(1, int(ttl * 1000))
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.healthy = True

    @staticmethod
    def digest(kind: str, params: dict[str, object]) -> str:
        """A short, fixed-length name for one endpoint and its validated parameters."""
        text = kind + "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    async def get_or_load(self, digest: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached body for ``digest``, or ``load()``'s, stored for next time."""
        try:
            generation = int(await self._redis.get(DESKS_CACHE_GENERATION) or 0)
            key = desks_cache_entry(generation, digest)
            cached = await self._redis.get(key)
        except Exception as exc:
            self._failed(exc)
            return await load()
        if cached is not None:
            self.hits += 1
            return cached if isinstance(cached, bytes) else str(cached).encode()
        self.misses += 1
        body = await load()
        try:
            await self._redis.set(key, body, px=self._ttl_ms)
            self.healthy = True
        except Exception as exc:
            self._failed(exc)
        return body

    async def invalidate(self) -> None:
        """Make every cached response stale."""
        try:
            await self._redis.incr(DESKS_CACHE_GENERATION)
            self.healthy = True
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.healthy:
            log.warning("desk cache unavailable, reading the database: %s", exc)
        self.healthy = False

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()
