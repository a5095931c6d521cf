"""What the operator dashboard charts: per-second traffic of one node and recent
chat-to-ack latencies, taken from the node's own Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque

import msgspec

from tidings.metrics import Metrics

SAMPLE_SECONDS = 1.0
KEPT_SAMPLES = 300  # five minutes of one-second samples
LATENCY_WINDOW = 60.0  # seconds of ack latencies behind p50/p99


class Sample(msgspec.Struct, frozen=True):
    """One second of traffic: rates over the second that ended at ``t`` (ms)."""

    t: int
    messages_in: float
    messages_out: float
    frames_in: float
    connections: int


class Latency(msgspec.Struct, frozen=True):
    """Quantiles of chat-to-ack time over the last ``window_seconds``, in ms."""

    p50: float | None
    p99: float | None
    samples: int
    window_seconds: float


def quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of a sorted, non-empty list."""
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


class TrafficMonitor:
    """Samples a node's counters once a second into a bounded history."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.samples: deque[Sample] = deque(maxlen=KEPT_SAMPLES)
        self._task: asyncio.Task[None] | None = None
        self._last = self._totals()
        self._last_time = time.monotonic()

    def _value(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0

    def _totals(self) -> tuple[float, float, float]:
        frames = sum(s.value for m in self.metrics.frames_in.collect() for s in m.samples
                     if s.name.endswith("_total"))
        return (self._value("tidings_messages_in_total"),
                self._value("tidings_messages_out_total"), frames)

    def sample(self) -> Sample:
        """Record the rates since the previous sample (called each second)."""
        now, totals = time.monotonic(), self._totals()
        elapsed = max(now - self._last_time, 1e-6)
        rates = [round((b - a) / elapsed, 2) for a, b in zip(self._last, totals, strict=True)]
        self._last, self._last_time = totals, now
        sample = Sample(int(time.time() * 1000), rates[0], rates[1], rates[2],
                        int(self._value("tidings_connections")))
        self.samples.append(sample)
        return sample

    def latency(self) -> Latency:
        """p50/p99 of the chats acknowledged in the last minute."""
        since = time.monotonic() - LATENCY_WINDOW
        recent = sorted(s for t, s in self.metrics.recent_acks if t >= since)
        if not recent:
            return Latency(None, None, 0, LATENCY_WINDOW)
        return Latency(round(quantile(recent, 0.50) * 1000, 3),
                       round(quantile(recent, 0.99) * 1000, 3), len(recent), LATENCY_WINDOW)

    def totals(self) -> dict[str, float]:
        """Counters since the node started."""
        messages_in, messages_out, frames = self._totals()
        return {"messages_in": messages_in, "messages_out": messages_out, "frames_in": frames,
                "messages_stored": self._value("tidings_messages_stored_total")}

    def by_label(self, name: str) -> dict[str, float]:
        """A labelled counter (``errors``, ``disconnects``) as {label value: count}."""
        counter = getattr(self.metrics, name)
        found: dict[str, float] = {}
        for metric in counter.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    found[next(iter(s.labels.values()))] = s.value
        return found

    def start(self) -> None:
        """Begin sampling once a second."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.sample()

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
