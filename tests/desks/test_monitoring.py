"""Seed §6.6's monitoring figures at /api/metrics (JSON) and /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.desks.conftest import DeskNode, of_type


async def test_metrics_json_has_the_panel_figures(
        desks: DeskNode, socketio_client: Callable[..., Any]) -> None:
    floor1 = await socketio_client(desks.url, desks.tokens[0], {"floor": 1})
    for _ in range(3):
        await desks.call("GET", "/api/workstations")
    await desks.call("POST", "/api/workstations/1/occupy")
    await desks.call("POST", "/api/workstations/1/occupy", who=1)  # 409
    await desks.call("PUT", "/api/workstations/2", json={"notes": "x"})
    # Events go out after the answers (on PostgreSQL through LISTEN): the last one seen,
    # every event counter is final.
    await floor1.next(of_type("workstation_update", id=2, notes="x"))
    assert desks.node.http is not None
    async with desks.node.http.get(desks.url + "/api/metrics") as r:  # no token needed
        assert r.status == 200
        metrics = await r.json()
    assert metrics["connections"]["socketio"] == 1
    assert metrics["connections"]["websocket"] == 0
    performance = metrics["performance"]
    assert performance["requests"] >= 6 and performance["throughput_rps"] > 0
    assert 0 < performance["latency_ms"]["p95"] <= performance["latency_ms"]["p99"]
    assert performance["error_rate"] == 0.0  # a 409 is the client's, not a server error
    # Only bookings made count: the refused occupy does not.
    assert metrics["business_per_minute"] == {"queries": 3, "bookings": 1, "status_updates": 1}
    assert metrics["database"]["pool_max"] >= 1
    assert metrics["process"]["memory_rss_bytes"] > 10_000_000
    assert metrics["cache"] == {"enabled": False}
    assert metrics["status"]["change_feed"] in ("bus", "listening")

    async with desks.node.http.get(desks.url + "/metrics") as r:
        text = await r.text()
    for line in ('tidings_desks_operations_total{kind="bookings"} 1.0',
                 'tidings_http_requests_total{status="4xx"} 1.0',
                 "tidings_socketio_connections 1.0",
                 'tidings_desks_events_total{type="workstation_update"}',
                 "tidings_http_request_seconds_bucket"):
        assert line in text, line
