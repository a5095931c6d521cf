"""What the client hands to the application: typed events, and the pure logic behind them.

Nothing here touches a socket: :func:`events_from_push` turns a decoded server
frame into events and :class:`Deduplicator` drops chat messages already seen,
so both are tested byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from tidings_client.protocol.codes import MsgType
from tidings_client.protocol.messages import (
    ChatAckPayload,
    Message,
    PresencePushPayload,
    ReceiptPushPayload,
    SyncResponsePayload,
)


@dataclass(frozen=True, slots=True)
class ChatAck:
    """The server stored a chat sent with :meth:`~tidings_client.Client.send_chat`."""

    message_id: int
    created_at: int  # milliseconds since the epoch


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A chat message for this user, from a live push or a sync page.

    Attribute names follow :class:`tidings_client.protocol.messages.Message`
    (``from_`` is the wire's ``from``).
    """

    message_id: int
    from_: int
    to: int
    type: str
    content: str
    created_at: int  # milliseconds since the epoch
    status: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """Messages this user sent reached ``status`` (delivered/read) at user ``by``."""

    message_ids: tuple[int, ...]
    status: str
    by: int


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """User ``user_id`` is now ``status`` (online/away/offline)."""

    user_id: int
    status: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection closed with WebSocket close ``code``; the client will reconnect
    unless the code is terminal (4401), after which the event stream ends."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The client is connected and authenticated again, after ``attempts`` tries.

    The server now re-sends whatever this device had not confirmed; messages
    already yielded are not yielded again.
    """

    attempts: int


@dataclass(frozen=True, slots=True)
class Publication:
    """A publication on a channel this client subscribed to (live or replayed).

    ``user_id`` and ``device_id`` say who published (``device_id`` ``"http"`` for the
    HTTP API and the CLI).
    """

    channel: str
    offset: int
    type: str
    data: Any
    user_id: int
    device_id: str
    created_at: int  # milliseconds since the epoch


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server confirmed a subscription: on :meth:`~tidings_client.Client.subscribe`
    and again after every reconnect. ``recovered`` False means retention dropped
    publications this client had not seen yet: they will not come."""

    channel: str
    offset: int
    recovered: bool


@dataclass(frozen=True, slots=True)
class ChannelPresence:
    """Someone subscribed to (``join``) or left (``leave``) a channel with presence."""

    channel: str
    event: str
    user_id: int
    device_id: str


@dataclass(frozen=True, slots=True)
class PublishAck:
    """The server stored a publication sent with :meth:`~tidings_client.Client.publish`
    (``duplicate``: its idempotency key had already been used)."""

    channel: str
    offset: int
    created_at: int
    duplicate: bool


Event = (ChatMessage | Receipt | PresenceChange | Disconnected | Reconnected | Publication
         | Subscribed | ChannelPresence)
"""Everything :meth:`~tidings_client.Client.events` yields."""


def chat_message(message: Message) -> ChatMessage:
    """Convert the wire :class:`~tidings_client.protocol.messages.Message` into an event."""
    return ChatMessage(message.message_id, message.from_, message.to, message.type,
                       message.content, message.created_at, message.status)


def parse_chat_ack(payload: dict[str, Any]) -> ChatAck:
    """Decode a ``ChatAck`` (107) payload; raise ``msgspec.ValidationError`` if malformed."""
    ack = msgspec.convert(payload, ChatAckPayload)
    return ChatAck(ack.message_id, ack.created_at)


def parse_sync_page(payload: dict[str, Any]) -> tuple[list[ChatMessage], bool]:
    """Decode a ``MsgSyncRsp`` (103) payload into ``(messages, has_more)``."""
    page = msgspec.convert(payload, SyncResponsePayload)
    return [chat_message(m) for m in page.messages], page.has_more


def events_from_push(type_: int, payload: dict[str, Any]) -> list[Event]:
    """Turn an unsolicited server frame into events, in order (no de-duplication).

    A sync page gives one :class:`ChatMessage` per message. Types that carry no
    event (pongs, errors, unknown types) give an empty list. Raise
    ``msgspec.ValidationError`` if the payload does not match its type.
    """
    if type_ == MsgType.CHAT_PUSH:
        return [chat_message(msgspec.convert(payload, Message))]
    if type_ == MsgType.SYNC_RSP:
        return list(parse_sync_page(payload)[0])
    if type_ == MsgType.RECEIPT_PUSH:
        receipt = msgspec.convert(payload, ReceiptPushPayload)
        return [Receipt(tuple(receipt.message_ids), receipt.status, receipt.by)]
    if type_ == MsgType.PRESENCE_PUSH:
        presence = msgspec.convert(payload, PresencePushPayload)
        return [PresenceChange(presence.user_id, presence.status)]
    return []


class Deduplicator:
    """Lets each chat message through once, in increasing id order.

    Message ids strictly increase in a device's stream, so remembering the
    highest id let through is enough: anything at or below it is a re-delivery
    (the server re-sends what was not acknowledged after a reconnect).
    """

    def __init__(self, last_id: int = 0) -> None:
        """Start as if every id up to ``last_id`` had already been seen."""
        self.last_id = last_id

    def admit(self, messages: Iterable[ChatMessage]) -> list[ChatMessage]:
        """Return the messages with an id above every id admitted so far."""
        fresh = []
        for message in messages:
            if message.message_id > self.last_id:
                self.last_id = message.message_id
                fresh.append(message)
        return fresh


class EventStream:
    """The queue behind :meth:`~tidings_client.Client.events`.

    Chat messages go through a :class:`Deduplicator`; :meth:`end` lets readers
    finish the events already queued, then stop.
    """

    def __init__(self) -> None:
        """Start empty and open."""
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._dedup = Deduplicator()
        self._ended = False

    def put(self, event: Event) -> None:
        """Queue one event (ignored once ended)."""
        if not self._ended:
            self._queue.put_nowait(event)

    def put_push(self, type_: int, payload: dict[str, Any]) -> int:
        """Queue the events of an unsolicited server frame, chat messages not yet seen only.

        Return the highest chat message id the frame carried, seen before or
        not (0 if none): acknowledging it as delivered is then safe.
        """
        events = events_from_push(type_, payload)
        messages = [e for e in events if isinstance(e, ChatMessage)]
        for event in self._dedup.admit(messages) if messages else events:
            self.put(event)
        return max((m.message_id for m in messages), default=0)

    def end(self) -> None:
        """Queue the end of the stream (once)."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Yield queued events until the end marker."""
        while True:
            event = await self._queue.get()
            if event is None:
                self._queue.put_nowait(None)  # let other readers end too
                return
            yield event
