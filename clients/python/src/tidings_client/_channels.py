"""Channel subscriptions of the client: which channels, the last offset seen on each,
and the exactly-once, in-order filter. No sockets here: the client sends what
:meth:`Channels.subscribe_payload` gives and hands every channel frame to
:meth:`Channels.handle`.

After a reconnect the client subscribes again to every channel with ``since`` =
the highest offset it yielded, so the server replays exactly what was missed;
anything at or below that offset (an overlap) is dropped here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from tidings_client._errors import TidingsError
from tidings_client._events import (
    ChannelPresence,
    EventStream,
    Publication,
    PublishAck,
    Subscribed,
)
from tidings_client.protocol.codes import ErrorCode, MsgType
from tidings_client.protocol.messages import (
    ChannelPresencePushPayload,
    ErrorPayload,
    Payload,
    PublicationPayload,
    PublishAckPayload,
    PublishPayload,
    SubscribePayload,
    SubscribeResponsePayload,
    UnsubscribePayload,
)

if TYPE_CHECKING:
    from tidings_client._transport import Transport

T = TypeVar("T")

log = logging.getLogger("tidings_client")

UNSUBSCRIBED = "UNSUBSCRIBED"
"""Code of the error a pending :meth:`~tidings_client.Client.subscribe` raises when the
application unsubscribes before the server answered."""


def parse_publish_ack(payload: dict[str, Any]) -> PublishAck:
    """Decode a ``PublishAck`` (112) payload."""
    ack = msgspec.convert(payload, PublishAckPayload)
    return PublishAck(ack.channel, ack.offset, ack.created_at, ack.duplicate)


def publication(payload: PublicationPayload) -> Publication:
    """The event for a wire publication."""
    return Publication(payload.channel, payload.offset, payload.type, payload.data,
                       payload.info.user_id, payload.info.device_id, payload.created_at)


class Channels:
    """The client's subscriptions; feeds publications into the event stream once each."""

    def __init__(self, events: EventStream) -> None:
        """Start with no subscriptions."""
        self._events = events
        self._offsets: dict[str, int | None] = {}  # None: nothing known yet (no since)
        self._waiters: dict[str, asyncio.Future[Subscribed]] = {}
        self._requests: dict[int, str] = {}  # seq of a Subscribe in flight -> channel

    def channels(self) -> list[str]:
        """The channels subscribed to (or being subscribed to)."""
        return list(self._offsets)

    def offset(self, channel: str) -> int | None:
        """The highest offset yielded on ``channel`` (None if none yet)."""
        return self._offsets.get(channel)

    def want(self, channel: str, since: int | None) -> asyncio.Future[Subscribed]:
        """Start a subscription; the future resolves with the server's confirmation."""
        if channel in self._offsets:
            raise TidingsError(ErrorCode.ALREADY_SUBSCRIBED, f"already subscribed to {channel!r}")
        self._offsets[channel] = since
        future: asyncio.Future[Subscribed] = asyncio.get_running_loop().create_future()
        self._waiters[channel] = future
        return future

    def drop(self, channel: str) -> bool:
        """Stop yielding ``channel``; True if it was subscribed."""
        waiter = self._waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(TidingsError(UNSUBSCRIBED, f"unsubscribed from {channel!r} "
                                              "before the server confirmed the subscription"))
        if channel not in self._offsets:
            return False
        del self._offsets[channel]
        return True

    def subscribe_payload(self, seq: int, channel: str) -> SubscribePayload:
        """The ``Subscribe`` to send now for ``channel`` with ``seq`` (remembered)."""
        self._requests[seq] = channel
        return SubscribePayload(channel=channel, since=self._offsets.get(channel))

    def handle(self, type_: int, seq: int, body: dict[str, Any]) -> bool:
        """Consume a channel frame; False if the frame is not one."""
        if type_ == MsgType.PUBLICATION:
            self._admit(publication(msgspec.convert(body, PublicationPayload)))
        elif type_ == MsgType.SUBSCRIBE_RSP:
            self._subscribed(seq, msgspec.convert(body, SubscribeResponsePayload))
        elif type_ == MsgType.CHANNEL_PRESENCE_PUSH:
            p = msgspec.convert(body, ChannelPresencePushPayload)
            if p.channel in self._offsets:
                self._events.put(ChannelPresence(p.channel, p.event, p.user_id, p.device_id))
        elif type_ == MsgType.UNSUBSCRIBE_RSP:
            pass
        elif type_ == MsgType.ERROR and seq in self._requests:
            self._refused(self._requests.pop(seq), msgspec.convert(body, ErrorPayload))
        else:
            return False
        return True

    def fail_all(self, error: TidingsError) -> None:
        """The client stopped: fail every subscribe still waiting."""
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()

    def _admit(self, pub: Publication) -> None:
        if pub.channel not in self._offsets:
            return  # unsubscribed meanwhile
        last = self._offsets[pub.channel]
        if last is not None and pub.offset <= last:
            return  # a replay overlapping what was yielded: drop
        self._offsets[pub.channel] = pub.offset
        self._events.put(pub)

    def _subscribed(self, seq: int, rsp: SubscribeResponsePayload) -> None:
        channel = self._requests.pop(seq, rsp.channel)
        if channel not in self._offsets:
            return  # unsubscribed before the answer came
        last = self._offsets[channel]
        if last is None or (not rsp.recovered and last > rsp.offset):
            # Live only, or the channel is behind us (reset): continue from its top.
            self._offsets[channel] = rsp.offset
        event = Subscribed(channel, rsp.offset, rsp.recovered)
        self._events.put(event)
        waiter = self._waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
        for item in rsp.publications:
            self._admit(publication(item))

    def _refused(self, channel: str, error: ErrorPayload) -> None:
        self._offsets.pop(channel, None)
        waiter = self._waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(TidingsError(error.code, error.message))
        else:
            log.warning("resubscribing to %s refused: %s %s", channel, error.code,
                        error.message)


