"""Cluster membership: which nodes are alive, which connections each holds, and the
statuses users chose — the per-user state that must be the same on every node."""

from __future__ import annotations

from tidings.cluster.base import Claim, NodeStatus, Registry
from tidings.cluster.memory import MemoryRegistry

__all__ = ["Claim", "MemoryRegistry", "NodeStatus", "Registry", "open_registry"]


def open_registry(bus_url: str, *, node_id: str, address: str, node_timeout: float) -> Registry:
    """The registry that goes with the bus named by ``bus_url`` (same server)."""
    scheme = bus_url.split("://", 1)[0].lower() if "://" in bus_url else ""
    if scheme in ("redis", "rediss"):
        from tidings.cluster.redis import RedisRegistry

        return RedisRegistry(bus_url, node_id=node_id, address=address,
                             node_timeout=node_timeout)
    if scheme in ("postgres", "postgresql"):
        from tidings.cluster.postgres import PostgresRegistry

        return PostgresRegistry(bus_url, node_id=node_id, address=address,
                                node_timeout=node_timeout)
    return MemoryRegistry(node_id=node_id, address=address)
