"""HTTP API of the broker (seed 003 Phase 4): publish, batch publish, history,
presence and statistics."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Annotated, Any

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import ErrorDetail, Operation, Param, describe
from tidings.api.routes import SERVICE, authenticated, int_param
from tidings.auth import Identity
from tidings.channels.access import is_admin
from tidings.channels.broker import RETRY_AFTER_SECONDS, Broker, BrokerError
from tidings.channels.hooked import http_client, prepare_publication
from tidings.channels.wire import publication_json
from tidings.protocol.messages import (
    ChannelName,
    ClientInfo,
    IdempotencyKey,
    PublicationPayload,
    PublicationType,
    PublishAckPayload,
)
from tidings.store.channels import NewPublication, PublishResult

MAX_BATCH = 1000
BROKER: web.AppKey[Broker] = web.AppKey("broker", Broker)

UserId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
UserIds = Annotated[list[UserId], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/publish`` and an item of a batch: ``channel`` or
    ``user_ids`` (each user's ``user:<id>`` channel), never both."""

    data: Any
    channel: ChannelName | None = None
    user_ids: UserIds | None = None
    type: PublicationType = "message"
    idempotency_key: IdempotencyKey | None = None


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/publish/batch``."""

    items: Annotated[list[PublishRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class PublishResults(msgspec.Struct):
    """One answer per user of ``user_ids``, in order."""

    results: list[PublishAckPayload]


class BatchItem(msgspec.Struct, omit_defaults=True):
    """A batch result: a publish answer (``channel``, ``offset``, ``created_at``,
    ``duplicate``) or, for a refused item, its ``index`` and ``error``."""

    channel: str | None = None
    offset: int | None = None
    created_at: int | None = None
    duplicate: bool | None = None
    index: int | None = None
    error: ErrorDetail | None = None


class BatchResults(msgspec.Struct):
    """One result per published channel, in item order."""

    results: list[BatchItem]


class ChannelHistory(msgspec.Struct):
    """Retained publications after ``since``, oldest first."""

    channel: str
    offset: int
    first_offset: int
    recovered: bool
    publications: list[PublicationPayload]
    has_more: bool


class ChannelPresence(msgspec.Struct):
    """This node's subscribers of a channel."""

    channel: str
    subscribers: list[ClientInfo]


class PublicationCounts(msgspec.Struct):
    """Publications ever made: in total, by type, by UTC day (``YYYY-MM-DD``)."""

    total: int
    by_type: dict[str, int]
    by_day: dict[str, int]


class ChannelCounts(msgspec.Struct):
    """One channel: publications ever, still retained, subscribers on this node."""

    channel: str
    published: int
    retained: int
    subscribers: int


class BrokerStats(msgspec.Struct):
    """Statistics of the broker."""

    publications: PublicationCounts
    connections: int
    subscriptions: int
    channels: list[ChannelCounts]


def _http_error(exc: BrokerError) -> ApiError:
    return ApiError(exc.status, exc.code.value.removeprefix("WS_"), exc.message)


def _channels(body: PublishRequest) -> list[str]:
    if (body.channel is None) == (body.user_ids is None):
        raise ApiError(422, "INVALID_BODY", "give either channel or user_ids")
    return [body.channel] if body.channel is not None else [f"user:{u}" for u in body.user_ids
                                                             or ()]