class ChannelMethods:
    """The channel half of :class:`~tidings_client.Client` (mixed into it)."""

    _channels: Channels
    _transport: Transport | None
    _seqs: itertools.count[int]

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...

        async def _send_raw(self, transport: Transport, type_: int, seq: int,
                            payload: Payload | None) -> bool: ...

        async def _request(self, type_: MsgType, payload: Payload | None,
                           parse: Callable[[dict[str, Any]], T], *, resend: bool) -> T: ...

    async def subscribe(self, channel: str, since: int | None = None) -> Subscribed:
        """Subscribe to ``channel``; its publications then come from :meth:`events`.

        ``since``: replay what was published after that offset first (omit for live
        only). The subscription survives reconnects: the client subscribes again
        with the last offset it yielded, and yields each publication once, in
        offset order. Raise :class:`TidingsError` if refused (``WS_PERMISSION_DENIED``,
        ``WS_UNKNOWN_CHANNEL``, …).
        """
        self._check_open()
        future = self._channels.want(channel, since)
        transport = self._transport
        if transport is not None:
            await self._send_subscribe(transport, channel)
        return await future

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (nothing more of it is yielded from now on)."""
        self._check_open()
        transport = self._transport
        if self._channels.drop(channel) and transport is not None:
            await self._send_raw(transport, MsgType.UNSUBSCRIBE, next(self._seqs),
                                 UnsubscribePayload(channel=channel))

    async def publish(self, channel: str, data: Any, *, type: str = "message",
                      idempotency_key: str | None = None) -> PublishAck:
        """Publish ``data`` (any JSON value) and wait until the server stored it.

        Survives reconnects without publishing twice: a key is generated when none
        is given, and a resend carries the same key.
        """
        key = idempotency_key or uuid.uuid4().hex
        payload = PublishPayload(channel=channel, data=data, type=type, idempotency_key=key)
        return await self._request(MsgType.PUBLISH, payload, parse_publish_ack, resend=True)

    def channel_offset(self, channel: str) -> int | None:
        """The highest offset yielded on ``channel``: persist it and pass it as
        ``since`` to a later client to resume exactly there."""
        return self._channels.offset(channel)

    async def _send_subscribe(self, transport: Transport, channel: str) -> None:
        seq = next(self._seqs)
        await self._send_raw(transport, MsgType.SUBSCRIBE, seq,
                             self._channels.subscribe_payload(seq, channel))
