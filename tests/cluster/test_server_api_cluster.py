"""The server API across two nodes in this process (a Redis or a PostgreSQL bus, one
PostgreSQL store): an admin asking node A sees and acts on what node B holds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from tests.channels.helpers import Channels
from tests.conftest import PostgresServer
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType


@pytest.fixture(params=["redis-bus", "postgres-bus"])
async def pair(request: pytest.FixtureRequest, postgres_server: PostgresServer
               ) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two nodes on one PostgreSQL store, on a Redis bus or on the PostgreSQL bus."""
    name = f"sapi_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    bus = request.getfixturevalue("redis_url") if request.param == "redis-bus" else url
    settings = {"bus_url": bus, "heartbeat_interval": 0.2, "node_timeout": 1.0}
    a = await RunningServer(url, **settings).start()
    b = await RunningServer(url, **settings).start()
    try:
        yield a, b
    finally:
        await b.stop()
        await a.stop()
        postgres_server.drop_database(name)


async def call(http: aiohttp.ClientSession, node: RunningServer, method: str, path: str,
               token: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, node.http_url + path, json=body,
                            headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def test_connections_presence_and_disconnect_across_nodes(pair) -> None:
    a, b = pair
    root = await a.node.store.create_user("root", "!")
    admin, _ = await a.node.service.auth.issue(root.id, scopes=("admin",))
    alice, alice_token = await a.quick_user()
    bob, bob_token = await b.quick_user()
    async with aiohttp.ClientSession() as http:
        on_a = Channels(await Wire.ready(http, a.ws_url, alice_token, "a1"))
        on_b = Channels(await Wire.ready(http, b.ws_url, bob_token, "b1"))
        bob_also_a = await Wire.ready(http, a.ws_url, bob_token, "b2")
        await on_a.subscribe("room:both")
        await on_b.subscribe("room:both")
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(b.http_url, auth={"token": bob_token}, wait_timeout=10)
        try:
            status, body = await call(http, a, "GET",
                                      f"/api/v1/admin/users/{bob}/connections", admin)
            assert status == 200 and body["missing_nodes"] == []
            seen = sorted((c["node"], c["transport"], c["device_id"])
                          for c in body["connections"])
            assert seen == sorted([(b.node.node_id, "ws", "b1"), (a.node.node_id, "ws", "b2"),
                                   (b.node.node_id, "socketio", "")])

            status, body = await call(http, a, "GET", "/api/v1/admin/channels", admin)
            assert body["channels"] == [{"channel": "room:both", "subscribers": 2}]
            status, body = await call(http, b, "GET",
                                      "/api/v1/admin/channels/room:both/presence", admin)
            assert sorted((c["user_id"], c["node"]) for c in body["clients"]) == sorted(
                [(alice, a.node.node_id), (bob, b.node.node_id)])

            status, body = await call(http, a, "POST", "/api/v1/admin/unsubscribe", admin,
                                      {"user_id": bob, "channel": "room:both"})
            assert body == {"unsubscribed": 1, "missing_nodes": []}
            _, body = await call(http, a, "GET", "/api/v1/admin/channels", admin)
            assert body["channels"] == [{"channel": "room:both", "subscribers": 1}]

            # One connection on the other node, by its key.
            [key] = [f"{b.node.node_id}/{c.id}" for c in b.node.hub.connections(bob)]
            status, body = await call(http, a, "POST", "/api/v1/admin/disconnect", admin,
                                      {"user_id": bob, "connection": key, "code": 4100,
                                       "reason": "moved"})
            assert body == {"closed": 1, "missing_nodes": []}
            assert await on_b.wire.closed_with() == 4100
            await bob_also_a.send(MsgType.PING, {})
            await bob_also_a.expect(MsgType.PONG, skip=(MsgType.PRESENCE_PUSH,))
            assert sio.connected

            # The rest, on both nodes and both transports.
            status, body = await call(http, b, "POST", "/api/v1/admin/disconnect", admin,
                                      {"user_id": bob})
            assert body == {"closed": 2, "missing_nodes": []}
            assert await bob_also_a.closed_with() == 4000
            async with asyncio.timeout(10):
                while sio.connected:
                    await asyncio.sleep(0.05)
            await on_a.wire.send(MsgType.PING, {})
            await on_a.wire.expect(MsgType.PONG, skip=(MsgType.PRESENCE_PUSH,
                                                       MsgType.CHANNEL_PRESENCE_PUSH))
        finally:
            await sio.disconnect()


async def test_a_node_that_does_not_answer_is_named(pair) -> None:
    a, b = pair
    root = await a.node.store.create_user("root", "!")
    admin, _ = await a.node.service.auth.issue(root.id, scopes=("admin",))
    user, token = await b.quick_user()
    async with aiohttp.ClientSession() as http:
        wire = await Wire.ready(http, b.ws_url, token, "phone")
        await b.node.bus.close()  # B still heartbeats (listed as live) but hears nothing
        status, body = await call(http, a, "GET", f"/api/v1/admin/users/{user}/connections",
                                  admin)
        assert status == 200
        assert body == {"user_id": user, "connections": [], "missing_nodes": [b.node.node_id]}
        await wire.close()
