"""The registry of a single node (``memory://`` bus): plain dictionaries."""

from __future__ import annotations

import os
from collections.abc import Callable

from tidings.cluster.base import Claim, Held, NodeStatus, Registry, now_ms


class MemoryRegistry(Registry):
    """Everything is local; there are no other nodes to lose."""

    def __init__(self, *, node_id: str, address: str) -> None:
        super().__init__(node_id=node_id, address=address)
        self._conns: dict[int, dict[str, str]] = {}  # user -> conn -> device
        self._chosen: dict[int, str] = {}
        self._started = now_ms()
        self._beat = self._started

    async def start(self) -> None:
        """Nothing to register."""
        self._started = self._beat = now_ms()

    async def close(self) -> None:
        """Forget everything."""
        self._conns.clear()

    async def claim(self, user_id: int, conn_id: str, limit: int, *,
                    device_id: str = "") -> Claim:
        """Grant a slot if the user holds fewer than ``limit`` besides this device's."""
        conns = self._conns.get(user_id, {})
        before = len(conns)
        same = [c for c, d in conns.items() if device_id and d == device_id and c != conn_id]
        if before - len(same) >= limit:
            return Claim(False, before)
        for c in same:
            del conns[c]
        conns[conn_id] = device_id
        self._conns[user_id] = conns
        return Claim(True, before, tuple(self.key(c) for c in same))

    async def release(self, user_id: int, conn_id: str) -> int | None:
        """Give a slot back; return the user's connections left (None: no entry)."""
        conns = self._conns.get(user_id, {})
        held = conns.pop(conn_id, None) is not None
        if not conns:
            self._conns.pop(user_id, None)
            self._chosen.pop(user_id, None)
        return len(conns) if held else None

    async def online(self, user_ids: list[int]) -> set[int]:
        """Users holding a connection here."""
        return {u for u in user_ids if u in self._conns}

    async def choose(self, user_id: int, status: str | None) -> None:
        """Record (or clear) a chosen status."""
        if status is None:
            self._chosen.pop(user_id, None)
        else:
            self._chosen[user_id] = status

    async def chosen(self, user_ids: list[int]) -> dict[int, str]:
        """Chosen statuses of these users."""
        return {u: self._chosen[u] for u in user_ids if u in self._chosen}

    async def heartbeat(self, connections: Callable[[], Held]) -> list[int]:
        """Only remember when (a release here never fails: nothing is left behind)."""
        self._beat = now_ms()
        return []

    async def reap(self) -> list[int]:
        """No other node can die."""
        return []

    async def nodes(self) -> list[NodeStatus]:
        """This node alone."""
        count = sum(len(c) for c in self._conns.values())
        return [NodeStatus(self.node_id, self.address, os.getpid(), self._started, self._beat,
                           count)]
