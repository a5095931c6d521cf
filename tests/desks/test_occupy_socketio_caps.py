"""Occupy/release over Socket.IO and the connection caps on an in-process node (the
seed-literal runs against ``tidings serve`` are in tests/seeds/test_seed000_socketio.py;
these also reach the node's own state: slots held and given back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.desks.conftest import DeskNode
from tests.seeds.socketio_helpers import SeedClient, install_socketio_client
from tests.support.server import RunningServer

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
async def seed_clients() -> AsyncIterator[Callable[..., Any]]:
    install_socketio_client()
    started: list[SeedClient] = []

    async def start(url: str, options: dict[str, Any]) -> SeedClient:
        client = await SeedClient.start(url, options)
        started.append(client)
        return client

    yield start
    for client in started:
        await client.close()


async def test_occupy_release_and_refusals(desks: DeskNode,
                                           seed_clients: Callable[..., Any]) -> None:
    alice = await seed_clients(desks.url, {"auth": {"token": desks.tokens[0]}})
    bob = await seed_clients(desks.url, {"auth": {"token": desks.tokens[1]},
                                         "transports": ["websocket"]})
    await alice.connected()
    await bob.connected()
    took = await alice.call("workstation_occupy", {"workstationId": "Engineering-001",
                                                   "duration": 1.5})
    assert took["success"] is True and took["occupiedBy"] == str(desks.user_ids[0])
    assert took["expiresAt"] > took["occupiedAt"]
    assert (await alice.event("occupy_result"))["id"] == took["id"]
    lost = await bob.call("workstation_occupy", {"workstationId": took["id"]})
    assert lost["success"] is False and lost["code"] == "WORKSTATION_OCCUPIED"
    wrapped = {"header": {"messageId": "m1", "messageType": "workstation_release"},
               "payload": {"action": "release_workstation",
                           "data": {"workstationId": "Engineering-001",
                                    "userId": str(desks.user_ids[0])}}}
    forged = await bob.call("workstation_release", wrapped)  # bob claims to be alice
    assert forged["payload"]["action"] == "release_result"
    assert forged["payload"]["data"]["code"] == "NOT_YOUR_USER_ID"
    mine = await alice.call("workstation_release", wrapped)
    assert mine["payload"]["data"]["success"] is True
    assert mine["header"]["messageType"] == "workstation_status_update"
    again = await alice.call("workstation_release", {"workstationId": "Engineering-001"})
    assert again["code"] == "WORKSTATION_NOT_OCCUPIED"
    for body in (None, [], {"workstationId": "x" * 101}, {"workstationId": True},
                 {"workstationId": "Engineering-002", "duration": 10**9}):
        answer = await alice.call("workstation_occupy", body)
        assert answer["success"] is False and answer["code"] == "INVALID_BODY", body
    status, desk = await desks.call("GET", f"/api/workstations/{took['id']}")
    assert status == 200 and desk["status"] == "available"


async def _slots(node: RunningServer, want: int) -> None:
    async with asyncio.timeout(20):
        while node.node.caps.open != want:
            await asyncio.sleep(0.05)


async def test_caps_hold_a_slot_per_socket_and_give_it_back(
        server_factory: Callable[..., Any], seed_clients: Callable[..., Any]) -> None:
    node: RunningServer = await server_factory(max_connections=2, max_connections_per_ip=1,
                                               trusted_proxies=["127.0.0.1"],
                                               cors_origins=["http://localhost:5173"])
    _, token = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(node.http_url + "/ws", headers={"X-Forwarded-For": "10.0.0.1"})
        await _slots(node, 1)
        async with http.get(node.http_url + "/ws",
                            headers={**UPGRADE, "X-Forwarded-For": "10.0.0.1"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "5"
        vue = await seed_clients(node.http_url, {
            "auth": {"token": token}, "extraHeaders": {"X-Forwarded-For": "10.0.0.2"}})
        await vue.connected()
        await _slots(node, 2)
        async with http.get(node.http_url + "/socket.io/?EIO=4&transport=polling",
                            headers={"X-Forwarded-For": "10.0.0.3"}) as r:
            assert r.status == 429
            assert (await r.json())["error"]["code"] == "TOO_MANY_CONNECTIONS"
        _, metrics = await _get_json(http, node.http_url + "/api/metrics")
        assert metrics["connection_caps"]["refused"] == {"node": 1, "address": 1}
        # The client upgrades to WebSocket after its connect. Killed in the middle of
        # that, it leaves a session whose long-poll it abandoned, which ends only at its
        # ping timeout (45 s): close it once upgraded, as a page would be.
        assert node.node.desks is not None
        sessions = node.node.desks.sockets.sio.sessions
        async with asyncio.timeout(20):
            while not all(s.transport == "websocket" for s in sessions.values()):
                await asyncio.sleep(0.05)
        await vue.close()
        await _slots(node, 1)
        await ws.close()
        await _slots(node, 0)
        assert node.node.caps.by_address == {}

        # CORS on the same node: a listed origin's preflight and answers, another's not.
        preflight = {"Access-Control-Request-Method": "PUT"}
        async with http.options(node.http_url + "/api/workstations/1", headers={
                **preflight, "Origin": "http://LOCALHOST:5173/"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"]
            assert r.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
        async with http.options(node.http_url + "/api/workstations/1", headers={
                **preflight, "Origin": "http://localhost:5174"}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with http.get(node.http_url + "/api/health",
                            headers={"Origin": "http://localhost:5173"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
            assert r.headers["Access-Control-Expose-Headers"] == "Retry-After"
            assert "Origin" in r.headers.getall("Vary")


async def _get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json()
