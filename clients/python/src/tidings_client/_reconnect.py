"""How long to wait between reconnection attempts (seed 001 §4.3)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff between reconnection attempts.

    The n-th attempt (from 0) waits ``initial_interval * backoff_factor ** n``
    seconds, capped at ``max_interval``: 1, 1.5, 2.25, … 30 by default.
    ``max_attempts`` None means unlimited; 0 disables reconnection.
    ``jitter`` (0 to 1, off by default) multiplies each wait by a random factor
    in ``[1 - jitter, 1 + jitter]``, the result still capped at ``max_interval``.
    """

    initial_interval: float = 1.0
    max_interval: float = 30.0
    max_attempts: int | None = None
    backoff_factor: float = 1.5
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_interval < 0 or self.max_interval < self.initial_interval:
            raise ValueError("need 0 <= initial_interval <= max_interval")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the wait before each attempt; stop after ``max_attempts``."""
        rng = rng or random.Random()
        base = self.initial_interval
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            delay = base
            if self.jitter:
                delay = min(delay * rng.uniform(1 - self.jitter, 1 + self.jitter),
                            self.max_interval)
            yield delay
            attempt += 1
            base = min(base * self.backoff_factor, self.max_interval)
