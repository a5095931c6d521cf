"""Admin routes about the cluster: ``GET /api/v1/cluster/nodes``."""

from __future__ import annotations

from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.routes import SERVICE, authenticated
from tidings.channels.access import is_admin
from tidings.cluster.base import now_ms


async def nodes(request: web.Request) -> web.Response:
    """``GET /api/v1/cluster/nodes`` (admin): live nodes, their connections and last
    heartbeat, oldest first."""
    me = await authenticated(request)
    if not is_admin(me.scopes):
        raise ApiError(403, "PERMISSION_DENIED", "the cluster's nodes need a token with the "
                                                 "admin scope")
    service = request.app[SERVICE]
    try:
        live = await service.registry.nodes()
    except Exception as exc:
        raise ApiError(503, "REGISTRY_UNAVAILABLE", f"cluster registry: {exc}") from None
    now = now_ms()
    return json_response({
        "node_id": service.registry.node_id,
        "nodes": [{"node_id": n.node_id, "address": n.address, "pid": n.pid,
                   "started_at": n.started_at, "last_heartbeat": n.last_heartbeat,
                   "heartbeat_age_ms": max(0, now - n.last_heartbeat),
                   "connections": n.connections} for n in live]})


def add_cluster_routes(app: web.Application) -> None:
    """Register the cluster routes."""
    app.router.add_get("/api/v1/cluster/nodes", nodes)
