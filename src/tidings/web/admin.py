"""The operator's view of a node: ``GET /api/v1/admin/overview``, for the dashboard.

Users named in the ``admin_users`` setting and tokens with the ``admin`` scope may
read it. Every figure comes from the running node: its metrics, its hub, its channel
router, a live ping of its store, its bus's health and the cluster registry.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

from tidings import __version__
from tidings.api.errors import ApiError, json_response
from tidings.api.openapi import Operation, describe
from tidings.api.routes import SERVICE, STARTED, authenticated
from tidings.channels.access import is_admin
from tidings.channels.routes import BROKER
from tidings.cluster.base import now_ms
from tidings.config import Settings
from tidings.web.traffic import Latency, Sample, TrafficMonitor

TRAFFIC: web.AppKey[TrafficMonitor] = web.AppKey("traffic", TrafficMonitor)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
NODE_URL: web.AppKey[list[str]] = web.AppKey("node_url", list)  # set once listening
STORE_PING_TIMEOUT = 2.0


async def require_admin(request: web.Request) -> str:
    """The caller's username if they are an admin; else 401 or 403."""
    identity = await authenticated(request)
    user = await request.app[SERVICE].store.get_user(identity.user_id)
    if user is None:
        raise ApiError(401, "UNAUTHORIZED", "unknown user")
    if user.username not in request.app[SETTINGS].admin_users and not is_admin(identity.scopes):
        raise ApiError(403, "ADMIN_REQUIRED",
                       "this user is not an admin (see the admin_users setting)")
    return user.username


def _scheme(url: str) -> str:
    return url.split(":", 1)[0]


async def _store_health(request: web.Request) -> dict[str, object]:
    settings = request.app[SETTINGS]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(STORE_PING_TIMEOUT):
            await request.app[SERVICE].store.ping()
    except Exception as exc:
        return {"backend": _scheme(settings.database_url), "status": "error",
                "detail": str(exc) or type(exc).__name__}
    return {"backend": _scheme(settings.database_url), "status": "ok",
            "ping_ms": round((time.perf_counter() - started) * 1000, 3)}


MAX_CHANNELS = 50  # rows on the dashboard: the busiest channels


class ChannelRow(msgspec.Struct, frozen=True):
    """One channel on the dashboard."""

    channel: str
    subscribers: int  # on this node
    publications: int  # ever made
    retained: int  # still kept for replay


async def _channels(request: web.Request) -> list[ChannelRow]:
    """The busiest channels: subscribers here (router), publications (store)."""
    broker = request.app[BROKER]
    stats = await broker.store.broker_stats()
    subscribers = broker.router.channels()
    rows = [ChannelRow(c.channel, subscribers.pop(c.channel, 0), c.published, c.retained)
            for c in stats.channels]
    rows += [ChannelRow(name, count, 0, 0) for name, count in subscribers.items()]
    rows.sort(key=lambda r: (-r.subscribers, -r.publications, r.channel))
    return rows[:MAX_CHANNELS]


class NodeInfo(msgspec.Struct):
    """The node that answered."""

    url: str
    version: str
    uptime_seconds: float


class Overview(msgspec.Struct):
    """The dashboard's figures (docs/web.md); ``nodes`` items carry ``url``, ``self``,
    ``connections``, ``uptime_seconds``, ``heartbeat_age_ms`` (or ``error``)."""

    admin: str
    node: NodeInfo
    connections: int
    users_online: int
    totals: dict[str, float]
    series: list[Sample]
    ack_latency_ms: Latency
    errors: dict[str, float]
    disconnects: dict[str, float]
    store: dict[str, Any]
    bus: dict[str, str]
    nodes: list[dict[str, Any]]
    channels: list[ChannelRow]


async def overview(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/overview``: connections, traffic, latency, errors, health."""
    admin = await require_admin(request)
    service, traffic = request.app[SERVICE], request.app[TRAFFIC]
    settings = request.app[SETTINGS]
    conns = list(service.hub.all_connections())
    users = {c.user_id for c in conns}
    uptime = round(time.monotonic() - request.app[STARTED], 3)
    node = request.app[NODE_URL][0] if request.app[NODE_URL] else ""
    body = Overview(
        admin=admin, node=NodeInfo(node, __version__, uptime), connections=len(conns),
        users_online=len(users), totals=traffic.totals(), series=list(traffic.samples),
        ack_latency_ms=traffic.latency(), errors=traffic.by_label("errors"),
        disconnects=traffic.by_label("disconnects"), store=await _store_health(request),
        bus={"backend": _scheme(settings.bus_url), "status": service.bus.health()},
        nodes=await _nodes(request, node, len(conns), uptime),
        channels=await _channels(request))
    return json_response(body)


async def _nodes(request: web.Request, url: str, connections: int,
                 uptime: float) -> list[dict[str, object]]:
    """Every live node of the cluster, from its registry (this node alone if that fails)."""
    registry = request.app[SERVICE].registry
    me = {"url": url, "self": True, "connections": connections, "uptime_seconds": uptime,
          "heartbeat_age_ms": 0}
    try:
        live = await asyncio.wait_for(registry.nodes(), STORE_PING_TIMEOUT)
    except Exception as exc:  # the registry is what is down: say so, show this node
        return [{**me, "error": f"cluster registry: {exc or type(exc).__name__}"}]
    now = now_ms()
    return [me if n.node_id == registry.node_id else
            {"url": f"http://{n.address}", "self": False, "connections": n.connections,
             "uptime_seconds": round(max(0, now - n.started_at) / 1000, 3),
             "heartbeat_age_ms": max(0, now - n.last_heartbeat)} for n in live]


ROUTES = (
    Operation("GET", "/api/v1/admin/overview", "getAdminOverview",
              "The operator dashboard's figures", "admin", auth="admin", answer=Overview,
              errors={401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",)},
              description="For users named in `admin_users` and tokens with the `admin` "
                          "scope."),
)


def add_routes(app: web.Application, settings: Settings, traffic: TrafficMonitor) -> None:
    """Register the admin API."""
    app[SETTINGS] = settings
    app[TRAFFIC] = traffic
    app[NODE_URL] = []
    describe(app, ROUTES)
    app.router.add_get("/api/v1/admin/overview", overview)
