"""How every part of Tidings that talks to Redis gets its client.

redis-py's default pool refuses a command ("Too many connections") once 100 are in
use, which a burst of logins reaches at once. A blocking pool instead makes the
101st command wait for a free connection, for up to ``POOL_WAIT`` seconds.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

POOL_SIZE = 64
"""Connections per client: plenty for pipelined commands of one node."""
POOL_WAIT = 10.0
"""Seconds a command may wait for a free connection before it fails."""


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` on a blocking pool; ``options`` go to each connection."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **options)
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
