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


class ChatEvent(msgspec.Struct, tag="chat", tag_field="event", frozen=True):
    """A message was committed: push it to its recipient's and sender's devices."""

    message: StoredMessage


class PushEvent(msgspec.Struct, tag="push", tag_field="event", frozen=True):
    """Send one server frame (type code + payload) to every connection of these users."""

    user_ids: list[int]
    type: int
    payload: dict[str, Any]


Event = ChatEvent | PushEvent
Handler = Callable[[Event], None]


class Bus(abc.ABC):
    """Publish/subscribe between nodes. Delivery order is publish order."""

    @abc.abstractmethod
    async def start(self, handler: Handler) -> None:
        """Begin delivering every event published on the bus to ``handler``."""

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Send an event to every node, this one included."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivering and release resources."""
