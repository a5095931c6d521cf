"""The registry in Redis, beside the Redis bus (key names in ``tidings.keys``).

Leases are scores in one sorted set (node -> expiry, ms). A user's connections
are a hash (connection -> node); a connection counts while its node's lease is
valid, so a dead node's connections stop counting at its expiry even before a
reaper removes them. An entry's value is ``node|device`` (a node id holds no ``|``;
an entry with no ``|`` has no device). Claim, release and reap are Lua scripts: atomic, so two
nodes can neither both grant the last slot nor both reap one dead node.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from tidings import keys
from tidings.cluster.base import Claim, Held, NodeStatus, Registry, now_ms
from tidings.redis_pool import redis_client

_NODE_CONNECTIONS = keys.node_connections("%s")  # its format, for the claim script

# Splits an entry's value "node|device"; live_count drops entries of dead nodes and
# returns the live count.
_COUNT_LIVE = """
local function split(value)
  local bar = string.find(value, '|', 1, true)
  if not bar then return value, '' end
  return string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
end
local function live_count(user_key, nodes_key, now)
  local all = redis.call('HGETALL', user_key)
  local live = 0
  for i = 1, #all, 2 do
    local node = split(all[i + 1])
    local expiry = redis.call('ZSCORE', nodes_key, node)
    if expiry and tonumber(expiry) > now then
      live = live + 1
    else
      redis.call('HDEL', user_key, all[i])
    end
  end
  return live
