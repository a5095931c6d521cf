"""A device that connects again replaces its older connection, on any node.

A claim (see cluster/base.py) removes the registry entries of the same user's and
device's other connections, so a reconnecting device never counts against the
per-user limit — even when its old socket is still registered on a node killed by
SIGKILL (until that node's lease expires) or on a node that has not noticed the
dead socket yet. If that older connection is in fact still open, it is closed
with 4409 (``TOO_MANY_CONNECTIONS``; a 4409 after a successful ``MsgAuth`` means
"replaced"): at once on this node, and through the bus
(:class:`~tidings.bus.base.ReplacedEvent`) on the others, the way token
revocation reaches them. Two live clients sharing one device id therefore take
the slot from each other in turn, each retrying 4409 with backoff; a device id
is meant to name one device.
"""

from __future__ import annotations

import logging

from tidings.bus.base import Bus, Event, ReplacedEvent
from tidings.cluster.base import Registry
from tidings.hub.hub import Hub
from tidings.protocol.codes import CloseCode

log = logging.getLogger(__name__)

REASON = "replaced by a newer connection of this device"


class Replacements:
    """Close the connections a claim replaced, wherever they are."""

    def __init__(self, registry: Registry, hub: Hub, bus: Bus) -> None:
        self._registry = registry
        self._hub = hub
        self._bus = bus

    async def replaced(self, user_id: int, conn_keys: tuple[str, ...]) -> None:
        """Close ``conn_keys`` (a claim's ``replaced``): those of this node now, the
        others through the bus. A lost bus event leaves the older connection open, and
        its node's heartbeat registers it again: it counts until it closes."""
        if not conn_keys:
            return
        self.close(user_id, conn_keys)
        local = self._registry.key("")
        remote = [k for k in conn_keys if not k.startswith(local)]
        if remote:
            try:
                await self._bus.publish(ReplacedEvent(user_id, remote))
            except Exception as exc:
                log.warning("user %d: telling other nodes to close %s failed: %s", user_id,
                            remote, exc)

    def on_event(self, event: Event) -> None:
        """Close this node's connections that a claim elsewhere replaced."""
        if isinstance(event, ReplacedEvent):
            self.close(event.user_id, event.conn_keys)

    def close(self, user_id: int, conn_keys: tuple[str, ...] | list[str]) -> int:
        """Close (4409) those of the user's connections here named by ``conn_keys``."""
        closed = 0
        for conn in self._hub.connections(user_id):
            if self._registry.key(conn.id) not in conn_keys or conn.closed:
                continue
            log.info("%s user %d device %s: %s, closing", conn.id, user_id, conn.device_id,
                     REASON)
            if conn.reader is not None:
                conn.stop_reader(CloseCode.TOO_MANY_CONNECTIONS)  # closes with a handshake
            else:
                conn.close(CloseCode.TOO_MANY_CONNECTIONS, REASON)
            closed += 1
        return closed
