"""What one node knows and does for the server API, on every transport it serves:
``/ws`` (the hub and its channel subscriptions) and the transports apps register
(Socket.IO of the desk map, the editing socket), each behind :class:`Transport`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from tidings.channels.broker import Broker
from tidings.gateway.connection import Connection
from tidings.hub.hub import Hub
from tidings.store.base import now_ms

log = logging.getLogger(__name__)

ConnectionInfo = dict[str, Any]
"""One connection as the server API lists it: ``transport`` (ws, socketio, editing),
``id`` (unique on its node), ``user_id``, ``device_id``, ``remote``, ``connected_at``
(ms) and ``channels`` (channels on /ws, rooms on Socket.IO, the session on editing)."""


class Transport(Protocol):
    """A kind of socket an app serves beside ``/ws``."""

    def control_connections(self, user_id: int | None) -> list[ConnectionInfo]:
        """This node's connections of one user (None: everyone's)."""

    def control_disconnect(self, user_id: int, conn_id: str | None, code: int,
                           reason: str) -> int:
        """Close this node's connections of a user (only ``conn_id`` if given); return
        how many."""


class LocalNode:
    """This node's part of every server API call."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self._hub = hub
        self._broker = broker
        self.transports: list[Transport] = []  # the apps' (server.py wires them)

    def _ws_info(self, conn: Connection) -> ConnectionInfo:
        age_ms = int((asyncio.get_running_loop().time() - conn.opened_at) * 1000)
        return {"transport": "ws", "id": conn.id, "user_id": conn.user_id,
                "device_id": conn.device_id, "remote": conn.remote,
                "connected_at": now_ms() - age_ms,
                "channels": self._broker.router.channels_of(conn)}

    def connections(self, user_id: int | None) -> list[ConnectionInfo]:
        """This node's connections of a user (None: all), every transport."""
        conns = (self._hub.all_connections() if user_id is None
                 else self._hub.connections(user_id))
        out = [self._ws_info(c) for c in conns if not c.closed]
        for transport in self.transports:
            out.extend(transport.control_connections(user_id))
        return out

    def disconnect(self, user_id: int, conn_id: str | None, code: int, reason: str) -> int:
        """Close the user's connections here (only ``conn_id`` if given), with ``code`` and
        ``reason``; return how many."""
        closed = 0
        for conn in self._hub.connections(user_id):
            if conn_id not in (None, conn.id) or conn.closed:
                continue
            log.info("%s user %d: disconnected by an operator (%d %s)", conn.id, user_id,
                     code, reason)
            if conn.reader is not None:
                conn.stop_reader(code, reason)  # closes with a handshake
            else:
                conn.close(code, reason)
            closed += 1
        for transport in self.transports:
            closed += transport.control_disconnect(user_id, conn_id, code, reason)
        return closed

    async def unsubscribe(self, user_id: int, channel: str) -> int:
        """Unsubscribe the user's ``/ws`` connections here from ``channel``."""
        done = 0
        for conn in self._hub.connections(user_id):
            done += await self._broker.force_unsubscribe(conn, channel)
        return done

    def presence(self, channel: str) -> list[tuple[int, str]]:
        """(user id, device id) of this node's subscribers to ``channel``."""
        return self._broker.presence(channel)

    def channels(self) -> dict[str, int]:
        """Subscriber count of each channel with subscribers here."""
        return self._broker.router.channels()
