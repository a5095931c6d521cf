"""Presence: online, away or offline, and who is told.

A user is online from their first connection until their last one closes or
times out; ``MsgPresence`` sets away (or online again). A change is pushed to
the user's *peers* — users they have exchanged at least one message with —
who are online, and to the user's own other connections.
"""

from __future__ import annotations

from tidings.bus.base import Bus, PushEvent
from tidings.hub.hub import Hub
from tidings.protocol.codes import MsgType
from tidings.store.base import Store

ONLINE, AWAY, OFFLINE = "online", "away", "offline"


class Presence:
    """Statuses of the users connected to this node."""

    def __init__(self, hub: Hub, store: Store, bus: Bus) -> None:
        self._hub = hub
        self._store = store
        self._bus = bus
        self._chosen: dict[int, str] = {}  # statuses set with MsgPresence

    def status(self, user_id: int) -> str:
        """The user's current status."""
        if not self._hub.is_online(user_id):
            return OFFLINE
        return self._chosen.get(user_id, ONLINE)

    async def set(self, user_id: int, status: str) -> None:
        """Record a status the user chose and tell their peers."""
        if status == ONLINE:
            self._chosen.pop(user_id, None)
        else:
            self._chosen[user_id] = status
        await self.announce(user_id)

    async def went_offline(self, user_id: int) -> None:
        """The user's last connection closed."""
        self._chosen.pop(user_id, None)
        await self.announce(user_id)

    async def announce(self, user_id: int) -> None:
        """Push the user's current status to their online peers and themselves."""
        peers = await self._store.conversation_peers(user_id)
        targets = list({p for p in peers if self._hub.is_online(p)} | {user_id})
        payload = {"user_id": user_id, "status": self.status(user_id)}
        await self._bus.publish(PushEvent(targets, MsgType.PRESENCE_PUSH, payload))

    async def visible_to(self, viewer_id: int, user_ids: list[int]) -> dict[int, str]:
        """Statuses the viewer may see: their own and their peers'; others are unknown."""
        peers = set(await self._store.conversation_peers(viewer_id)) | {viewer_id}
        return {u: self.status(u) if u in peers else "unknown" for u in user_ids}
