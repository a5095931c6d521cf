"""Buses between nodes, picked by URL scheme."""

from __future__ import annotations

from tidings.bus.base import (
    Bus,
    ChannelPresenceEvent,
    ChatEvent,
    Event,
    GapHandler,
    Handler,
    PublicationEvent,
    PushEvent,
    RevokeEvent,
)
from tidings.bus.memory import MemoryBus
from tidings.metrics import Metrics

__all__ = ["Bus", "ChannelPresenceEvent", "ChatEvent", "Event", "GapHandler", "Handler",
           "MemoryBus", "PublicationEvent", "PushEvent", "RevokeEvent", "open_bus"]


def open_bus(url: str, *, node_id: str = "local", metrics: Metrics | None = None) -> Bus:
    """The bus for ``url``: ``memory://`` (one process), ``redis://HOST:PORT/DB`` or
    ``postgresql://USER@HOST:PORT/DB``. Nothing is connected before ``start()``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryBus()
    if scheme in ("redis", "rediss"):
        from tidings.bus.redis import RedisBus  # lazily: each backend has its own client

        return RedisBus(url, node_id=node_id, metrics=metrics)
    if scheme in ("postgres", "postgresql"):
        from tidings.bus.postgres import PostgresBus

        return PostgresBus(url, node_id=node_id, metrics=metrics)
    raise ValueError(f"unknown bus URL scheme {scheme!r}: use memory://, redis://HOST:PORT/DB "
                     "or postgresql://USER@HOST:PORT/DB")
