"""The server API's cluster-wide routes (issue 21), for backends and the console;
``admin_users`` or the ``admin`` scope, every action written to the audit log:

- ``GET /api/v1/admin/users/{id}/connections`` — a user's connections on every node and
  transport;
- ``POST /api/v1/admin/disconnect`` ``{user_id, connection?, code?, reason?}``;
- ``POST /api/v1/admin/unsubscribe`` ``{user_id, channel}``;
- ``GET /api/v1/admin/channels`` — channels with subscribers, counted over the cluster;
- ``GET /api/v1/admin/channels/{name}/presence`` — who is subscribed, on every node;
- ``DELETE /api/v1/admin/channels/{name}/history`` — empty a channel's history.

Answers gathered from the nodes carry ``missing_nodes``: live nodes that did not answer
within the query timeout (see control/cluster.py); empty when the answer is whole.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from tidings.api import audit
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE
from tidings.channels.routes import channel_param
from tidings.control.cluster import ClusterControl, Gathered
from tidings.protocol.codes import CloseCode
from tidings.protocol.messages import ChannelName

CONTROL: web.AppKey[ClusterControl] = web.AppKey("control", ClusterControl)

CloseCodeValue = Annotated[int, msgspec.Meta(ge=4000, le=4999)]
# A close frame's reason is at most 123 bytes of UTF-8; 100 characters of ASCII fit.
Reason = Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[\x20-\x7e]*\Z")]
ConnectionKey = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^/\s]+/[^/\s]+\Z")]


class DisconnectRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Close a user's connections, or one (``connection``: a ``key`` from its
    connections), on whichever node holds them."""

    user_id: Annotated[int, msgspec.Meta(ge=1)]
    connection: ConnectionKey | None = None
    code: CloseCodeValue = int(CloseCode.DISCONNECTED)
    reason: Reason = "disconnected by the server"


class UnsubscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Unsubscribe every ``/ws`` connection of a user from a channel."""

    user_id: Annotated[int, msgspec.Meta(ge=1)]
    channel: ChannelName


class ConnectionView(msgspec.Struct):
    """One connection: ``key`` (``node/id``) names it for a disconnect."""

    key: str
    node: str
    transport: str  # ws, socketio or editing
    id: str
    user_id: int
    device_id: str
    remote: str
    connected_at: int
    channels: list[str]


class UserConnections(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/users/{id}/connections``."""

    user_id: int
    connections: list[ConnectionView]
    missing_nodes: list[str]


class Disconnected(msgspec.Struct):
    """How many connections were closed, over the nodes that answered."""

    closed: int
    missing_nodes: list[str]


class Unsubscribed(msgspec.Struct):
    """How many subscriptions were removed, over the nodes that answered."""

    unsubscribed: int
    missing_nodes: list[str]


class ChannelCount(msgspec.Struct):
    """A channel and its subscriptions over the cluster."""

    channel: str
    subscribers: int


