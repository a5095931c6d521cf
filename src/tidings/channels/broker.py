"""The broker: publish into channels, subscribe with replay, history and presence.

A publication's path: ``Publish`` (WebSocket) or ``POST /api/v1/publish`` →
:meth:`Broker.publish` checks scopes, namespace rules and size → group commit
appends it to the channel's log in the store (offset assigned, idempotency key
resolved, history trimmed) → a :class:`PublicationEvent` on the bus → every
node's :class:`ChannelRouter` pushes it to that node's subscribers.

Overload: a publication is admitted only while this node can deliver it
(:meth:`Broker.admit`). Past that rate the publisher waits — on a WebSocket its
socket is not read meanwhile, so TCP pushes back on the client — and after
``ADMISSION_WAIT`` seconds it is refused (``WS_RATE_LIMITED``; HTTP 429 with
``Retry-After``). Without this, a flood queued more publications than one turn of
the loop could hand out, every subscriber's outbox overflowed at once, all of them
refilled from the store and fell behind the channel's history together (4413 for
everyone, bench: fan-out). Now only a subscriber that is slow on its own falls
behind and is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import msgspec

from tidings.bus.base import ChannelPresenceEvent, Event, PublicationEvent
from tidings.channels.access import Action, denial
from tidings.channels.errors import BrokerError
from tidings.channels.hooked import check_subscribe, prepare_publication
from tidings.channels.namespaces import Namespace, namespace_name
from tidings.channels.router import ChannelRouter, Subscription
from tidings.channels.wire import PublicationFrames, publication_payload, wire_size
from tidings.gateway.connection import Connection
from tidings.hub.chat import ChatService
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import (
    ChannelPresencePushPayload,
    PublishAckPayload,
    PublishPayload,
    SubscribePayload,
    SubscribeResponsePayload,
    UnsubscribePayload,
    UnsubscribeResponsePayload,
)
from tidings.store.base import now_ms
from tidings.store.channels import ChannelPage, NewPublication, Publication, PublishResult
from tidings.store.groupcommit import GroupCommit

log = logging.getLogger(__name__)
__all__ = ["Broker", "BrokerError"]

_ALL = 2**63 - 1

DELIVERY_BACKLOG = 100_000
"""Deliveries (publications waiting for the next commit, times their channel's
subscribers here) a node takes on before publishers wait. While one batch is stored
and handed out the next fills up to this, so at saturation batches stay large (one
write per subscriber carries many publications: that is what the top rate rests on),
and an admitted publication waits for at most two batches (~0.2-0.4 s of fan-out on
one core) even at overload."""

ADMISSION_WAIT = 2.0
"""Seconds a publisher waits for the node to catch up before its publication is
refused (``WS_RATE_LIMITED``, HTTP 429)."""

RETRY_AFTER_SECONDS = 1


class Broker:
    """Channels of one node. Shares the chat service's store, bus, settings and replies."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.settings = service.settings
        self.store = service.store
        self.bus = service.bus
        self.router = ChannelRouter(self._refill)
        self.log: GroupCommit[NewPublication, PublishResult] = GroupCommit(
            self.store.append_publications, self._committed, name="publish-commit")
        self._tasks: set[asyncio.Task[None]] = set()
        # One commit's publications are handed out this many at a time, the outboxes
        # written in between: each connection's share of one turn stays within 3/4 of
        # its outbox, so a large group commit does not look like a slow subscriber.
        self._chunk = max(1, self.settings.send_queue_size * 3 // 4)

    def start(self) -> None:
        """Start the commit task."""
        self.log.start()

    async def close(self) -> None:
        """Commit what is pending; finish refills."""
        await self.log.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # rules

    def namespace(self, channel: str) -> Namespace:
        """The channel's namespace, or ``WS_UNKNOWN_CHANNEL``."""
        ns = self.settings.namespaces.get(namespace_name(channel))
        if ns is None:
            raise BrokerError(ErrorCode.UNKNOWN_CHANNEL,
                              f"no namespace {namespace_name(channel)!r} for channel {channel!r}",
                              404)
        return ns

    def authorize(self, action: Action, channel: str, user_id: int,
                  scopes: tuple[str, ...] | None) -> Namespace:
        """The channel's namespace if ``action`` is allowed, else ``WS_PERMISSION_DENIED``."""
        ns = self.namespace(channel)
        reason = denial(action, channel, ns, user_id, scopes)
        if reason is not None:
            raise BrokerError(ErrorCode.PERMISSION_DENIED, reason, 403)
        return ns

    # publishing

    def encode_data(self, data: Any) -> str:
        """The JSON text stored for ``data``, or ``WS_PUBLICATION_TOO_LARGE``."""
        text = msgspec.json.encode(data)
        limit = self.settings.max_publication_bytes
        if len(text) > limit:
            raise BrokerError(ErrorCode.PUBLICATION_TOO_LARGE,
                              f"data is {len(text)} bytes as JSON; the limit is {limit}", 413)
        return text.decode()

    def prepare(self, channel: str, type_: str, data: Any, key: str | None, user_id: int,
                device: str, scopes: tuple[str, ...] | None) -> NewPublication:
        """Check and build one publication (raise :class:`BrokerError` if refused)."""
        ns = self.authorize("publish", channel, user_id, scopes)
        return NewPublication(channel, type_, self.encode_data(data), user_id, device,
                              ns.retention, key)

    def submit(self, item: NewPublication) -> asyncio.Future[PublishResult]:
        """Queue a checked publication; the future resolves once it is stored."""
        return self.log.append(item)

    def saturated(self, channel: str) -> bool:
        """True while this node cannot deliver another publication to ``channel`` in
        good time: too many deliveries queued, or many of its subscribers lagging."""
        queued = self.log.queued
        if queued and queued * max(1, self.router.count_subscribers(channel)) \
                >= DELIVERY_BACKLOG:
            return True
        return self.router.congested(channel)

    async def admit(self, channel: str) -> bool:
        """Wait (up to ``ADMISSION_WAIT``) until a publication to ``channel`` can be
        delivered in good time; False if it cannot: refuse it (see the module doc)."""
        if not self.saturated(channel):
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ADMISSION_WAIT
        while self.saturated(channel):
            left = deadline - loop.time()
            if left <= 0:
                self.service.metrics.publications_refused.inc()
                return False
            # Woken by the next commit, or after 50 ms to look at the lagging ones again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.05)):
                    await self.log.progress()
        return True

    def refusal(self) -> BrokerError:
        """The error of a publication refused by :meth:`admit`."""
        return BrokerError(ErrorCode.RATE_LIMITED,
                           "this node is delivering as fast as it can; publish again in "
                           f"{RETRY_AFTER_SECONDS} s", 429)

    async def _committed(self, results: list[PublishResult]) -> None:
        fresh = [r.publication for r in results if r.publication is not None]
        self.service.metrics.publications_stored.inc(len(fresh))
        for n, publication in enumerate(fresh):
            if n and not n % self._chunk:
                await asyncio.sleep(0)  # the outboxes are written before the next chunk
            await self.bus.publish(PublicationEvent(publication))

    # the bus

    def on_event(self, event: Event) -> None:
        """Deliver channel events to this node's subscribers."""
        if isinstance(event, PublicationEvent):
            self.service.metrics.publications_out.inc(self.router.deliver(event.publication))
        elif isinstance(event, ChannelPresenceEvent):
            payload = ChannelPresencePushPayload(event.channel, event.change, event.user_id,
                                                 event.device_id)
            frames: dict[bool, bytes] = {}
            for sub in self.router.subscribers(event.channel):
                binary = sub.conn.binary
                if binary not in frames:
                    frames[binary] = encode_frame(MsgType.CHANNEL_PRESENCE_PUSH, 0, payload,
                                                  binary=binary)
                sub.conn.push(frames[binary])

    # WebSocket requests

    async def ws_publish(self, conn: Connection, seq: int, payload: PublishPayload) -> None:
        """``Publish``: ``PublishAck`` (or ``MsgError``) once stored; the read loop goes on."""
        try:
            if self.service.hooks.enabled("publish"):
                item = await prepare_publication(
                    self, conn.hook_request(), payload.channel, payload.type, payload.data,
                    payload.idempotency_key, conn.user_id, conn.device_id, conn.scopes)
            else:
                item = self.prepare(payload.channel, payload.type, payload.data,
                                    payload.idempotency_key, conn.user_id, conn.device_id,
                                    conn.scopes)
        except BrokerError as exc:
            self.service.error(conn, seq, exc.code, exc.message)
            return
        # Waiting here holds the read loop: the publisher's socket is paced by TCP.
        if not await self.admit(item.channel):
            refused = self.refusal()
            self.service.error(conn, seq, refused.code, refused.message)
            return
        # As for chats: the commit task answers right after the batch's deliveries.
        self.log.submit(item, functools.partial(self._published, conn, seq))

    def _published(self, conn: Connection, seq: int, r: PublishResult | None,
                   exc: BaseException | None) -> None:
        if r is None:
            self.service.error(conn, seq, ErrorCode.INTERNAL_ERROR,
                               "publication not stored; publish it again")
            return
        self.service.reply(conn, MsgType.PUBLISH_ACK, seq,
                           PublishAckPayload(r.channel, r.offset, r.created_at, r.duplicate))

    async def ws_subscribe(self, conn: Connection, seq: int, payload: SubscribePayload) -> None:
        """``Subscribe``: ``SubscribeRsp`` with the first replayed publications, the rest
        as ``Publication`` frames, then live publications."""
        svc = self.service
        try:
            ns = self.authorize("subscribe", payload.channel, conn.user_id, conn.scopes)
            if self.service.hooks.enabled("subscribe"):
                await check_subscribe(self, conn.hook_request(), payload.channel,
                                      payload.since)
        except BrokerError as exc:
            svc.error(conn, seq, exc.code, exc.message)
            return
        if self.router.get(conn, payload.channel) is not None:
            svc.error(conn, seq, ErrorCode.ALREADY_SUBSCRIBED,
                      f"already subscribed to {payload.channel!r}")
            return
        if self.router.count(conn) >= self.settings.max_subscriptions:
            svc.error(conn, seq, ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                      f"at most {self.settings.max_subscriptions} channels per connection")
            return
        # Registered before the store is read: live publications are buffered meanwhile.
        sub = self.router.add(conn, payload.channel, refillable=ns.history_size > 0)
        try:
            await self._replay(sub, seq, payload.since, ns)
        except Exception:
            log.exception("%s: replay of %s failed", conn.id, payload.channel)
            self.router.remove(conn, payload.channel)
            svc.error(conn, seq, ErrorCode.INTERNAL_ERROR, "subscribe failed; try again")
            return
        if ns.presence:
            await self.bus.publish(ChannelPresenceEvent(payload.channel, "join", conn.user_id,
                                                        conn.device_id))

    async def _replay(self, sub: Subscription, seq: int, since: int | None,
                      ns: Namespace) -> None:
        conn, channel = sub.conn, sub.channel
        not_before = now_ms() - ns.retention.max_age_ms
        size = self.settings.sync_page_size
        page = await self.store.read_channel(channel, _ALL if since is None else since,
                                             0 if since is None else size, not_before)
        top = page.top_offset
        if since is None:
            recovered, first = True, []
        else:
            recovered = since <= top and since + 1 >= page.first_offset
            first = self._fit(page)
        self.service.reply(conn, MsgType.SUBSCRIBE_RSP, seq, SubscribeResponsePayload(
            channel, top, recovered, [publication_payload(p, conn.binary) for p in first]))
        # Without `since` nothing before `top` is due (docs/protocol.md: "only what is
        # published from now on"); min(0, top) here replayed the whole history.
        sent = first[-1].offset if first else (top if since is None else min(since, top))
        rest = page.publications[len(first):]
        # Everything above `top` committed after the subscription was registered: it
        # is in the buffer. Below, page on through the store.
        while sub.active and not conn.closed and sent < top:
            if not rest:
                more = await self.store.read_channel(channel, sent, size, not_before)
                rest = [p for p in more.publications if p.offset <= top]
                if not rest:
                    break  # trimmed meanwhile
            for pub in rest:
                await conn.send(PublicationFrames(pub).get(conn.binary))
                sent = pub.offset
            rest = []
        sub.offset = max(sent, top)
        self.router.go_live(sub, accept_gaps=False)

    def _fit(self, page: ChannelPage) -> list[Publication]:
        """The publications that fit in one ``SubscribeRsp`` frame (at least one)."""
        budget = self.settings.max_frame_bytes - 1024
        for n, pub in enumerate(page.publications):
            budget -= wire_size(pub)
            if budget < 0 and n > 0:
                return page.publications[:n]
        return page.publications

    def _refill(self, sub: Subscription) -> None:
        """A live subscription found a gap: read the missing offsets from the store."""
        task = asyncio.get_running_loop().create_task(self._refill_from_store(sub))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill_from_store(self, sub: Subscription) -> None:
        # Pages wait for outbox room, so a lagging subscriber is paced, not dropped.
        size = self.settings.sync_page_size
        try:
            ns = self.namespace(sub.channel)
            while sub.active and not sub.conn.closed:
                sub.overflowed = False
                page = await self.store.read_channel(sub.channel, sub.offset, size,
                                                     now_ms() - ns.retention.max_age_ms)
                if sub.refillable and self._lost(sub, page.publications):
                    # It fell further behind than the history keeps: say so rather than
                    # skip silently. Resubscribing with `since` answers recovered: false.
                    log.info("%s: fell behind the history of %s, closing", sub.conn.id,
                             sub.channel)
                    sub.conn.close(CloseCode.SLOW_CONSUMER, "fell behind the channel history")
                    return
                for pub in page.publications:
                    if not sub.active:
                        break
                    await sub.conn.send(PublicationFrames(pub).get(sub.conn.binary))
                    sub.offset = max(sub.offset, pub.offset)
                if len(page.publications) < size and not sub.overflowed:
                    break
        except Exception:
            log.exception("%s: refilling %s failed", sub.conn.id, sub.channel)
        self.router.go_live(sub, accept_gaps=True)

    @staticmethod
    def _lost(sub: Subscription, page: list[Publication]) -> bool:
        """True when the offset after ``sub.offset`` is gone from the store: the next one
        there (or, if none, the next one held back) lies further on."""
        nearest = page[0].offset if page else min((p.offset for p in sub.buffered or ()),
                                                   default=None)
        return nearest is not None and nearest > sub.offset + 1

    async def ws_unsubscribe(self, conn: Connection, seq: int,
                             payload: UnsubscribePayload) -> None:
        """``Unsubscribe``: answered with ``UnsubscribeRsp`` even if not subscribed."""
        sub = self.router.remove(conn, payload.channel)
        self.service.reply(conn, MsgType.UNSUBSCRIBE_RSP, seq,
                           UnsubscribeResponsePayload(payload.channel))
        if sub is not None:
            await self._left(sub)

    async def force_unsubscribe(self, conn: Connection, channel: str) -> bool:
        """The server API unsubscribes the connection: it is told with an unsolicited
        ``UnsubscribeRsp`` (seq 0). False if it was not subscribed."""
        sub = self.router.remove(conn, channel)
        if sub is None:
            return False
        self.service.reply(conn, MsgType.UNSUBSCRIBE_RSP, 0, UnsubscribeResponsePayload(channel))
        await self._left(sub)
        return True

    async def disconnected(self, conn: Connection) -> None:
        """Drop a closed connection's subscriptions (and announce leaves)."""
        for sub in self.router.drop(conn):
            await self._left(sub)

    async def _left(self, sub: Subscription) -> None:
        ns = self.settings.namespaces.get(namespace_name(sub.channel))
        if ns is not None and ns.presence:
            await self.bus.publish(ChannelPresenceEvent(sub.channel, "leave", sub.conn.user_id,
                                                        sub.conn.device_id))

    # reading

    async def history(self, channel: str, since: int, limit: int) -> ChannelPage:
        """Publications after ``since`` still retained (at most ``limit``)."""
        ns = self.namespace(channel)
        return await self.store.read_channel(channel, since, limit,
                                             now_ms() - ns.retention.max_age_ms)

    def presence(self, channel: str) -> list[tuple[int, str]]:
        """(user_id, device_id) of this node's subscribers to ``channel``."""
        return sorted({(s.conn.user_id, s.conn.device_id)
                       for s in self.router.subscribers(channel)})
