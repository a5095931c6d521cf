"""The registry interface: nodes with leases, connections by user, chosen statuses.

A node holds a *lease* that it renews every ``heartbeat_interval``; a node whose
lease is older than ``node_timeout`` is dead, and its connections no longer
count — for the per-user connection limit, for presence — whether or not anyone
has cleaned them up yet. Every node also *reaps* dead nodes on each heartbeat:
exactly one node wins each dead node (an atomic delete), removes its
connections and announces its users offline. So a node killed without saying
goodbye has its users shown offline within ``node_timeout`` + one heartbeat.

Each connection's entry records its device. A claim by a device that already
holds an entry (a reconnect: its old socket may be dead, on a killed node or not
yet noticed, or still open) *replaces* that entry, on whatever node it is, so a
reconnecting device never counts against itself; the caller closes the replaced
connections wherever they are still open (see cluster/replace.py).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

import msgspec


def now_ms() -> int:
    """Wall-clock milliseconds (leases are compared across processes)."""
    return time.time_ns() // 1_000_000


class Claim(msgspec.Struct, frozen=True):
    """Outcome of asking for a connection slot."""

    granted: bool
    live_before: int  # the user's live connections in the cluster before this one
    # Cluster keys (``node/conn``) of the same device's older connections whose entries
    # this claim removed (only when granted); they are closed wherever still open.
    replaced: tuple[str, ...] = ()


Held = dict[str, tuple[int, str]]
"""A node's connections as the heartbeat reports them: conn id -> (user id, device id)."""


class NodeStatus(msgspec.Struct, frozen=True):
    """One live node, for ``GET /api/v1/cluster/nodes``."""

    node_id: str
    address: str
    pid: int
    started_at: int
    last_heartbeat: int
    connections: int


class Registry(abc.ABC):
    """Cluster-wide connection and presence state, shared by every node."""

    def __init__(self, *, node_id: str, address: str) -> None:
        self.node_id = node_id
        self.address = address
        # Keys of this node's entries that the hub does not report yet (claimed, not yet
        # added) or no more (removed, release under way). The heartbeat leaves them alone:
        # dropping one as stale made its release find no entry and skip the user's
        # offline announcement (the cluster presence flake of 2026-11-23).
        self._unsettled: set[str] = set()
        # Keys released while a heartbeat runs: it read the hub's connections before, so
        # it may be writing their entries back; it removes them again (_ghosts).
        self._released_in_beat: set[str] | None = None

    def settled(self, conn_id: str) -> None:
        """The hub now holds the connection a granted claim was for: from here on the
        heartbeat reconciles its entry like any other."""
        self._unsettled.discard(self.key(conn_id))

    def _stale(self, held: dict[str, int], wanted: Held) -> list[str]:
        """Entries of this node the hub no longer reports, in-flight ones excepted."""
        return [k for k, u in held.items()
                if wanted.get(k, (None, ""))[0] != u and k not in self._unsettled]

    def _releasing(self, key: str) -> None:
        """A release of ``key`` begins (the hub has let go of its connection)."""
        self._unsettled.add(key)
        if self._released_in_beat is not None:
            self._released_in_beat.add(key)

    def _beat_begins(self) -> None:
        self._released_in_beat = set()

    def _ghosts(self, written: list[str]) -> list[str]:
        """Of the entries a heartbeat wrote back, those whose connection was released
        meanwhile: they must go again, or the user keeps a connection that is gone (it
        counted against the per-user limit until the next beat)."""
        released, self._released_in_beat = self._released_in_beat or set(), None
        return [k for k in written if k in released]

    def key(self, conn_id: str) -> str:
        """A connection's cluster-wide name (connection ids are unique per node only)."""
        return f"{self.node_id}/{conn_id}"

    @abc.abstractmethod
    async def start(self) -> None:
        """Register this node with a fresh lease."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Remove this node and its connections (a clean shutdown)."""

    async def reset(self) -> None:
        """Drop every pooled connection to the registry, so that the next operations open
        fresh ones. Called when a heartbeat fails: after a partition every pooled
        connection may be dead without a word (no FIN, no RST), and each would otherwise
        be found one statement timeout at a time, while the node's entries (a user who
        left meanwhile, say) stay as they were. Operations in flight on them fail.
        A registry without connections (memory) has nothing to drop."""
        return None

    @abc.abstractmethod
    async def claim(self, user_id: int, conn_id: str, limit: int, *,
                    device_id: str = "") -> Claim:
        """Take a connection slot for the user if they hold fewer than ``limit`` live
        connections in the cluster, not counting those of ``device_id``; atomic across
        nodes. When granted, the entries of the device's other connections are removed
        (listed in ``Claim.replaced``). An empty ``device_id`` replaces nothing.
        A granted entry stays *unsettled* (the heartbeat keeps it) until ``settled``
        or ``release``."""

    @abc.abstractmethod
    async def release(self, user_id: int, conn_id: str) -> int | None:
        """Give the slot back; return the user's live connections left in the cluster, or
        None if the connection held no entry any more: a newer connection of its device
        replaced it, or its node was reaped while cut off. Then whoever removed the
        entry settled the user's presence, and the caller must not announce it again."""

    @abc.abstractmethod
    async def online(self, user_ids: list[int]) -> set[int]:
        """Those of ``user_ids`` with at least one live connection on any node."""

    @abc.abstractmethod
    async def choose(self, user_id: int, status: str | None) -> None:
        """Record the status a user chose (None: back to plain online)."""

    @abc.abstractmethod
    async def chosen(self, user_ids: list[int]) -> dict[int, str]:
        """Chosen statuses of those users who have one."""

    @abc.abstractmethod
    async def heartbeat(self, connections: Callable[[], Held]) -> list[int]:
        """Renew the lease and make the registry hold this node's connections (conn id
        -> (user id, device id), from ``connections()``): re-registers them if the lease had lapsed
        and others reaped this node, and drops entries a failed release left behind.
        Unsettled entries (claimed but not yet in the hub, or being released) are kept:
        the hub does not report them, yet they are not stale. Returns the users whose
        entries it dropped (the caller announces those left with none offline: their
        release failed, so nobody else did)."""

    @abc.abstractmethod
    async def reap(self) -> list[int]:
        """Remove nodes whose lease expired; return their users who are now offline
        everywhere (each dead node is reaped by exactly one caller)."""

    @abc.abstractmethod
    async def nodes(self) -> list[NodeStatus]:
        """Live nodes, oldest first."""
