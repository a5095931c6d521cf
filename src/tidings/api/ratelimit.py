"""Per-token rate limits of the HTTP API: a token bucket per credential, 429 beyond it."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from aiohttp import web

from tidings.api.errors import ApiError
from tidings.protocol.ratelimit import TokenBucket

_MAX_TRACKED = 100_000  # buckets kept; the least recently used go first


class HttpRateLimiter:
    """``rate`` requests per second and ``burst`` at once, per token (or JWT subject)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, key: str) -> None:
        """Count one request of ``key``; raise 429 ``RATE_LIMITED`` with Retry-After if over."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > _MAX_TRACKED:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if not bucket.allow(now):
            retry = max(1, math.ceil(bucket.wait_time()))
            raise ApiError(429, "RATE_LIMITED",
                           f"over {self.rate:g} requests per second for this token; "
                           f"retry in {retry} s", {"Retry-After": str(retry)})


RATE_LIMITER: web.AppKey[HttpRateLimiter] = web.AppKey("rate_limiter", HttpRateLimiter)
