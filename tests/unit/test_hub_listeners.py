"""The hub hands every bus event but chats to the other features' listeners."""

from __future__ import annotations

from tidings.bus.base import ChatEvent, Event, RevokeEvent
from tidings.hub.hub import Hub
from tidings.metrics import Metrics
from tidings.store.base import StoredMessage


def test_listeners_get_every_event_but_chats() -> None:
    hub = Hub(Metrics())
    heard: list[Event] = []
    hub.listeners.append(heard.append)
    chat = ChatEvent(StoredMessage(1, 1, "d", 2, "text", "hi", 1, "sent", 1000))
    revoke = RevokeEvent([7])
    hub.on_event(chat)  # nobody of user 2 is here: nothing to push, and no listener call
    hub.on_event(revoke)
    assert heard == [revoke]
