"""The registry in PostgreSQL, beside the PostgreSQL bus.

Three unlogged tables (membership is rebuilt by heartbeats after a crash, so it
is not worth a WAL write), created by the registry itself so that it works
beside any store. A connection counts while its node's lease is valid. Claims
take a per-user advisory lock for the transaction, so two nodes cannot both grant
the last slot; reaping deletes a dead node with ``DELETE … RETURNING``, which
exactly one reaper wins.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import asyncpg

from tidings.cluster.base import Claim, Held, NodeStatus, Registry, now_ms
from tidings.store.postgres_pool import close_pool, keep_session

_SCHEMA = """
CREATE UNLOGGED TABLE IF NOT EXISTS tidings_nodes (
    node_id        TEXT   PRIMARY KEY,
    address        TEXT   NOT NULL,
    pid            BIGINT NOT NULL,
    started_at     BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    connections    BIGINT NOT NULL DEFAULT 0
);
CREATE UNLOGGED TABLE IF NOT EXISTS tidings_connections (
    conn_key TEXT   PRIMARY KEY,
    user_id  BIGINT NOT NULL,
    node_id  TEXT   NOT NULL
);
ALTER TABLE tidings_connections ADD COLUMN IF NOT EXISTS device_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS tidings_connections_user ON tidings_connections (user_id);
CREATE INDEX IF NOT EXISTS tidings_connections_node ON tidings_connections (node_id);
CREATE UNLOGGED TABLE IF NOT EXISTS tidings_chosen_presence (
    user_id BIGINT PRIMARY KEY,
    status  TEXT   NOT NULL
);
"""
# Several nodes may start at once: CREATE … IF NOT EXISTS can still race on the catalog.
SCHEMA_LOCK = 0x7469_6467_0030
USER_LOCK_SPACE = 0x7469_6467  # pg_advisory_xact_lock(space, user_id) serialises claims

_UPSERT_NODE = """
INSERT INTO tidings_nodes (node_id, address, pid, started_at, last_heartbeat, expires_at,
                           connections)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, pid = EXCLUDED.pid,
    last_heartbeat = EXCLUDED.last_heartbeat, expires_at = EXCLUDED.expires_at,
    connections = EXCLUDED.connections"""

_LIVE = """
SELECT c.conn_key, c.device_id FROM tidings_connections c JOIN tidings_nodes n USING (node_id)
WHERE c.user_id = $1 AND n.expires_at > $2"""

_LIVE_COUNT = """
SELECT count(*) FROM tidings_connections c JOIN tidings_nodes n USING (node_id)
WHERE c.user_id = $1 AND n.expires_at > $2"""

_ONLINE = """
SELECT DISTINCT c.user_id FROM tidings_connections c JOIN tidings_nodes n USING (node_id)
WHERE c.user_id = ANY($1::bigint[]) AND n.expires_at > $2"""

_REAP = """
WITH dead AS (DELETE FROM tidings_nodes WHERE expires_at <= $1 RETURNING node_id)
DELETE FROM tidings_connections WHERE node_id IN (SELECT node_id FROM dead)
RETURNING user_id"""

_NODES = """
SELECT node_id, address, pid, started_at, last_heartbeat, connections FROM tidings_nodes
WHERE expires_at > $1 ORDER BY started_at, node_id"""


class PostgresRegistry(Registry):
    """Leases, connections and chosen statuses in PostgreSQL tables."""

    def __init__(self, url: str, *, node_id: str, address: str, node_timeout: float) -> None:
        super().__init__(node_id=node_id, address=address)
        self._url = url
        self._timeout_ms = int(node_timeout * 1000)
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._started = now_ms()

    async def _get_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                # A partitioned link is silent: bound every statement, as the
                # heartbeat and releases must fail rather than wait (see membership.py).
                self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=4,
                                                       timeout=5, command_timeout=5,
                                                       reset=keep_session)
        return self._pool

    async def start(self) -> None:
        """Create the tables if needed and register this node."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(_SCHEMA)
        self._started = now = now_ms()
        await pool.execute(_UPSERT_NODE, self.node_id, self.address, os.getpid(), now, now,
                           now + self._timeout_ms, 0)

    async def close(self) -> None:
        """Remove this node and its connections, then disconnect."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM tidings_connections WHERE node_id = $1",
                                   self.node_id)
                await conn.execute("DELETE FROM tidings_nodes WHERE node_id = $1", self.node_id)
        finally:
            await close_pool(pool)

    async def reset(self) -> None:
        """Terminate the pool (its statements in flight fail at once); the next
        operation makes a new one (see Registry.reset)."""
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    async def claim(self, user_id: int, conn_id: str, limit: int, *,
                    device_id: str = "") -> Claim:
        """Take a slot under the user's advisory lock, replacing the device's other rows."""
        pool = await self._get_pool()
        key = self.key(conn_id)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", USER_LOCK_SPACE,
                               user_id & 0x7FFF_FFFF)
            rows = await conn.fetch(_LIVE, user_id, now_ms())
            same = [str(r[0]) for r in rows if device_id and r[1] == device_id and r[0] != key]
            if len(rows) - len(same) >= limit:
                return Claim(False, len(rows))
            if same:
                await conn.execute("DELETE FROM tidings_connections WHERE conn_key = ANY($1)",
                                   same)
            await conn.execute(
                "INSERT INTO tidings_connections (conn_key, user_id, node_id, device_id) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (conn_key) DO NOTHING",
                key, user_id, self.node_id, device_id)
            self._unsettled.add(key)
            return Claim(True, len(rows), tuple(same))

    async def release(self, user_id: int, conn_id: str) -> int | None:
        """Give the slot back; return the user's live connections left (None: no entry)."""
        key = self.key(conn_id)
        self._releasing(key)  # the hub let go of it: keep it from the heartbeat
        try:
            return await self._release(user_id, key)
        finally:
            self._unsettled.discard(key)

    async def _release(self, user_id: int, key: str) -> int | None:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", USER_LOCK_SPACE,
                               user_id & 0x7FFF_FFFF)
            held = await conn.fetchval(
                "DELETE FROM tidings_connections WHERE conn_key = $1 RETURNING 1", key)
            live = int(await conn.fetchval(_LIVE_COUNT, user_id, now_ms()))
            if live == 0:
                await conn.execute("DELETE FROM tidings_chosen_presence WHERE user_id = $1",
                                   user_id)
            return live if held is not None else None

    async def online(self, user_ids: list[int]) -> set[int]:
        """Users with a connection on a live node."""
        if not user_ids:
            return set()
        pool = await self._get_pool()
        return {int(r[0]) for r in await pool.fetch(_ONLINE, user_ids, now_ms())}

    async def choose(self, user_id: int, status: str | None) -> None:
        """Record (or clear) a chosen status."""
        pool = await self._get_pool()
        if status is None:
            await pool.execute("DELETE FROM tidings_chosen_presence WHERE user_id = $1", user_id)
        else:
            await pool.execute(
                "INSERT INTO tidings_chosen_presence (user_id, status) VALUES ($1, $2) "
                "ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status", user_id, status)

    async def chosen(self, user_ids: list[int]) -> dict[int, str]:
        """Chosen statuses of these users."""
        if not user_ids:
            return {}
        pool = await self._get_pool()
        rows = await pool.fetch("SELECT user_id, status FROM tidings_chosen_presence "
                                "WHERE user_id = ANY($1::bigint[])", user_ids)
        return {int(r[0]): str(r[1]) for r in rows}

    async def heartbeat(self, connections: Callable[[], Held]) -> list[int]:
        """Renew the lease and reconcile this node's connection rows."""
        pool = await self._get_pool()
        self._beat_begins()
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT conn_key, user_id FROM tidings_connections WHERE node_id = $1",
                self.node_id)
            held = {str(r[0]): int(r[1]) for r in rows}
            now = now_ms()
            wanted = {self.key(c): u for c, u in connections().items()}
            stale = self._stale(held, wanted)  # now: with the hub's view of this instant
            await conn.execute(_UPSERT_NODE, self.node_id, self.address, os.getpid(),
                               self._started, now, now + self._timeout_ms, len(wanted))
            if stale:
                await conn.execute("DELETE FROM tidings_connections WHERE conn_key = ANY($1)",
                                   stale)
            missing = [(k, u, d) for k, (u, d) in wanted.items() if held.get(k) != u]
            if missing:
                await conn.executemany(
                    "INSERT INTO tidings_connections (conn_key, user_id, node_id, device_id) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (conn_key) DO UPDATE "
                    "SET user_id = EXCLUDED.user_id, node_id = EXCLUDED.node_id, "
                    "device_id = EXCLUDED.device_id",
                    [(k, u, self.node_id, d) for k, u, d in missing])
        # After the commit: a release that starts later sees the rows written and deletes
        # its own; one that started before is in _ghosts.
        ghosts = self._ghosts([k for k, _, _ in missing])
        if ghosts:
            await pool.execute("DELETE FROM tidings_connections WHERE conn_key = ANY($1)",
                               ghosts)
        return sorted({held[key] for key in stale})

    async def reap(self) -> list[int]:
        """Reap expired nodes; return their users now offline everywhere."""
        pool = await self._get_pool()
        rows = await pool.fetch(_REAP, now_ms())
        users = sorted({int(r[0]) for r in rows})
        if not users:
            return []
        gone = sorted(set(users) - await self.online(users))
        if gone:
            await pool.execute("DELETE FROM tidings_chosen_presence "
                               "WHERE user_id = ANY($1::bigint[])", gone)
        return gone

    async def nodes(self) -> list[NodeStatus]:
        """Live nodes, oldest first."""
        pool = await self._get_pool()
        return [NodeStatus(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in await pool.fetch(_NODES, now_ms())]
