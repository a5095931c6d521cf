"""Prometheus metrics of one node, in a registry of its own (so several nodes
can live in one process, as they do in tests).

What is counted per chat or per frame uses :class:`Tally` and :class:`FastHistogram`:
plain numbers turned into Prometheus samples only when scraped. prometheus_client's
``inc``/``observe`` take a lock on every call, which cost about an eighth of a busy
chat node's event loop (bench: durable chat). Only the event loop's thread updates them.
"""

from __future__ import annotations

import bisect
import math
import platform
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from tidings import __version__


class Tally:
    """A counter for the hot path, exported as a Prometheus counter ``<name>_total``."""

    __slots__ = ("_doc", "_name", "value")

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name = name.removesuffix("_total")
        self._doc = documentation
        self.value = 0.0
        registry.register(self)  # a collector: anything with collect()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (default 1)."""
        self.value += amount

    def collect(self) -> Iterator[Metric]:
        """The counter's sample, for the registry."""
        yield CounterMetricFamily(self._name, self._doc, value=self.value)


class LabelledTally:
    """A :class:`Tally` per value of one label."""

    __slots__ = ("_doc", "_label", "_name", "values")

    def __init__(self, name: str, documentation: str, label: str,
                 registry: CollectorRegistry) -> None:
        self._name = name.removesuffix("_total")
        self._doc = documentation
        self._label = label
        self.values: dict[str, float] = {}
        registry.register(self)

    def inc(self, label: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the count of ``label``."""
        self.values[label] = self.values.get(label, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        """One sample per label value, for the registry."""
        family = CounterMetricFamily(self._name, self._doc, labels=[self._label])
        for label, value in self.values.items():
            family.add_metric([label], value)
        yield family


class FastHistogram:
    """A histogram for the hot path: one bucket count and the sum updated per value."""

    __slots__ = ("_bounds", "_counts", "_doc", "_name", "_sum")

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        """Count one value (a bucket's bound is inclusive, as Prometheus' ``le``)."""
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        """Cumulative buckets, sum and count, for the registry."""
        buckets, total = [], 0
        for bound, count in zip((*self._bounds, math.inf), self._counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), float(total)))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(self._name, self._doc, buckets=buckets,
                                    sum_value=self._sum)


class Sampled:
    """Gauges read when scraped: one sample per label value, each from a callback."""

    def __init__(self, name: str, documentation: str, label: str,
                 registry: CollectorRegistry) -> None:
        self._name, self._doc, self._label = name, documentation, label
        self.sources: dict[str, Callable[[], float]] = {}
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """The current value of every source."""
        family = GaugeMetricFamily(self._name, self._doc, labels=[self._label])
        for value, read in self.sources.items():
            family.add_metric([value], float(read()))
        yield family


def pool_waiting(pool: Any) -> int:
    """Tasks waiting for a connection of an asyncpg pool (seed 000's ``waitingCount``).

    asyncpg has no public count: ``Pool.acquire`` waits in ``get()`` of the pool's
    queue of free connections, so its waiters are that queue's pending getters.
    tests/cli/test_metrics.py checks this against a real pool; 0 if the internals move.
    """
    getters = getattr(getattr(pool, "_queue", None), "_getters", None)
    return sum(1 for f in getters if not f.done()) if getters is not None else 0


class Metrics:
    """The counters a node updates; exposed at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._frame_labels: dict[int, str] = {}
        r = self.registry
        # process_* (memory, CPU, open fds), python_info and python_gc_*: the collectors
        # prometheus_client registers by default, in this node's registry too.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        build = Gauge("tidings_build_info", "Version of Tidings and of Python (always 1)",
                      ["version", "python"], registry=r)
        build.labels(__version__, platform.python_version()).set(1)
        self.transport_connections = Sampled(
            "tidings_transport_connections",
            "Open connections by transport: ws (/ws, authenticated or not), socketio "
            "(authenticated Socket.IO clients), editing (editing WebSockets)", "transport", r)
        self.db_waiting = Sampled(
            "tidings_db_waiting_clients",
            "Requests waiting for a database connection, by pool (PostgreSQL pools)", "pool",
            r)
        self.connections = Gauge("tidings_connections", "Authenticated WebSocket connections",
                                 registry=r)
        self.frames_in = LabelledTally("tidings_frames_in_total", "Frames received, by type code",
                                       "type", r)
        self.messages_in = Tally("tidings_messages_in_total", "Chat messages received", r)
        self.messages_out = Tally("tidings_messages_out_total",
                                  "Chat messages pushed live to connections", r)
        self.messages_stored = Tally("tidings_messages_stored_total",
                                     "Chat messages durably stored", r)
        self.errors = Counter("tidings_errors_total", "Errors sent to clients, by code",
                              ["code"], registry=r)
        self.disconnects = Counter("tidings_disconnects_total", "Connections closed, by close code",
                                   ["code"], registry=r)
        self.publications_stored = Counter("tidings_publications_stored_total",
                                           "Channel publications stored", registry=r)
        self.publications_refused = Counter(
            "tidings_publications_refused_total",
            "Channel publications refused because the node could not deliver them in time "
            "(WS_RATE_LIMITED, HTTP 429)", registry=r)
        self.publications_out = Counter("tidings_publications_out_total",
                                        "Channel publications pushed live to subscribers",
                                        registry=r)
        self.store_latency = Histogram(
            "tidings_store_commit_seconds", "Time to commit one batch of messages",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r)
        self.commit_batch = Histogram(
            "tidings_store_batch_size", "Messages per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)

        self.chat_ack = FastHistogram(
            "tidings_chat_ack_seconds", "From a chat's arrival to its ChatAck (stored)",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), r)
        # Recent (monotonic time, seconds) samples: the dashboard's exact p50/p99 over the
        # last minute, which histogram buckets can only approximate.
        self.recent_acks: deque[tuple[float, float]] = deque(maxlen=4096)
        self.bus_published = Counter("tidings_bus_published_total",
                                     "Events this node published on the bus", registry=r)
        self.bus_received = Counter("tidings_bus_received_total",
                                    "Events received from the bus, by publishing node (local or "
                                    "remote)", ["origin"], registry=r)
        self.bus_latency = Histogram(
            "tidings_bus_latency_seconds", "Publish-to-receive time of bus events",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r)
        self.bus_reconnects = Counter("tidings_bus_reconnects_total",
                                      "Times the bus connection was lost and made again",
                                      registry=r)
        self.bus_dropped = Counter("tidings_bus_dropped_total",
                                   "Events not published (bus unreachable, queue full) or "
                                   "not decodable", registry=r)
        self.gap_fills = Counter("tidings_gap_fills_total",
                                 "Live deliveries read from the store because bus events "
                                 "arrived out of order or were missed", registry=r)
        self.cluster_nodes = Gauge("tidings_cluster_nodes", "Live nodes seen in the cluster",
                                   registry=r)

    def chat_acked(self, seconds: float) -> None:
        """Record one chat's time from arrival to ChatAck."""
        self.chat_ack.observe(seconds)
        self.recent_acks.append((time.monotonic(), seconds))

    def frame_in(self, type_: int) -> None:
        """Count one received frame (label strings cached: this is on the hot path)."""
        label = self._frame_labels.get(type_)
        if label is None:
            label = self._frame_labels[type_] = str(type_)
        self.frames_in.inc(label)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """Serve ``GET /metrics`` alone on ``host:port`` (the internal metrics port)."""

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain",
                            charset="utf-8", headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
