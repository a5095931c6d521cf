"""Cluster features on nodes in the test's own process (two nodes, one Redis bus and
one PostgreSQL store), where the SDK is not needed and coverage is measured."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import PostgresServer
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.bus import RevokeEvent
from tidings.protocol.codes import CloseCode, MsgType


async def admin_token(server: RunningServer) -> str:
    user = await server.node.store.create_user(f"root{secrets.token_hex(3)}", "!")
    token, _ = await server.node.service.auth.issue(user.id, scopes=("admin",))
    return token


@pytest.fixture
async def pair(redis_url: str, postgres_server: PostgresServer
               ) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    name = f"pair_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    settings = {"bus_url": redis_url, "heartbeat_interval": 0.2, "node_timeout": 1.0}
    a = await RunningServer(url, **settings).start()
    b = await RunningServer(url, **settings).start()
    try:
        yield a, b
    finally:
        await b.stop()
        await a.stop()
        postgres_server.drop_database(name)


async def test_presence_and_chat_cross_two_nodes(pair) -> None:
    a, b = pair
    alice, alice_token = await a.quick_user()
    bob, bob_token = await b.quick_user()
    async with aiohttp.ClientSession() as http:
        wa = await Wire.ready(http, a.ws_url, alice_token, "laptop")
        wb = await Wire.ready(http, b.ws_url, bob_token, "phone")
        ack = await wa.chat(bob, "across")
        _, push = await wb.expect(MsgType.CHAT_PUSH)
        assert push["message_id"] == ack["message_id"]
        await wb.send(MsgType.PRESENCE, {"status": "away"})
        async with asyncio.timeout(5):
            while True:
                _, p = await wa.expect(MsgType.PRESENCE_PUSH, skip=(MsgType.RECEIPT_PUSH,))
                if p == {"user_id": bob, "status": "away"}:
                    break
        assert await a.node.service.presence.status(bob) == "away"
        await wb.close()
        async with asyncio.timeout(5):
            while True:
                _, p = await wa.expect(MsgType.PRESENCE_PUSH, skip=(MsgType.RECEIPT_PUSH,))
                if p == {"user_id": bob, "status": "offline"}:
                    break
        await wa.close()
    assert alice != bob


async def test_a_revoked_token_closes_its_connections_on_every_node(pair) -> None:
    a, b = pair
    user, token = await a.quick_user()
    async with aiohttp.ClientSession() as http:
        on_b = await Wire.ready(http, b.ws_url, token, "phone")
        [conn] = b.node.hub.connections(user)
        assert conn.token_id is not None
        await a.node.bus.publish(RevokeEvent([conn.token_id]))
        assert await on_b.closed_with() == CloseCode.TOKEN_REVOKED


async def test_heartbeats_keep_both_nodes_listed_and_healthy(pair) -> None:
    a, b = pair
    root = await admin_token(a)
    _, token = await a.quick_user()
    async with aiohttp.ClientSession() as http:
        wire = await Wire.ready(http, b.ws_url, token, "x")
        await asyncio.sleep(1.5)  # several heartbeats, longer than node_timeout
        async with http.get(a.http_url + "/api/v1/cluster/nodes",
                            headers={"Authorization": f"Bearer {root}"}) as r:
            assert r.status == 200
            body = await r.json()
        assert body["node_id"] == a.node.node_id
        counts = {n["node_id"]: n["connections"] for n in body["nodes"]}
        assert counts == {a.node.node_id: 0, b.node.node_id: 1}
        async with http.get(b.http_url + "/api/health") as r:
            health = await r.json()
        assert (r.status, health["bus"]) == (200, "ok")
        assert "tidings_cluster_nodes 2.0" in (await (await http.get(
            a.http_url + "/metrics")).text())
        await wire.close()


async def test_the_dashboard_overview_lists_every_node_and_the_bus_health(pair) -> None:
    a, b = pair
    root = await admin_token(a)
    _, token = await a.quick_user()
    async with aiohttp.ClientSession() as http:
        wire = await Wire.ready(http, b.ws_url, token, "x")
        wanted = {a.http_url: (True, 0), b.http_url: (False, 1)}
        async with asyncio.timeout(5):  # b's count reaches the registry with its heartbeat
            while True:
                async with http.get(a.http_url + "/api/v1/admin/overview",
                                    headers={"Authorization": f"Bearer {root}"}) as r:
                    assert r.status == 200
                    body = await r.json()
                if {n["url"]: (n["self"], n["connections"]) for n in body["nodes"]} == wanted:
                    break
                await asyncio.sleep(0.1)
        await wire.close()
    assert body["bus"] == {"backend": "redis", "status": "ok"}


async def test_the_nodes_route_is_for_admins_only(server_factory_memory) -> None:
    node = server_factory_memory
    root = await admin_token(node)
    _, user = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        for token, status in ((root, 200), (user, 403), ("tdg_nope", 401)):
            async with http.get(node.http_url + "/api/v1/cluster/nodes",
                                headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == status
                if status == 200:
                    [only] = (await r.json())["nodes"]
                    assert only["node_id"] == node.node.node_id


@pytest.fixture
async def server_factory_memory(tmp_path) -> AsyncIterator[RunningServer]:
    node = await RunningServer(f"sqlite:///{tmp_path / 't.db'}").start()
    try:
        yield node
    finally:
        await node.stop()