class ChannelList(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/channels``: busiest first."""

    channels: list[ChannelCount]
    missing_nodes: list[str]


class PresenceClient(msgspec.Struct):
    """One subscribed client, and the node holding it."""

    user_id: int
    device_id: str
    node: str


class ClusterPresence(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/channels/{name}/presence``."""

    channel: str
    clients: list[PresenceClient]
    missing_nodes: list[str]


class HistoryRemoved(msgspec.Struct):
    """Answer of ``DELETE /api/v1/admin/channels/{name}/history``."""

    channel: str
    removed: int


async def _ask(request: web.Request, kind: str, **args: object) -> Gathered:
    try:
        return await request.app[CONTROL].ask(kind, **args)
    except OSError as exc:
        raise ApiError(503, "REGISTRY_UNAVAILABLE", str(exc)) from None


def user_id_param(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or not 0 < len(raw) <= 18 or int(raw) == 0:
        raise ApiError(400, "BAD_PARAMETER", "the user id is a positive integer")
    return int(raw)


def connection_views(gathered: Gathered) -> list[ConnectionView]:
    """Every node's connections, by node then connection time."""
    out = []
    for node, answer in sorted(gathered.answers.items()):
        for c in answer.get("connections", ()):
            out.append(ConnectionView(f"{node}/{c['id']}", node, c["transport"], c["id"],
                                      c["user_id"], c["device_id"], c["remote"],
                                      c["connected_at"], list(c["channels"])))
    return sorted(out, key=lambda v: (v.node, v.connected_at, v.id))


async def user_connections(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/users/{id}/connections``."""
    await audit.admin_user(request)
    user_id = user_id_param(request)
    gathered = await _ask(request, "connections", user_id=user_id)
    return json_response(UserConnections(user_id, connection_views(gathered),
                                         gathered.missing))


async def disconnect(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/disconnect``."""
    admin = await audit.admin_user(request)
    body = await read_json(request, DisconnectRequest)
    node = conn_id = None
    if body.connection is not None:
        node, conn_id = body.connection.split("/", 1)
    gathered = await _ask(request, "disconnect", user_id=body.user_id, node=node,
                          conn_id=conn_id, code=body.code, reason=body.reason)
    if body.connection is not None:  # only the node that holds it counts
        closed = int(gathered.answers.get(node or "", {}).get("closed", 0))
    else:
        closed = sum(int(a.get("closed", 0)) for a in gathered.answers.values())
    await audit.record(request, admin, "user.disconnect", f"user:{body.user_id}",
                       connection=body.connection, code=body.code, reason=body.reason,
                       closed=closed)
    return json_response(Disconnected(closed, gathered.missing))


async def unsubscribe(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/unsubscribe``."""
    admin = await audit.admin_user(request)
    body = await read_json(request, UnsubscribeRequest)
    gathered = await _ask(request, "unsubscribe", user_id=body.user_id, channel=body.channel)
    done = sum(int(a.get("unsubscribed", 0)) for a in gathered.answers.values())
    await audit.record(request, admin, "user.unsubscribe", f"user:{body.user_id}",
                       channel=body.channel, unsubscribed=done)
    return json_response(Unsubscribed(done, gathered.missing))


async def channels(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/channels``."""
    await audit.admin_user(request)
    gathered = await _ask(request, "channels")
    counts: dict[str, int] = {}
    for answer in gathered.answers.values():
        for channel, n in answer.get("channels", {}).items():
            counts[channel] = counts.get(channel, 0) + int(n)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return json_response(ChannelList([ChannelCount(c, n) for c, n in ordered],
                                      gathered.missing))


async def presence(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/channels/{name}/presence``."""
    await audit.admin_user(request)
    channel = channel_param(request)
    gathered = await _ask(request, "presence", channel=channel)
    clients = sorted((PresenceClient(int(u), str(d), node)
                      for node, answer in gathered.answers.items()
                      for u, d in answer.get("clients", ())),
                     key=lambda c: (c.user_id, c.device_id, c.node))
    return json_response(ClusterPresence(channel, clients, gathered.missing))


async def remove_history(request: web.Request) -> web.Response:
    """``DELETE /api/v1/admin/channels/{name}/history``."""
    admin = await audit.admin_user(request)
    channel = channel_param(request)
    removed = await request.app[SERVICE].store.clear_channel(channel)
    await audit.record(request, admin, "channel.history.remove", f"channel:{channel}",
                       removed=removed)
    return json_response(HistoryRemoved(channel, removed))


_TAG = "server API"
_ADMIN = {401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",)}
_GATHERED = {**_ADMIN, 503: ("REGISTRY_UNAVAILABLE",)}
_USER = (Param("id", int, "the user's id", "path"),)
_CHANNEL = (Param("name", str, "the channel", "path"),)
ROUTES = (
    Operation("GET", "/api/v1/admin/users/{id}/connections", "getUserConnections",
              "A user's connections on every node and transport", _TAG, auth="admin",
              params=_USER, answer=UserConnections,
              errors={**_GATHERED, 400: ("BAD_PARAMETER",)}),
    Operation("POST", "/api/v1/admin/disconnect", "disconnectUser",
              "Close a user's connections (or one), on every node", _TAG, auth="admin",
              body=DisconnectRequest, answer=Disconnected, errors=_GATHERED,
              description="`/ws` connections close with `code` (4000-4999, default 4000) "
                          "and `reason`; editing sockets likewise; Socket.IO clients get a "
                          "`disconnect_reason` event `{code, reason}`, then are "
                          "disconnected."),
    Operation("POST", "/api/v1/admin/unsubscribe", "unsubscribeUser",
              "Unsubscribe a user from a channel, on every node", _TAG, auth="admin",
              body=UnsubscribeRequest, answer=Unsubscribed, errors=_GATHERED,
              description="Each `/ws` connection is told with an `UnsubscribeRsp` of seq 0."),
    Operation("GET", "/api/v1/admin/channels", "listActiveChannels",
              "Channels with subscribers, counted over the cluster", _TAG, auth="admin",
              answer=ChannelList, errors=_GATHERED),
    Operation("GET", "/api/v1/admin/channels/{name}/presence", "getClusterPresence",
              "Who is subscribed to a channel, on every node", _TAG, auth="admin",
              params=_CHANNEL, answer=ClusterPresence,
              errors={**_GATHERED, 400: ("BAD_PARAMETER",)}),
    Operation("DELETE", "/api/v1/admin/channels/{name}/history", "removeChannelHistory",
              "Remove a channel's retained publications (its offset stays)", _TAG,
              auth="admin", params=_CHANNEL, answer=HistoryRemoved,
              errors={**_ADMIN, 400: ("BAD_PARAMETER",)}),
)


def add_routes(app: web.Application, control: ClusterControl) -> None:
    """Register the server API's cluster-wide routes."""
    app[CONTROL] = control
    describe(app, ROUTES)
    app.router.add_get("/api/v1/admin/users/{id}/connections", user_connections)
    app.router.add_post("/api/v1/admin/disconnect", disconnect)
    app.router.add_post("/api/v1/admin/unsubscribe", unsubscribe)
    app.router.add_get("/api/v1/admin/channels", channels)
    app.router.add_get("/api/v1/admin/channels/{name}/presence", presence)
    app.router.add_delete("/api/v1/admin/channels/{name}/history", remove_history)
