"""Prometheus metrics of one node, in a registry of its own (so several nodes
can live in one process, as they do in tests)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters a node updates; exposed at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._frames_in: dict[int, Counter] = {}
        r = self.registry
        self.connections = Gauge("tidings_connections", "Authenticated WebSocket connections",
                                 registry=r)
        self.frames_in = Counter("tidings_frames_in_total", "Frames received, by type code",
                                 ["type"], registry=r)
        self.messages_in = Counter("tidings_messages_in_total", "Chat messages received",
                                   registry=r)
        self.messages_out = Counter("tidings_messages_out_total",
                                    "Chat messages pushed live to connections", registry=r)
        self.messages_stored = Counter("tidings_messages_stored_total",
                                       "Chat messages durably stored", registry=r)
        self.errors = Counter("tidings_errors_total", "Errors sent to clients, by code",
                              ["code"], registry=r)
        self.disconnects = Counter("tidings_disconnects_total", "Connections closed, by close code",
                                   ["code"], registry=r)
        self.publications_stored = Counter("tidings_publications_stored_total",
                                           "Channel publications stored", registry=r)
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

        self.chat_ack = Histogram(
            "tidings_chat_ack_seconds", "From a chat's arrival to its ChatAck (stored)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r)
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
        """Count one received frame (label children cached: this is on the hot path)."""
        child = self._frames_in.get(type_)
        if child is None:
            child = self._frames_in[type_] = self.frames_in.labels(str(type_))
        child.inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
