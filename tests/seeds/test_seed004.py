"""Seed 004 (WebSocket 离线消息队列集成: offline recovery from Redis Streams, one sync
state per device), as the seed writes it, against ``tidings serve`` on SQLite,
PostgreSQL and Redis (the seed's own store; throwaway redis-server).

Sections covered:
- 代码变更 1, the 7 steps of ``handle_socket``: a client id per device, its sync state
  read back, XRANGE of what it missed, sent before live messages, its last id
  tracked, state saved (the seed every 5 s; Tidings on every ack, well within that)
  and on disconnect.
- 代码变更 2, the seed's four integration tests: ``basic_flow``,
  ``with_no_previous_state``, ``multiple_clients_same_conversation_independent_recovery``,
  ``client_sync_state_persistence_and_ttl``.
- 状态管理设计: ``client:sync:{user_id}:{client_id}`` JSON with ``last_message_id`` and
  ``last_sync_at``, 30-day TTL (Redis).
- 关键特性 3: 30-day message retention (``stream_retention``, XTRIM MINID), and on the
  Redis store the desk map and editing served from their SQL side store (issue 15).

Tidings differs where the seed trusts query parameters: a device authenticates with
``MsgAuth`` and names itself with ``device_id`` (the seed's ``client_id``, a fresh UUID
per connection there, which would replay everything on every reconnect), and one
stream per user carries every conversation. See docs/protocol.md "Seed compatibility".
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.seeds.servers import (
    SeedNode,
    SeedSocket,
    User,
    any_node,
    http,
    running_node,
)
from tests.support.nodes import TIDINGS

__all__ = ["any_node", "http"]  # fixtures, imported for pytest


async def send(http: aiohttp.ClientSession, node: SeedNode, sender: User, to: User,
               texts: list[str]) -> list[int]:
    """Chats from ``sender`` to ``to`` over the seed 001 socket; their message ids."""
    sock = await SeedSocket.open(http, node)
    await sock.login(sender)  # as seed 001 does: no device_id, a fresh device each time
    ids = []
    for text in texts:
        seq = await sock.send(2, {"to": to.id, "type": "text", "content": text})
        got, ack = await sock.expect(107)
        assert got == seq
        ids.append(ack["message_id"])
    await sock.close()
    return ids


async def device(http: aiohttp.ClientSession, node: SeedNode, user: User,
                 client_id: str) -> SeedSocket:
    sock = await SeedSocket.open(http, node)
    await sock.login(user, device_id=client_id)
    return sock


async def ack(sock: SeedSocket, message_id: int) -> None:
    await sock.send(3, {"message_id": message_id, "status": "delivered"})


async def wait_recovered(http: aiohttp.ClientSession, node: SeedNode, user: User,
                         client_id: str, expected: list[int]) -> None:
    """Reconnect the device until its recovery equals ``expected`` (an ack is stored a
    moment after it is sent)."""
    async with asyncio.timeout(15):
        while True:
            sock = await device(http, node, user, client_id)
            got = [m["message_id"] for m in sock.offline]
            await sock.close()
            if got == expected:
                return
            await asyncio.sleep(0.2)


async def test_offline_message_recovery_basic_flow(http, any_node) -> None:
    alice, bob = await any_node.user(http), await any_node.user(http)
    phone = await device(http, any_node, bob, "phone")
    first = await send(http, any_node, alice, bob, ["online"])
    _, push = await phone.expect(102)
    assert push["message_id"] == first[0]
    await ack(phone, first[0])
    await phone.close()
    offline = await send(http, any_node, alice, bob, ["while", "you", "were", "away"])
    await wait_recovered(http, any_node, bob, "phone", offline)
    phone = await device(http, any_node, bob, "phone")
    assert [m["content"] for m in phone.offline] == ["while", "you", "were", "away"]
    assert all(m["from"] == alice.id and m["to"] == bob.id for m in phone.offline)
    # 步骤4-6: live messages follow the recovered ones
    later = await send(http, any_node, alice, bob, ["live"])
    _, push = await phone.expect(102)
    assert push["message_id"] == later[0] > offline[-1]
    await phone.close()


async def test_offline_message_recovery_with_no_previous_state(http, any_node) -> None:
    """A client without a sync state starts from "0": everything is recovered."""
    alice, bob = await any_node.user(http), await any_node.user(http)
    sent = await send(http, any_node, alice, bob, ["a", "b", "c"])
    tablet = await device(http, any_node, bob, "new-tablet")
    assert [m["message_id"] for m in tablet.offline] == sent
    await tablet.close()


async def test_multiple_clients_same_conversation_independent_recovery(http, any_node) -> None:
    alice, bob = await any_node.user(http), await any_node.user(http)
    sent = await send(http, any_node, alice, bob, ["1", "2", "3"])
    phone = await device(http, any_node, bob, "phone")
    laptop = await device(http, any_node, bob, "laptop")
    await ack(phone, sent[2])  # the phone has all three,
    await ack(laptop, sent[0])  # the laptop only the first
    await phone.close()
    await laptop.close()
    more = await send(http, any_node, alice, bob, ["4"])
    await wait_recovered(http, any_node, bob, "phone", more)
    await wait_recovered(http, any_node, bob, "laptop", [*sent[1:], *more])


async def test_client_sync_state_persistence(http, any_node, request, tmp_path: Path) -> None:
    """The state outlives the process: another node on the same store reads it."""
    alice, bob = await any_node.user(http), await any_node.user(http)
    sent = await send(http, any_node, alice, bob, ["x", "y"])
    phone = await device(http, any_node, bob, "phone")
    await ack(phone, sent[0])
    await phone.close()
    await wait_recovered(http, any_node, bob, "phone", sent[1:])
    with running_node(request, any_node.store, tmp_path, share=any_node) as other:
        again = await device(http, other, bob, "phone")
        assert [m["message_id"] for m in again.offline] == sent[1:]
        await again.close()


async def redis_client(node: SeedNode) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(node.env["TIDINGS_DATABASE_URL"])


async def test_sync_state_key_and_ttl_on_redis(http, any_node) -> None:
    """状态管理设计: ``client:sync:{user_id}:{client_id}``, JSON, 30-day TTL, written
    within the seed's 5 s sync interval of an ack."""
    if any_node.store != "redis":
        pytest.skip("the seed's Redis keys exist on the Redis store only")
    alice, bob = await any_node.user(http), await any_node.user(http)
    sent = await send(http, any_node, alice, bob, ["x"])
    phone = await device(http, any_node, bob, "phone")
    acked_at = time.time()
    await ack(phone, sent[0])
    raw = await redis_client(any_node)
    key = f"client:sync:{bob.id}:phone"
    async with asyncio.timeout(5):
        while (data := await raw.get(key)) is None:
            await asyncio.sleep(0.05)
    state = json.loads(data)
    assert state["user_id"] == bob.id and state["client_id"] == "phone"
    assert state["last_message_id"] == sent[0]
    assert abs(state["last_sync_at"] / 1000 - acked_at) < 10  # Tidings: milliseconds
    assert 29 * 86400 < await raw.ttl(key) <= 30 * 86400
    # 步骤2: XRANGE after the device's last id finds what it has not confirmed.
    more = await send(http, any_node, alice, bob, ["y"])
    entries = await raw.xrange(f"tidings:inbox:{bob.id}", f"({state['last_message_id']}-0",
                               "+")
    assert [int(e[0].split(b"-")[0]) for e in entries] == more
    conversation = f"tidings:conv:{min(alice.id, bob.id)}:{max(alice.id, bob.id)}"
    assert await raw.xlen(conversation) == 2
    await raw.aclose()
    await phone.close()