async def _admit(broker: Broker, channels: list[str]) -> None:
    """Wait until the node can deliver to ``channels``, or answer 429 with Retry-After
    (overload: see channels/broker.py)."""
    for channel in dict.fromkeys(channels):
        if not await broker.admit(channel):
            exc = broker.refusal()
            raise ApiError(429, "RATE_LIMITED", exc.message,
                           {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _result(r: PublishResult) -> PublishAckPayload:
    return PublishAckPayload(r.channel, r.offset, r.created_at, r.duplicate)


async def _prepare(request: web.Request, broker: Broker, body: PublishRequest, channel: str,
                   me: Identity) -> NewPublication:
    try:
        if not broker.service.hooks.enabled("publish"):
            return broker.prepare(channel, body.type, body.data, body.idempotency_key,
                                  me.user_id, "http", me.scopes)
        who = http_client(request.remote or "", broker.service.hooks.pick_headers(
            request.headers), me.user_id)
        return await prepare_publication(broker, who, channel, body.type, body.data,
                                         body.idempotency_key, me.user_id, "http", me.scopes)
    except BrokerError as exc:
        raise _http_error(exc) from None


async def publish(request: web.Request) -> web.Response:
    """``POST /api/v1/publish``: store, then deliver; answers once stored."""
    me = await authenticated(request)
    body = await read_json(request, PublishRequest)
    broker = request.app[BROKER]
    channels = _channels(body)
    items = [await _prepare(request, broker, body, c, me)  # all checked before any is sent
             for c in channels]
    await _admit(broker, channels)
    results = await asyncio.gather(*(broker.submit(i) for i in items))
    if body.channel is not None:
        return json_response(_result(results[0]))
    return json_response(PublishResults([_result(r) for r in results]))


async def publish_batch(request: web.Request) -> web.Response:
    """``POST /api/v1/publish/batch``: up to 1000 items, each stored or refused on its own;
    results in item order."""
    me = await authenticated(request)
    body = await read_json(request, BatchRequest)
    broker = request.app[BROKER]
    await _admit(broker, [item.channel if item.channel is not None else "user:"
                          for item in body.items])
    answers: list[BatchItem | asyncio.Future[PublishResult]] = []
    for n, item in enumerate(body.items):
        try:
            for channel in _channels(item):
                answers.append(broker.submit(await _prepare(request, broker, item, channel,
                                                            me)))
        except ApiError as exc:
            answers.append(BatchItem(index=n, error=ErrorDetail(exc.code, exc.message)))
    out: list[BatchItem] = []
    for answer in answers:
        if isinstance(answer, asyncio.Future):
            r = await answer
            answer = BatchItem(r.channel, r.offset, r.created_at, r.duplicate)
        out.append(answer)
    return json_response(BatchResults(out))


def channel_param(request: web.Request) -> str:
    """The ``{name}`` of the path, a valid channel name, else 400 ``BAD_PARAMETER``."""
    name = request.match_info["name"]
    try:
        return msgspec.convert(name, ChannelName)
    except msgspec.ValidationError:
        raise ApiError(400, "BAD_PARAMETER", f"invalid channel name {name!r}") from None


async def history(request: web.Request) -> web.Response:
    """``GET /api/v1/channels/{name}/history?since=&limit=``: retained publications after
    ``since`` (default 0: all retained), oldest first."""
    me = await authenticated(request)
    channel = channel_param(request)
    since = int_param(request, "since", 0) or 0
    limit = int_param(request, "limit", 100, low=1, high=1000) or 100
    broker = request.app[BROKER]
    try:
        broker.authorize("subscribe", channel, me.user_id, me.scopes)
        page = await broker.history(channel, since, limit)
    except BrokerError as exc:
        raise _http_error(exc) from None
    return json_response({
        "channel": channel, "offset": page.top_offset, "first_offset": page.first_offset,
        "recovered": since <= page.top_offset and since + 1 >= page.first_offset,
        "publications": [publication_json(p) for p in page.publications],
        "has_more": len(page.publications) == limit})


async def presence(request: web.Request) -> web.Response:
    """``GET /api/v1/channels/{name}/presence``: who is subscribed (namespaces with
    ``presence`` only)."""
    me = await authenticated(request)
    channel = channel_param(request)
    broker = request.app[BROKER]
    try:
        ns = broker.authorize("subscribe", channel, me.user_id, me.scopes)
    except BrokerError as exc:
        raise _http_error(exc) from None
    if not ns.presence:
        raise ApiError(404, "PRESENCE_DISABLED",
                       f"the namespace of {channel!r} does not keep presence")
    subscribers = broker.presence(channel)
    return json_response(ChannelPresence(channel, [ClientInfo(u, d) for u, d in subscribers]))


async def stats(request: web.Request) -> web.Response:
    """``GET /api/v1/stats`` (admin scope): publications by type and by day, connections,
    per-channel counts."""
    me = await authenticated(request)
    if not is_admin(me.scopes):
        raise ApiError(403, "PERMISSION_DENIED", "statistics need a token with the admin scope")
    broker = request.app[BROKER]
    data = await broker.store.broker_stats()
    by_type: dict[str, int] = defaultdict(int)
    by_day: dict[str, int] = defaultdict(int)
    for d in data.daily:
        by_type[d.type] += d.count
        by_day[d.day] += d.count
    subscribers = broker.router.channels()
    hub = request.app[SERVICE].hub
    return json_response(BrokerStats(
        PublicationCounts(sum(by_type.values()), dict(by_type), dict(by_day)),
        sum(1 for _ in hub.all_connections()), sum(subscribers.values()),
        [ChannelCounts(c.channel, c.published, c.retained, subscribers.get(c.channel, 0))
         for c in data.channels]))


_TAG = "channels"
_OVERLOAD = ("Past the rate this node can deliver, the request waits up to 2 s for it to "
             "catch up, then is refused with 429 `RATE_LIMITED` and `Retry-After` "
             "(nothing of it stored).")
_REFUSED = {403: ("PERMISSION_DENIED",), 404: ("UNKNOWN_CHANNEL",)}
_PAGE = (Param("since", int, "publications after this offset (default 0: all retained)"),
         Param("limit", int, "1-1000, default 100"))
ROUTES = (
    Operation("POST", "/api/v1/publish", "publish", "Publish to a channel or to users", _TAG,
              body=PublishRequest, answer=(PublishAckPayload, PublishResults),
              errors={**_REFUSED, 413: ("PUBLICATION_TOO_LARGE",)},
              description="With `channel` the answer is a `PublishAckPayload`; with "
                          "`user_ids`, `PublishResults`. " + _OVERLOAD),
    Operation("POST", "/api/v1/publish/batch", "publishBatch", "Publish up to 1000 items",
              _TAG, body=BatchRequest, answer=BatchResults, description=_OVERLOAD),
    Operation("GET", "/api/v1/channels/{name}/history", "getChannelHistory",
              "A channel's retained publications", _TAG, answer=ChannelHistory,
              params=(Param("name", ChannelName, "the channel", "path"), *_PAGE),
              errors=_REFUSED),
    Operation("GET", "/api/v1/channels/{name}/presence", "getChannelPresence",
              "Who is subscribed to a channel", _TAG, answer=ChannelPresence,
              params=(Param("name", ChannelName, "the channel", "path"),),
              errors={400: ("BAD_PARAMETER",), 403: ("PERMISSION_DENIED",),
                      404: ("UNKNOWN_CHANNEL", "PRESENCE_DISABLED")}),
    Operation("GET", "/api/v1/stats", "getStats", "Statistics of the broker", _TAG,
              auth="admin", answer=BrokerStats, errors={403: ("PERMISSION_DENIED",)}),
)


def add_channel_routes(app: web.Application, broker: Broker) -> None:
    """Register the broker's routes."""
    describe(app, ROUTES)
    app[BROKER] = broker
    app.router.add_post("/api/v1/publish", publish)
    app.router.add_post("/api/v1/publish/batch", publish_batch)
    app.router.add_get("/api/v1/channels/{name}/history", history)
    app.router.add_get("/api/v1/channels/{name}/presence", presence)
    app.router.add_get("/api/v1/stats", stats)
