"""A token bucket, clock passed in, so it is tested without sleeping."""

from __future__ import annotations


class TokenBucket:
    """Allow ``rate`` events per second on average, ``burst`` at once."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def allow(self, now: float) -> bool:
        """Take one token if there is one; False means "over the limit"."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token, as of the last :meth:`allow` (0 if one is there)."""
        return max(0.0, (1.0 - self._tokens) / self.rate) if self.rate > 0 else float("inf")