async def test_messages_older_than_the_retention_are_trimmed(http, any_node, request,
                                                             tmp_path: Path) -> None:
    """关键特性 3 "30天消息保留": here 2 s, trimmed with XTRIM MINID."""
    if any_node.store != "redis":
        pytest.skip("retention applies to the Redis store (SQL stores keep history)")
    with running_node(request, "redis", tmp_path, stream_retention=2,
                      stream_trim_interval=0.3) as short:
        alice, bob = await short.user(http), await short.user(http)
        old = await send(http, short, alice, bob, ["old", "older"])
        raw = await redis_client(short)
        inbox = f"tidings:inbox:{bob.id}"
        assert await raw.xlen(inbox) == 2
        async with asyncio.timeout(20):
            while await raw.xlen(inbox):
                await asyncio.sleep(0.2)
        assert not await raw.hexists("tidings:messages", str(old[0]))
        conversation = f"tidings:conv:{min(alice.id, bob.id)}:{max(alice.id, bob.id)}"
        assert await raw.xlen(conversation) == 0
        await raw.aclose()
        phone = await device(http, short, bob, "phone")
        assert phone.offline == []  # nothing older than the retention comes back
        new = await send(http, short, alice, bob, ["new"])
        _, push = await phone.expect(102)
        assert push["message_id"] == new[0]
        await phone.close()


def test_retention_default_is_thirty_days() -> None:
    out = subprocess.run([TIDINGS, "serve", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    flat = " ".join(out.split())
    assert "--stream-retention" in flat and "default: 2592000.0" in flat


async def test_desk_map_and_editing_work_on_the_redis_store(http, any_node) -> None:
    """Issue 15: with the Redis store the SQL apps run on ``apps_database_url``."""
    if any_node.store != "redis":
        pytest.skip("the side store exists beside a Redis store only")
    alice, bob = await any_node.user(http), await any_node.user(http)
    async with http.post(any_node.http_url + "/api/v1/workspaces", json={"name": "r"},
                         headers=alice.auth) as r:
        assert r.status == 201, await r.text()
        workspace_id = (await r.json())["id"]
    url = f"{any_node.http_url}/api/v1/workspaces/{workspace_id}/members/{bob.id}"
    async with http.put(url, json={"role": "editor"}, headers=alice.auth) as r:
        assert r.status == 200, await r.text()  # bob never used the apps before
    async with http.get(f"{any_node.http_url}/api/v1/workspaces/{workspace_id}/members",
                        headers=alice.auth) as r:
        names = {m["user_name"] for m in (await r.json())["members"]}
    assert names == {alice.name, bob.name}
    base = f"{any_node.http_url}/api/v1/workspaces/{workspace_id}/resources/1/editing"
    async with http.post(base + "/start", headers=bob.auth) as r:
        assert r.status == 201 and (await r.json())["editing"] is True
    async with http.get(any_node.http_url + "/api/workstations", headers=alice.auth) as r:
        assert r.status == 200, await r.text()


def test_serve_refuses_redis_store_with_a_shared_bus_and_no_apps_database(
        redis_server, tmp_path: Path) -> None:
    """Never silently off: nodes sharing a bus must name the apps' database."""
    env = {"PATH": "/usr/bin:/bin", "TIDINGS_DATABASE_URL": redis_server.url,
           "TIDINGS_BUS_URL": redis_server.url}
    result = subprocess.run([TIDINGS, "serve", "--port", "0"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "apps_database_url" in result.stderr and "apps_enabled=false" in result.stderr
    assert "Traceback" not in result.stderr
