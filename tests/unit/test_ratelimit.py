"""The token bucket, with the clock passed in."""

from __future__ import annotations

import pytest

from tidings.protocol.ratelimit import TokenBucket


def take(bucket: TokenBucket, now: float, n: int) -> int:
    """How many of ``n`` events at ``now`` are allowed."""
    return sum(bucket.allow(now) for _ in range(n))


def test_a_fresh_bucket_allows_a_full_burst_then_refuses():
    bucket = TokenBucket(rate=10, burst=5, now=100.0)
    assert take(bucket, 100.0, 8) == 5
    assert not bucket.allow(100.0)


def test_tokens_refill_at_the_rate_as_time_passes():
    # Binary-exact rates and times, so no float rounding decides an assertion.
    bucket = TokenBucket(rate=4, burst=5, now=0.0)
    assert take(bucket, 0.0, 5) == 5
    assert take(bucket, 0.25, 5) == 1  # 0.25 s at 4/s: one token
    assert take(bucket, 0.875, 5) == 2  # 2.5 tokens: two events, half a token left
    assert take(bucket, 1.0, 5) == 1  # 0.5 + 0.5


def test_refill_never_exceeds_the_burst():
    bucket = TokenBucket(rate=1000, burst=3, now=0.0)
    assert take(bucket, 0.0, 3) == 3
    assert take(bucket, 3600.0, 10) == 3


def test_refused_events_do_not_use_up_tokens():
    bucket = TokenBucket(rate=1, burst=1, now=0.0)
    assert bucket.allow(0.0)
    assert take(bucket, 0.5, 100) == 0
    assert bucket.allow(1.0)


def test_a_steady_stream_at_the_rate_is_always_allowed():
    rate = 64.0  # 1/64 s steps are exact in binary
    bucket = TokenBucket(rate=rate, burst=1, now=0.0)
    assert all(bucket.allow(i / rate) for i in range(1, 1000))


@pytest.mark.parametrize("rate,burst,seconds,expected", [
    (64.0, 100, 1.0, 164),  # a full burst plus one second of refill
    (0.5, 2, 4.0, 4),
])
def test_events_allowed_over_a_window_are_burst_plus_rate_times_time(rate, burst, seconds,
                                                                     expected):
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    steps = 1024  # a power of two: every step is exact in binary
    allowed = sum(take(bucket, seconds * i / steps, 10) for i in range(steps + 1))
    assert allowed == expected
