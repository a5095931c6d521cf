"""The hub: this node's authenticated connections, by user, and delivery to them.

It holds only local state. Everything that must reach other nodes goes
through the bus, whose events come back here (from this node too) through
:meth:`Hub.on_event`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tidings.bus.base import ChatEvent, Event, PushEvent
from tidings.gateway.connection import Connection
from tidings.hub.gapfill import GapFill
from tidings.metrics import Metrics
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import Message
from tidings.store.base import Store, StoredMessage


def to_wire(m: StoredMessage) -> Message:
    """The client's view of a stored message."""
    return Message(message_id=m.id, from_=m.sender_id, to=m.recipient_id, type=m.type,
                   content=m.content, created_at=m.created_at, status=m.status)


class _Frames:
    """One payload encoded at most once per framing, shared by all recipients."""

    __slots__ = ("_binary", "_payload", "_text", "_type")

    def __init__(self, type_: int, payload: object) -> None:
        self._type = type_
        self._payload = payload
        self._binary: bytes | None = None
        self._text: bytes | None = None

    def get(self, binary: bool) -> bytes:
        if binary:
            if self._binary is None:
                self._binary = encode_frame(self._type, 0, self._payload, binary=True)
            return self._binary
        if self._text is None:
            self._text = encode_frame(self._type, 0, self._payload, binary=False)
        return self._text


class Hub:
    """Local connections by user id, and the in-order, at-most-once push to them."""

    def __init__(self, metrics: Metrics) -> None:
        self._by_user: dict[int, dict[str, Connection]] = {}
        self._metrics = metrics
        # Other features (channels, token revocation) get every bus event but chats,
        # which are the hub's own (one per chat: the calls added up, bench: chat).
        self.listeners: list[Callable[[Event], None]] = []
        self.gap_fill: GapFill | None = None

    def enable_gap_fill(self, store: Store, *, page_size: int, gap_timeout: float) -> None:
        """Chat events come from several nodes: push one as it is only when every lower
        id has been seen, else read from the store (see hub/gapfill.py)."""
        self.gap_fill = GapFill(store, self._metrics, self._push_message,
                                page_size=page_size, gap_timeout=gap_timeout)
        self.gap_fill.attach(self.all_connections)

    def on_gap(self) -> None:
        """The bus may have lost events: every connection re-reads from the store."""
        if self.gap_fill is not None:
            self.gap_fill.refill_all()

    def add(self, conn: Connection) -> bool:
        """Register an authenticated connection; True if it is the user's first here."""
        conns = self._by_user.setdefault(conn.user_id, {})
        conns[conn.id] = conn
        self._metrics.connections.inc()
        return len(conns) == 1

    def holds(self, conn: Connection) -> bool:
        """True if this connection is registered here."""
        return conn.id in self._by_user.get(conn.user_id, {})

    def remove(self, conn: Connection) -> bool:
        """Forget a connection; True if it was the user's last one here."""
        conns = self._by_user.get(conn.user_id)
        if conns is None or conns.pop(conn.id, None) is None:
            return False
        self._metrics.connections.dec()
        if conns:
            return False
        del self._by_user[conn.user_id]
        return True

    def connections(self, user_id: int) -> list[Connection]:
        """This node's live connections of one user."""
        return list(self._by_user.get(user_id, {}).values())

    def count(self, user_id: int) -> int:
        """How many connections the user holds on this node."""
        return len(self._by_user.get(user_id, ()))

    def is_online(self, user_id: int) -> bool:
        """True if the user holds at least one connection here."""
        return user_id in self._by_user

    def online_users(self) -> list[int]:
        """Users with at least one connection here."""
        return list(self._by_user)

    def all_connections(self) -> Iterable[Connection]:
        """Every authenticated connection on this node."""
        for conns in self._by_user.values():
            yield from conns.values()

    def on_event(self, event: Event) -> None:
        """Deliver a bus event to the local connections it concerns."""
        if isinstance(event, ChatEvent):
            self._deliver_chat(event.message)
            return
        if isinstance(event, PushEvent):
            frames = _Frames(event.type, event.payload)
            for user_id in event.user_ids:
                for conn in self._by_user.get(user_id, {}).values():
                    conn.push(frames.get(conn.binary))
        for listener in self.listeners:
            listener(event)

    def _deliver_chat(self, message: StoredMessage) -> None:
        frames: _Frames | None = None
        gap_fill = self.gap_fill
        direct = gap_fill is None or gap_fill.in_order(message.id)
        targets = list(self._by_user.get(message.recipient_id, {}).values())
        if message.sender_id != message.recipient_id:
            targets += [c for c in self._by_user.get(message.sender_id, {}).values()
                        if c.device_id != message.sender_device]
        for conn in targets:
            if conn.catching_up:
                if conn.buffered is None:
                    conn.buffered = []
                conn.buffered.append(message)
            elif message.id <= conn.last_pushed_id:
                continue
            elif gap_fill is not None and (not direct or gap_fill.busy(conn)):
                gap_fill.refill(conn)
            else:
                frames = frames or _Frames(MsgType.CHAT_PUSH, to_wire(message))
                if conn.push(frames.get(conn.binary)):
                    conn.last_pushed_id = message.id
                    self._metrics.messages_out.inc()

    def _push_message(self, conn: Connection, message: StoredMessage) -> bool:
        frame = encode_frame(MsgType.CHAT_PUSH, 0, to_wire(message), binary=conn.binary)
        if not conn.push(frame):
            return False
        conn.last_pushed_id = message.id
        self._metrics.messages_out.inc()
        return True

    def finish_catch_up(self, conn: Connection) -> None:
        """Push what arrived during the backlog replay, then go live."""
        buffered, conn.buffered = conn.buffered or (), None
        conn.catching_up = False
        if self.gap_fill is not None:
            # Buffered events may be out of order or incomplete: read them instead.
            if buffered or self.gap_fill.wanted(conn):
                self.gap_fill.refill(conn)
            return
        for message in buffered:
            if isinstance(message, StoredMessage) and message.id > conn.last_pushed_id:
                frame = encode_frame(MsgType.CHAT_PUSH, 0, to_wire(message), binary=conn.binary)
                if conn.push(frame):
                    conn.last_pushed_id = message.id