end
"""

# KEYS: user conns, nodes, node conns, chosen. ARGV: conn, node, limit, now, user, device,
# node conns key format. Returns {granted, live, {replaced conn keys}}.
_CLAIM = _COUNT_LIVE + """
local live = live_count(KEYS[1], KEYS[2], tonumber(ARGV[4]))
local same = {}
if ARGV[6] ~= '' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local node, device = split(all[i + 1])
    if all[i] ~= ARGV[1] and device == ARGV[6] then same[#same + 1] = {all[i], node} end
  end
end
if live - #same >= tonumber(ARGV[3]) then return {0, live, {}} end
local replaced = {}
for _, entry in ipairs(same) do
  redis.call('HDEL', KEYS[1], entry[1])
  redis.call('HDEL', string.format(ARGV[7], entry[2]), entry[1])
  replaced[#replaced + 1] = entry[1]
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[6])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
return {1, live, replaced}
"""

# KEYS: user conns, nodes, node conns, chosen. ARGV: conn, now, user. Returns {held, live}.
_RELEASE = _COUNT_LIVE + """
local held = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local live = live_count(KEYS[1], KEYS[2], tonumber(ARGV[2]))
if live == 0 then redis.call('HDEL', KEYS[4], ARGV[3]) end
return {held, live}
"""

# KEYS: nodes, node conns, node info. ARGV: node, user conns key format. Returns the
# dead node's user ids, or false if another reaper got it first.
_REAP_ONE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local conns = redis.call('HGETALL', KEYS[2])
local users = {}
for i = 1, #conns, 2 do
  redis.call('HDEL', string.format(ARGV[2], conns[i + 1]), conns[i])
  users[#users + 1] = conns[i + 1]
end
redis.call('DEL', KEYS[2], KEYS[3])
return users
"""


class RedisRegistry(Registry):
    """Leases, connections and chosen statuses in Redis."""

    def __init__(self, url: str, *, node_id: str, address: str, node_timeout: float) -> None:
        super().__init__(node_id=node_id, address=address)
        self._redis: aioredis.Redis = redis_client(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, decode_responses=True)
        self._timeout_ms = int(node_timeout * 1000)
        self._claim: Any = self._redis.register_script(_CLAIM)
        self._release: Any = self._redis.register_script(_RELEASE)
        self._reap_one: Any = self._redis.register_script(_REAP_ONE)
        self._started = now_ms()

    async def start(self) -> None:
        """Register this node with a fresh lease."""
        self._started = now = now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.NODES, {self.node_id: now + self._timeout_ms})
            pipe.hset(keys.node_info(self.node_id), mapping={
                "address": self.address, "pid": os.getpid(), "started_at": now,
                "last_heartbeat": now, "connections": 0})
            await pipe.execute()

    async def close(self) -> None:
        """Remove this node and its connections, then disconnect."""
        try:
            await self._reap_one(keys=[keys.NODES, keys.node_connections(self.node_id),
                                       keys.node_info(self.node_id)],
                                 args=[self.node_id, keys.USER_CONNECTIONS])
        finally:
            await self._redis.aclose()

    async def reset(self) -> None:
        """Disconnect every pooled connection, in use or not (see Registry.reset)."""
        await self._redis.connection_pool.disconnect(inuse_connections=True)

    async def claim(self, user_id: int, conn_id: str, limit: int, *,
                    device_id: str = "") -> Claim:
        """Take a slot atomically, replacing the device's other entries (see module doc)."""
        granted, live, replaced = await self._claim(
            keys=[keys.user_connections(user_id), keys.NODES,
                  keys.node_connections(self.node_id), keys.CHOSEN_PRESENCE],
            args=[self.key(conn_id), self.node_id, limit, now_ms(), user_id, device_id,
                  _NODE_CONNECTIONS])
        if granted:
            self._unsettled.add(self.key(conn_id))
        return Claim(bool(granted), int(live), tuple(str(k) for k in replaced or ()))

    async def release(self, user_id: int, conn_id: str) -> int | None:
        """Give the slot back; return the user's live connections left (None: no entry)."""
        key = self.key(conn_id)
        self._releasing(key)  # the hub let go of it: keep it from the heartbeat
        try:
            held, live = await self._release(
                keys=[keys.user_connections(user_id), keys.NODES,
                      keys.node_connections(self.node_id), keys.CHOSEN_PRESENCE],
                args=[key, now_ms(), user_id])
        finally:
            self._unsettled.discard(key)
        return int(live) if int(held) else None

    async def _live_nodes(self) -> set[str]:
        return {str(n) for n in await self._redis.zrangebyscore(
            keys.NODES, f"({now_ms()}", "+inf")}

    async def online(self, user_ids: list[int]) -> set[int]:
        """Users with a connection on a live node."""
        if not user_ids:
            return set()
        live = await self._live_nodes()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hvals(keys.user_connections(user_id))
            holders = await pipe.execute()
        return {u for u, values in zip(user_ids, holders, strict=True)
                if any(str(v).split("|", 1)[0] in live for v in values)}

    async def choose(self, user_id: int, status: str | None) -> None:
        """Record (or clear) a chosen status."""
        if status is None:
            await self._redis.hdel(keys.CHOSEN_PRESENCE, str(user_id))
        else:
            await self._redis.hset(keys.CHOSEN_PRESENCE, str(user_id), status)

    async def chosen(self, user_ids: list[int]) -> dict[int, str]:
        """Chosen statuses of these users."""
        if not user_ids:
            return {}
        values = await self._redis.hmget(keys.CHOSEN_PRESENCE, [str(u) for u in user_ids])
        return {u: str(v) for u, v in zip(user_ids, values, strict=True) if v is not None}

    async def heartbeat(self, connections: Callable[[], Held]) -> list[int]:
        """Renew the lease and reconcile this node's connection entries."""
        self._beat_begins()
        held = {str(k): int(v) for k, v in
                (await self._redis.hgetall(keys.node_connections(self.node_id))).items()}
        now = now_ms()
        wanted = {self.key(c): u for c, u in connections().items()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.NODES, {self.node_id: now + self._timeout_ms})
            pipe.hset(keys.node_info(self.node_id), mapping={
                "address": self.address, "pid": os.getpid(), "started_at": self._started,
                "last_heartbeat": now, "connections": len(wanted)})
            stale = self._stale(held, wanted)
            for key in stale:
                pipe.hdel(keys.node_connections(self.node_id), key)
                pipe.hdel(keys.user_connections(held[key]), key)
            written = []
            for key, (user_id, device_id) in wanted.items():
                if held.get(key) != user_id:
                    written.append(key)
                    pipe.hset(keys.node_connections(self.node_id), key, user_id)
                    pipe.hset(keys.user_connections(user_id), key,
                              f"{self.node_id}|{device_id}")
            await pipe.execute()
        ghosts = self._ghosts(written)
        if ghosts:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in ghosts:
                    pipe.hdel(keys.node_connections(self.node_id), key)
                    pipe.hdel(keys.user_connections(wanted[key][0]), key)
                await pipe.execute()
        return sorted({held[key] for key in stale})

    async def reap(self) -> list[int]:
        """Reap expired nodes; return their users now offline everywhere."""
        dead = [str(n) for n in await self._redis.zrangebyscore(keys.NODES, "-inf", now_ms())]
        users: set[int] = set()
        for node in dead:
            reaped = await self._reap_one(
                keys=[keys.NODES, keys.node_connections(node), keys.node_info(node)],
                args=[node, keys.USER_CONNECTIONS])
            if reaped:
                users.update(int(u) for u in reaped)
        if not users:
            return []
        still = await self.online(sorted(users))
        gone = sorted(users - still)
        if gone:
            await self._redis.hdel(keys.CHOSEN_PRESENCE, *[str(u) for u in gone])
        return gone

    async def nodes(self) -> list[NodeStatus]:
        """Live nodes, oldest first."""
        live = sorted(await self._live_nodes())
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in live:
                pipe.hgetall(keys.node_info(node))
            infos = await pipe.execute()
        out = []
        for node, info in zip(live, infos, strict=True):
            if not info:
                continue
            get = {str(k): str(v) for k, v in info.items()}
            out.append(NodeStatus(node, get.get("address", ""), int(get.get("pid", 0)),
                                  int(get.get("started_at", 0)),
                                  int(get.get("last_heartbeat", 0)),
                                  int(get.get("connections", 0))))
        return sorted(out, key=lambda n: (n.started_at, n.node_id))
