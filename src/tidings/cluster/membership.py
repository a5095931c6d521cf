"""This node's membership: its lease, and the reaping of nodes that died.

Every ``heartbeat_interval`` the node renews its lease (re-registering its
connections if others had reaped it while it was cut off) and reaps dead nodes;
users left without a live connection anywhere are announced offline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tidings.cluster.base import Held, Registry
from tidings.hub.hub import Hub
from tidings.metrics import Metrics

log = logging.getLogger(__name__)

Announce = Callable[[int], Awaitable[None]]
Refresh = Callable[[], Awaitable[None]]


class Membership:
    """Runs the heartbeat of one node."""

    def __init__(self, registry: Registry, hub: Hub, announce_offline: Announce,
                 metrics: Metrics, *, interval: float, node_timeout: float = 15.0,
                 refresh: Refresh | None = None) -> None:
        self.registry = registry
        # Other links to renew with the registry's when a beat fails (the store's): a
        # node cut from its registry was most likely cut from its database too.
        self._refresh = refresh
        self._hub = hub
        self._announce = announce_offline
        self._metrics = metrics
        self._interval = interval
        # A beat that takes longer than this has failed: half the lease, so that a
        # node whose registry link went silent resets it and beats again before its
        # lease runs out (at most the registries' own 5 s statement timeout).
        self._beat_timeout = min(node_timeout / 2, 5.0)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = True

    async def start(self) -> None:
        """Register this node, then beat in the background."""
        await self.registry.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def close(self) -> None:
        """Stop beating and leave the cluster."""
        self._stopping = True  # a client library may turn our cancel into its own error
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5.0)
            self._task = None
        try:
            await self.registry.close()
        except Exception as exc:  # the registry may be the thing that is gone
            log.warning("leaving the cluster registry failed: %s", exc)

    def _connections(self) -> Held:
        return {c.id: (c.user_id, c.device_id) for c in self._hub.all_connections()}

    async def beat(self) -> None:
        """One heartbeat: renew, reap, announce."""
        dropped = await self.registry.heartbeat(self._connections)
        if dropped:  # entries whose release had failed (a partition): nobody announced them
            still = await self.registry.online(dropped)
            for user_id in dropped:
                if user_id not in still:
                    log.info("user %d went offline (a connection's release had failed)",
                             user_id)
                    await self._announce(user_id)
        for user_id in await self.registry.reap():
            log.info("user %d went offline with a dead node", user_id)
            await self._announce(user_id)
        self._metrics.cluster_nodes.set(len(await self.registry.nodes()))

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval)
            try:
                await self._bounded_beat()
                if not self.healthy:
                    log.warning("cluster registry reachable again")
                self.healthy = True
            except Exception as exc:
                if self.healthy:
                    log.warning("heartbeat failed: %s", exc or type(exc).__name__)
                self.healthy = False
                if not isinstance(exc, TimeoutError):  # a timed-out beat reset already
                    await self._reset()

    async def _bounded_beat(self) -> None:
        """One beat, failed with TimeoutError past ``_beat_timeout``. Its statements
        are stopped by resetting the registry's connections rather than by cancelling
        them alone: asyncpg cancels a statement over a new connection, which a
        partition holds as well."""
        beat = asyncio.ensure_future(self.beat())
        try:
            done, _ = await asyncio.wait({beat}, timeout=self._beat_timeout)
            if not done:
                await self._reset()
                beat.cancel()
                await asyncio.wait({beat}, timeout=self._beat_timeout)
                raise TimeoutError(f"no answer within {self._beat_timeout:g} s")
            beat.result()
        finally:
            if not beat.done():
                beat.cancel()
                beat.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _reset(self) -> None:
        """Start the next beat on fresh registry connections (Registry.reset), and let
        the next statements of ``refresh``'s owner use fresh ones too."""
        try:
            await asyncio.wait_for(self.registry.reset(), self._beat_timeout)
            if self._refresh is not None:
                await asyncio.wait_for(self._refresh(), self._beat_timeout)
        except Exception as exc:
            log.debug("resetting the registry connections failed: %s", exc)
