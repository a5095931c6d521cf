"""Buses between nodes, picked by URL scheme."""

from tidings.bus.base import Bus, ChatEvent, Event, Handler, PushEvent
from tidings.bus.memory import MemoryBus

__all__ = ["Bus", "ChatEvent", "Event", "Handler", "MemoryBus", "PushEvent", "open_bus"]


def open_bus(url: str) -> Bus:
    """The bus for ``url``: ``memory://`` (one process)."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryBus()
    raise ValueError(f"unknown bus URL scheme {scheme!r}: use memory://")
