"""The bus carries events between the nodes of a cluster (and, on one node,
from the code that commits a message to the code that pushes it).

Every node subscribes once and receives every event, its own included; each
node then delivers to the connections it holds. Events are msgspec structs so
that remote backends can encode them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import msgspec

from tidings.store.base import StoredMessage
from tidings.store.channels import Publication


class ChatEvent(msgspec.Struct, tag="chat", tag_field="event", frozen=True, gc=False):
    """A message was committed: push it to its recipient's and sender's devices."""

    message: StoredMessage


class PushEvent(msgspec.Struct, tag="push", tag_field="event", frozen=True):
    """Send one server frame (type code + payload) to every connection of these users."""

    user_ids: list[int]
    type: int
    payload: dict[str, Any]


class PublicationEvent(msgspec.Struct, tag="publication", tag_field="event", frozen=True):
    """A publication was committed to its channel: deliver it to the subscribers."""

    publication: Publication


class ChannelPresenceEvent(msgspec.Struct, tag="channel_presence", tag_field="event",
                           frozen=True):
    """A connection joined (subscribed to) or left a channel whose namespace keeps presence."""

    channel: str
    change: str  # "join" or "leave"
    user_id: int
    device_id: str


class RevokeEvent(msgspec.Struct, tag="revoke", tag_field="event", frozen=True):
    """These tokens were revoked: close every live connection authenticated with one."""

    token_ids: list[int]


class ReplacedEvent(msgspec.Struct, tag="replaced", tag_field="event", frozen=True):
    """A device of this user connected again: close its older connections (cluster keys
    ``node/conn``, see cluster/replace.py) on whichever node still holds them."""

    user_id: int
    conn_keys: list[str]


class EditingEvent(msgspec.Struct, tag="editing", tag_field="event", frozen=True):
    """A collaborative-editing event (seed 002) for the WebSockets of these editing
    sessions, on whichever node holds them: ``type`` is an ``EditingEventType``."""

    session_ids: list[str]
    type: str
    data: dict[str, Any]


class DeskChangeEvent(msgspec.Struct, tag="desk_change", tag_field="event", frozen=True):
    """A row of the desk map (seed 000) changed: ``table`` is ``workstations``,
    ``employees``, ``departments``, ``buildings`` or ``floors``, ``op`` is ``INSERT``,
    ``UPDATE`` or ``DELETE``.

    The same shape as the PostgreSQL trigger's NOTIFY payload; the rooms the row
    was in (``old_*``) and is in get the event.
    """

    op: str
    id: int
    table: str = "workstations"
    floor_id: int | None = None
    department_id: int | None = None
    old_floor_id: int | None = None
    old_department_id: int | None = None
    #: Names this change on every node alike (a PostgreSQL sequence value or a UUID),
    #: so that the channel publications all nodes make of it are stored once.
    key: str = ""
    #: The desk's seed §5.3.1 business id, so that a deleted desk's event names it.
    workstation_id: str | None = None


class ControlQuery(msgspec.Struct, tag="control_query", tag_field="event", frozen=True):
    """The server API asks every node (control/cluster.py): ``kind`` names what
    (``connections``, ``disconnect``, ``unsubscribe``, ``presence``, ``channels``),
    ``args`` its arguments; each node answers with a :class:`ControlAnswer`."""

    query_id: str
    origin: str  # the asking node
    kind: str
    args: dict[str, Any]


class ControlAnswer(msgspec.Struct, tag="control_answer", tag_field="event", frozen=True):
    """One node's answer to a :class:`ControlQuery` (only its origin listens)."""

    query_id: str
    origin: str
    node: str
    answer: dict[str, Any]


# Remote backends encode any member of this union generically (bus/wire.py): a new
# event type only needs a tag and a place here.
Event = (ChatEvent | PushEvent | PublicationEvent | ChannelPresenceEvent | RevokeEvent
         | ReplacedEvent | EditingEvent | DeskChangeEvent | ControlQuery | ControlAnswer)
Handler = Callable[[Event], None]
GapHandler = Callable[[], None]


class Bus(abc.ABC):
    """Publish/subscribe between nodes. Each node's events arrive in its publish order.

    ``ordered`` is true only for a bus with a single publisher (``memory://``): its
    chat events arrive in message id order, none missing. On a cluster bus events of
    different nodes interleave and may be lost while a node is cut off; such a bus
    calls ``on_gap`` after it reconnected, and the hub then reads from the store
    what it may have missed (see hub/gapfill.py).
    """

    ordered: bool = False

    @abc.abstractmethod
    async def start(self, handler: Handler, on_gap: GapHandler | None = None) -> None:
        """Begin delivering every event published on the bus to ``handler``."""

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Send an event to every node, this one included."""

    async def publish_many(self, events: list[Event]) -> None:
        """Publish events in order (a group commit's chats); buses may do it cheaper."""
        for event in events:
            await self.publish(event)

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivering and release resources."""

    def health(self) -> str:
        """``ok``, or why events may not be flowing right now (for /api/health)."""
        return "ok"
