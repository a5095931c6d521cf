"""A failed heartbeat renews the node's links: the registry's, and the store's too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tidings.cluster.base import Held
from tidings.cluster.membership import Membership
from tidings.cluster.memory import MemoryRegistry
from tidings.hub.hub import Hub
from tidings.metrics import Metrics


class CutOffRegistry(MemoryRegistry):
    """A registry whose heartbeats fail while ``cut`` is set, and which counts resets."""

    def __init__(self) -> None:
        super().__init__(node_id="a", address="127.0.0.1:1")
        self.cut = True
        self.resets = 0

    async def heartbeat(self, connections: Callable[[], Held]) -> list[int]:
        if self.cut:
            raise ConnectionError("registry unreachable")
        return await super().heartbeat(connections)

    async def reset(self) -> None:
        self.resets += 1


async def test_a_failed_beat_resets_the_registry_and_refreshes_the_store() -> None:
    registry = CutOffRegistry()
    refreshed: list[float] = []

    async def refresh() -> None:
        refreshed.append(asyncio.get_running_loop().time())

    membership = Membership(registry, Hub(Metrics()), lambda _user: asyncio.sleep(0),
                            Metrics(), interval=0.02, node_timeout=1.0, refresh=refresh)
    await membership.start()
    try:
        for _ in range(100):
            if len(refreshed) >= 2:
                break
            await asyncio.sleep(0.02)
        assert not membership.healthy
        assert registry.resets >= 2 and len(refreshed) >= 2
        registry.cut = False  # the heal: beats pass again, nothing more is refreshed
        for _ in range(100):
            if membership.healthy:
                break
            await asyncio.sleep(0.02)
        assert membership.healthy
        seen = len(refreshed)
        await asyncio.sleep(0.1)
        assert len(refreshed) == seen
    finally:
        await membership.close()
