"""The server API's channel reads and writes that need no other node (issue 21):

- ``POST /api/v1/admin/publish`` ``{channel, data, type?}`` — publish as the server: the
  namespace's publish rule is not asked (``publish: none`` namespaces excepted, whose
  channels only the server's own features write), only its size limit and retention;
- ``GET /api/v1/admin/channels/{name}/history?since=&limit=`` — read the retained log
  whatever the namespace's subscribe rule.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from tidings.api import audit
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import int_param
from tidings.channels.errors import BrokerError
from tidings.channels.routes import BROKER, ChannelHistory, channel_param
from tidings.channels.wire import publication_json
from tidings.protocol.messages import ChannelName, PublicationType, PublishAckPayload
from tidings.store.channels import NewPublication

SERVER_DEVICE = "server-api"  # the publisher_device of the server API's publications


class AdminPublish(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/admin/publish``."""

    channel: ChannelName
    data: msgspec.Raw
    type: PublicationType = "message"


async def publish(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/publish``."""
    admin = await audit.admin_user(request)
    body = await read_json(request, AdminPublish)
    broker = request.app[BROKER]
    try:
        ns = broker.namespace(body.channel)
        if ns.publish == "none":
            raise ApiError(403, "PERMISSION_DENIED",
                           f"only the server's own features publish to {body.channel!r}")
        data = broker.encode_data(msgspec.json.decode(body.data))
    except BrokerError as exc:
        raise ApiError(exc.status, exc.code.value.removeprefix("WS_"), exc.message) from None
    result = await broker.submit(NewPublication(body.channel, body.type, data, admin.id,
                                                SERVER_DEVICE, ns.retention))
    await audit.record(request, admin, "channel.publish", f"channel:{body.channel}",
                       offset=result.offset, type=body.type)
    return json_response(PublishAckPayload(result.channel, result.offset, result.created_at,
                                           result.duplicate))


async def history(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/channels/{name}/history``: retained publications after
    ``since``, oldest first."""
    await audit.admin_user(request)
    channel = channel_param(request)
    since = int_param(request, "since", 0) or 0
    limit = int_param(request, "limit", 100, low=1, high=1000) or 100
    try:
        page = await request.app[BROKER].history(channel, since, limit)
    except BrokerError as exc:
        raise ApiError(exc.status, exc.code.value.removeprefix("WS_"), exc.message) from None
    return json_response({
        "channel": channel, "offset": page.top_offset, "first_offset": page.first_offset,
        "recovered": since <= page.top_offset and since + 1 >= page.first_offset,
        "publications": [publication_json(p) for p in page.publications],
        "has_more": len(page.publications) == limit})


_TAG = "server API"
_ADMIN = {401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",)}
ROUTES = (
    Operation("POST", "/api/v1/admin/publish", "publishAsServer",
              "Publish to a channel as the server (namespace publish rules not asked)", _TAG,
              auth="admin", body=AdminPublish, answer=PublishAckPayload,
              errors={403: ("ADMIN_REQUIRED", "PERMISSION_DENIED"), 401: ("UNAUTHORIZED",),
                      404: ("UNKNOWN_CHANNEL",), 413: ("PUBLICATION_TOO_LARGE",)}),
    Operation("GET", "/api/v1/admin/channels/{name}/history", "getChannelHistoryAsAdmin",
              "A channel's retained publications, whatever its subscribe rule", _TAG,
              auth="admin", answer=ChannelHistory,
              params=(Param("name", str, "the channel", "path"),
                      Param("since", int, "only offsets above this one (0: all retained)"),
                      Param("limit", int, "at most this many (1-1000, 100)")),
              errors={**_ADMIN, 400: ("BAD_PARAMETER",), 404: ("UNKNOWN_CHANNEL",)}),
)


def add_routes(app: web.Application) -> None:
    """Register the server API's publish and history routes."""
    describe(app, ROUTES)
    app.router.add_post("/api/v1/admin/publish", publish)
    app.router.add_get("/api/v1/admin/channels/{name}/history", history)
