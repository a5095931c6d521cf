"""Seed §6.6's monitoring panel: connections, throughput, latency p95/p99, error
rate, process CPU and memory, database pool, cache hit rate and business counters
per minute — as Prometheus series in the node's registry (``/metrics``) and as one
JSON document (``/api/metrics``) computed over a sliding one-minute window."""

from __future__ import annotations

import collections
import math
import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tidings.api.errors import ApiError
from tidings.gateway.caps import ConnectionCaps

WINDOW_SECONDS = 60.0
_MAX_SAMPLES = 200_000  # bounds memory under any request rate
BUSINESS = ("queries", "bookings", "status_updates")
# Long-lived connections would count as one very slow request each: the hub's /ws and
# Socket.IO (counted by their own servers) by path, any other WebSocket (the editing
# sessions' /api/v1/ws/editing/…) by its Upgrade header.
_UNTIMED_PREFIXES = ("/ws", "/socket.io")


def is_websocket_upgrade(request: web.Request) -> bool:
    """A WebSocket handshake (``Upgrade: websocket``), whatever its path."""
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


class _Window:
    """Samples ``(monotonic time, value)`` of the last ``WINDOW_SECONDS``."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=_MAX_SAMPLES)

    def add(self, value: float = 1.0) -> None:
        self._samples.append((time.monotonic(), value))

    def values(self) -> list[float]:
        cutoff = time.monotonic() - WINDOW_SECONDS
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()
        return [v for _, v in self._samples]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class DeskMonitor:
    """Counters updated by the HTTP middleware, the desk routes and the cache."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.http_requests = Counter("tidings_http_requests_total",
                                     "HTTP requests answered, by status class", ["status"],
                                     registry=r)
        self.http_latency = Histogram(
            "tidings_http_request_seconds", "Time to answer one HTTP request",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r)
        self.business = Counter("tidings_desks_operations_total",
                                "Desk operations: queries, bookings, status updates",
                                ["kind"], registry=r)
        self.cache = Counter("tidings_desks_cache_total", "Desk cache lookups, by result",
                             ["result"], registry=r)
        self.events = Counter("tidings_desks_events_total",
                              "Desk events emitted to rooms, by type", ["type"], registry=r)
        self.socketio_connections = Gauge("tidings_socketio_connections",
                                          "Authenticated Socket.IO connections", registry=r)
        self.db_pool_in_use = Gauge("tidings_desks_db_pool_in_use",
                                    "Desk database connections in use", registry=r)
        self.db_pool_size = Gauge("tidings_desks_db_pool_size",
                                  "Desk database connections open", registry=r)
        self.in_flight = 0
        self.caps: ConnectionCaps | None = None  # the node's connection caps (server.py)
        #: WebSockets open outside /ws and /socket.io (not HTTP requests in flight)
        self.other_websockets = 0
        self._latency = _Window()
        self._errors = _Window()
        self._business = {kind: _Window() for kind in BUSINESS}
        self._cpu_mark = (time.monotonic(), self._cpu_seconds())

    def count(self, kind: str) -> None:
        """One business operation: ``queries``, ``bookings`` or ``status_updates``."""
        self.business.labels(kind).inc()
        self._business[kind].add()

    @staticmethod
    def _cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def _cpu_percent(self) -> float:
        now, cpu = time.monotonic(), self._cpu_seconds()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        return round(100.0 * (cpu - cpu_then) / (now - then), 1) if now > then else 0.0

    @staticmethod
    def _rss_bytes() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):  # not Linux: peak RSS instead
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """An aiohttp middleware timing every plain HTTP request."""
        @web.middleware
        async def timed(request: web.Request, handler: Callable[[web.Request],
                        Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if request.path.startswith(_UNTIMED_PREFIXES):
                return await handler(request)
            if is_websocket_upgrade(request):
                self.other_websockets += 1
                try:
                    return await handler(request)
                finally:
                    self.other_websockets -= 1
            start = time.perf_counter()
            self.in_flight += 1
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except (ApiError, web.HTTPException) as exc:  # answered by an outer middleware
                status = exc.status
                raise
            finally:
                self.in_flight -= 1
                elapsed = time.perf_counter() - start
                self.http_latency.observe(elapsed)
                self.http_requests.labels(f"{status // 100}xx").inc()
                self._latency.add(elapsed)
                self._errors.add(1.0 if status >= 500 else 0.0)
        return timed

    def snapshot(self, *, websocket: int, socketio: int, pool: dict[str, int],
                 cache: dict[str, Any], status: dict[str, str]) -> dict[str, Any]:
        """The JSON of ``GET /api/metrics``."""
        latencies = self._latency.values()
        errors = self._errors.values()
        self.db_pool_in_use.set(pool["in_use"])
        self.db_pool_size.set(pool["size"])
        websocket += self.other_websockets
        return {
            "window_seconds": WINDOW_SECONDS,
            "connections": {"active": websocket + socketio + self.in_flight,
                            "websocket": websocket, "socketio": socketio,
                            "http_in_flight": self.in_flight},
            "performance": {
                "throughput_rps": round(len(latencies) / WINDOW_SECONDS, 3),
                "latency_ms": {
                    "avg": round(1000 * sum(latencies) / len(latencies), 3) if latencies else 0.0,
                    "p95": round(1000 * percentile(latencies, 0.95), 3),
                    "p99": round(1000 * percentile(latencies, 0.99), 3)},
                "error_rate": round(sum(errors) / len(errors), 4) if errors else 0.0,
                "requests": len(latencies)},
            "process": {"cpu_percent": self._cpu_percent(), "memory_rss_bytes": self._rss_bytes()},
            "database": {"pool_in_use": pool["in_use"], "pool_size": pool["size"],
                         "pool_max": pool["max"]},
            "cache": cache,
            "business_per_minute": {kind: len(self._business[kind].values())
                                    for kind in BUSINESS},
            "status": status,
            "connection_caps": self.caps.snapshot() if self.caps is not None else None,
        }
