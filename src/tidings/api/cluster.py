"""Admin routes about the cluster: ``GET /api/v1/cluster/nodes``."""

from __future__ import annotations

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.openapi import Operation, describe
from tidings.api.routes import SERVICE, authenticated
from tidings.channels.access import is_admin
from tidings.cluster.base import now_ms


class NodeView(msgspec.Struct):
    """A live node; times in ms, ``connections`` as of its last heartbeat."""

    node_id: str
    address: str
    pid: int
    started_at: int
    last_heartbeat: int
    heartbeat_age_ms: int
    connections: int


class ClusterNodes(msgspec.Struct):
    """The node that answered, and every live node, oldest first."""

    node_id: str
    nodes: list[NodeView]


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
    return json_response(ClusterNodes(service.registry.node_id, [
        NodeView(n.node_id, n.address, n.pid, n.started_at, n.last_heartbeat,
                 max(0, now - n.last_heartbeat), n.connections) for n in live]))


ROUTES = (
    Operation("GET", "/api/v1/cluster/nodes", "getClusterNodes", "The cluster's live nodes",
              "cluster", auth="admin", answer=ClusterNodes,
              errors={403: ("PERMISSION_DENIED",), 503: ("REGISTRY_UNAVAILABLE",)}),
)


def add_cluster_routes(app: web.Application) -> None:
    """Register the cluster routes."""
    describe(app, ROUTES)
    app.router.add_get("/api/v1/cluster/nodes", nodes)
