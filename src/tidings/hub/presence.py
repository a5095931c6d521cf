"""Presence: online, away or offline, and who is told.

A user is online from their first connection on any node until their last one
closes, times out, or dies with its node; ``MsgPresence`` sets away (or online
again). Connections and chosen statuses live in the cluster registry
(``tidings.cluster``), so every node answers alike. A change is pushed to the
user's *peers* — users they have exchanged at least one message with — and to
the user's own other connections, through the bus, so it reaches every node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tidings.bus.base import Bus, PushEvent
from tidings.cluster.base import Registry
from tidings.protocol.codes import MsgType
from tidings.store.base import Store

ONLINE, AWAY, OFFLINE = "online", "away", "offline"


class Presence:
    """Statuses of users, as the cluster registry knows them."""

    def __init__(self, registry: Registry, store: Store, bus: Bus) -> None:
        self._registry = registry
        self._store = store
        self._bus = bus
        #: Told ``(user_id, "online" | "offline")`` when a user's first connection in
        #: the cluster opens or their last one ends (the webhook recorder).
        self.listeners: list[Callable[[int, str], Awaitable[None]]] = []

    async def statuses(self, user_ids: list[int]) -> dict[int, str]:
        """Current status of each user."""
        online = await self._registry.online(user_ids)
        chosen = await self._registry.chosen(sorted(online))
        return {u: chosen.get(u, ONLINE) if u in online else OFFLINE for u in user_ids}

    async def status(self, user_id: int) -> str:
        """One user's current status."""
        return (await self.statuses([user_id]))[user_id]

    async def set(self, user_id: int, status: str) -> None:
        """Record a status the user chose and tell their peers."""
        await self._registry.choose(user_id, None if status == ONLINE else status)
        await self.announce(user_id)

    async def went_offline(self, user_id: int) -> None:
        """The user's last connection in the cluster closed, or died with its node (the
        registry has already forgotten the status they chose)."""
        await self.announce(user_id)
        for tell in self.listeners:
            await tell(user_id, OFFLINE)

    async def went_online(self, user_id: int) -> None:
        """The user's first connection in the cluster opened."""
        await self.announce(user_id)
        for tell in self.listeners:
            await tell(user_id, ONLINE)

    async def announce(self, user_id: int) -> None:
        """Push the user's current status to their peers and themselves, on every node
        (each node pushes only to the connections it holds)."""
        peers = await self._store.conversation_peers(user_id)
        targets = sorted(set(peers) | {user_id})
        payload = {"user_id": user_id, "status": await self.status(user_id)}
        await self._bus.publish(PushEvent(targets, MsgType.PRESENCE_PUSH, payload))

    async def visible_to(self, viewer_id: int, user_ids: list[int]) -> dict[int, str]:
        """Statuses the viewer may see: their own and their peers'; others are unknown."""
        peers = set(await self._store.conversation_peers(viewer_id)) | {viewer_id}
        visible = [u for u in user_ids if u in peers]
        known = await self.statuses(visible)
        return {u: known.get(u, "unknown") for u in user_ids}
