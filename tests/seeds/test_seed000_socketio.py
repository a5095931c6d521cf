"""Seed 000 over Socket.IO, sent exactly as the seed writes it, through the real npm
``socket.io-client`` against a real ``tidings serve`` on SQLite and PostgreSQL.

Seed sections covered:
- §2.2.1 connection: ``GET /socket.io/?transport=websocket`` (and the default
  polling-then-upgrade), token verified in the handshake.
- §2.2.2 occupy protocol: ``workstation_occupy`` ``{workstationId, duration?}`` and
  the whole §2.2.2 request message ``{header, payload: {action: "occupy_workstation",
  data: {workstationId, userId, duration}, metadata}}``; the answer ``occupy_result``
  ``{success, workstationId, occupiedBy, occupiedAt, expiresAt?, message?}`` as the
  acknowledgement and as an event (§2.2.2's response message when sent wrapped);
  ``workstation_release``; the same rules and atomicity as REST.
- §5.1 example ids (``"Engineering-001"``) as ``workstationId``, and the
  ``workstation_update`` event reaching the department's room.
- §6.4 rooms: ``join`` ``{dept: "Engineering"}``.
- §7.5 / §7.6 CORS and Origin whitelist: preflights to the REST API and
  ``/socket.io`` from a listed origin succeed, from others get no CORS headers.
- §2.2 (``ConnectionLimiter``), §4.1 (429 when over the limit) and seed 001 §6.1:
  caps in all and per client address on ``/ws``, ``/socket.io`` and the editing
  socket, refused before the upgrade with 429 and ``Retry-After``, counted in
  ``/metrics`` and ``/api/metrics``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.seeds.socketio_helpers import SeedClient, SeedNode, install_socketio_client

pytestmark = pytest.mark.slow

VUE_ORIGIN = "http://localhost:5173"  # the seed's Vue dev server


@pytest.fixture(scope="module", autouse=True)
def _socketio_client() -> None:
    install_socketio_client()


@pytest.fixture
def node(store_url: str, tmp_path: Path) -> Iterator[SeedNode]:
    """``tidings serve`` with the demo building, accepting the seed's Vue origin."""
    started = SeedNode(store_url, tmp_path, {"TIDINGS_CORS_ORIGINS": VUE_ORIGIN})
    try:
        yield started
    finally:
        started.stop()


Start = Callable[..., Awaitable[SeedClient]]


@pytest.fixture
async def client() -> AsyncIterator[Start]:
    """``await client(url, token, websocket_only=False)`` → a connected seed client."""
    started: list[SeedClient] = []

    async def start(url: str, token: str, websocket_only: bool = False) -> SeedClient:
        options: dict[str, Any] = {"auth": {"token": token}}
        if websocket_only:  # §2.2.1: GET /socket.io/?transport=websocket
            options["transports"] = ["websocket"]
        sio = await SeedClient.start(url, options)
        started.append(sio)
        await sio.connected()
        return sio

    yield start
    for sio in started:
        await sio.close()


def _iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_occupy_and_release_as_the_seed_sends_them(node: SeedNode, client: Start) -> None:
    alice = await client(node.url, node.tokens["alice"], websocket_only=True)
    bob = await client(node.url, node.tokens["bob"])
    joined = await bob.call("join", {"dept": "Engineering"})
    assert joined["ok"] is True

    result = await alice.call("workstation_occupy",
                              {"workstationId": "Engineering-001", "duration": 60})
    assert result["success"] is True
    assert result["workstationId"] == "Engineering-001"
    assert result["occupiedBy"] == str(node.ids["alice"])
    occupied_at, expires_at = _iso(result["occupiedAt"]), _iso(result["expiresAt"])
    assert dt.timedelta(minutes=59) < expires_at - occupied_at < dt.timedelta(minutes=61)
    assert await alice.event("occupy_result") == result  # the event, for seed listeners

    # §5.1: the change reaches the department's room, with the seed's fields.
    update = await bob.event("workstation_update",
                             where=lambda p: p["data"].get("id") == result["id"])
    assert update["type"] == "workstation_update" and update["data"]["status"] == "occupied"

    # The REST rules: someone else may neither take nor release it.
    taken = await bob.call("workstation_occupy", {"workstationId": "Engineering-001"})
    assert taken["success"] is False and taken["code"] == "WORKSTATION_OCCUPIED"
    assert taken["workstationId"] == "Engineering-001" and taken["message"]
    refused = await bob.call("workstation_release", {"workstationId": "Engineering-001"})
    assert refused["success"] is False and refused["code"] == "NOT_OCCUPANT"

    released = await alice.call("workstation_release", {"workstationId": "Engineering-001"})
    assert released["success"] is True and released["status"] == "available"
    assert released["occupiedBy"] is None
    assert (await alice.event("release_result"))["success"] is True
    status, desk = await node.rest("GET", f"/api/workstations/{result['id']}")
    assert status == 200 and desk["status"] == "available"


async def test_the_whole_2_2_2_message_gets_the_2_2_2_response(node: SeedNode,
                                                                client: Start) -> None:
    alice = await client(node.url, node.tokens["alice"])
    request = {  # WorkstationOccupyRequest, field for field
        "header": {"messageId": "msg_1", "messageType": "workstation_occupy",
                   "timestamp": 1735732800000, "version": "1.0.0", "source": "client"},
        "payload": {"action": "occupy_workstation",
                    "data": {"workstationId": "Engineering-002",
                             "userId": str(node.ids["alice"]), "duration": 30,
                             "priority": "normal"},
                    "metadata": {"userId": str(node.ids["alice"]), "sessionId": "s1",
                                 "clientIP": "127.0.0.1"}}}
    answer = await alice.call("workstation_occupy", request)
    assert answer["header"]["messageType"] == "workstation_status_update"
    assert answer["header"]["version"] == "1.0.0" and answer["header"]["source"] == "server"
    assert answer["payload"]["action"] == "occupy_result"
    data = answer["payload"]["data"]
    assert data["success"] is True and data["workstationId"] == "Engineering-002"
    assert data["occupiedBy"] == str(node.ids["alice"]) and data["expiresAt"]
    assert set(answer["payload"]["metadata"]) == {"transactionId", "processingTime"}
    assert (await alice.event("occupy_result"))["payload"]["data"] == data

    # Another user's userId is refused, not silently replaced by the token's.
    request["payload"]["data"].update(workstationId="Engineering-003",
                                      userId=str(node.ids["bob"]))
    forged = (await alice.call("workstation_occupy", request))["payload"]["data"]
    assert forged["success"] is False and forged["code"] == "NOT_YOUR_USER_ID"


async def test_numeric_ids_and_bad_requests(node: SeedNode, client: Start) -> None:
    alice = await client(node.url, node.tokens["alice"])
    _, listing = await node.rest("GET", "/api/workstations?q=Engineering-004")
    desk_id = listing["workstations"][0]["id"]
    by_number = await alice.call("workstation_occupy", {"workstationId": desk_id})
    assert by_number["success"] is True and by_number["workstationId"] == desk_id
    by_digits = await alice.call("workstation_release", {"workstationId": str(desk_id)})
    assert by_digits["success"] is True

    for body, code in [({}, "INVALID_BODY"), ("Engineering-001", "INVALID_BODY"),
                       ({"workstationId": "Engineering-001", "duration": -5}, "INVALID_BODY"),
                       ({"workstationId": "Engineering-001", "duration": "1h"},
                        "INVALID_BODY"),
                       ({"workstationId": "No-Such-Desk"}, "WORKSTATION_NOT_FOUND"),
                       ({"workstationId": ["x"]}, "INVALID_BODY"),
                       ({"workstationId": 999_999}, "WORKSTATION_NOT_FOUND")]:
        answer = await alice.call("workstation_occupy", body)
        assert answer["success"] is False and answer["code"] == code, (body, answer)
        assert answer["message"]


async def test_two_sockets_racing_for_one_desk_one_wins(node: SeedNode, client: Start) -> None:
    alice = await client(node.url, node.tokens["alice"], websocket_only=True)
    bob = await client(node.url, node.tokens["bob"], websocket_only=True)
    results = await asyncio.gather(
        alice.call("workstation_occupy", {"workstationId": "Engineering-005"}),
        bob.call("workstation_occupy", {"workstationId": "Engineering-005"}))
    assert sorted(r["success"] for r in results) == [False, True], results
    loser = next(r for r in results if not r["success"])
    assert loser["code"] in ("WORKSTATION_OCCUPIED", "BOOKING_CONFLICT")
    winner = next(r for r in results if r["success"])
    _, desk = await node.rest("GET", f"/api/workstations/{winner['id']}")
    assert desk["status"] == "occupied" and str(desk["occupied_by"]) == winner["occupiedBy"]


# CORS (§7.5: strict CORS/Origin whitelist; the Vue app runs on :5173)

async def _preflight(url: str, origin: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.options(url, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}) as r:
        return r.status, r.headers


async def test_cors_preflights_on_rest_and_socketio(node: SeedNode) -> None:
    rest = node.url + "/api/workstations"
    status, headers = await _preflight(rest, VUE_ORIGIN)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == VUE_ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
    status, headers = await _preflight(rest, "http://evil.example")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers

    # The actual requests: answers (errors too) readable by the listed origin only.
    for token in (node.tokens["alice"], "wrong"):
        async with aiohttp.ClientSession() as http, http.get(rest, headers={
                "Origin": VUE_ORIGIN, "Authorization": f"Bearer {token}"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == VUE_ORIGIN, r.status
    async with aiohttp.ClientSession() as http, http.get(rest, headers={
            "Origin": "http://evil.example",
            "Authorization": f"Bearer {node.tokens['alice']}"}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers

    sio = node.url + "/socket.io/?EIO=4&transport=polling"
    status, headers = await _preflight(sio, VUE_ORIGIN)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == VUE_ORIGIN
    status, headers = await _preflight(sio, "http://evil.example")
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_ws_and_socketio_share_one_origin_rule(store_url: str, tmp_path: Path) -> None:
    """A listed origin with other case and a trailing slash matches on both."""
    node = SeedNode(store_url, tmp_path, {"TIDINGS_ALLOWED_ORIGINS": "https://App.Example/"},
                    demo=False)
    try:
        async with aiohttp.ClientSession() as http:
            for origin, allowed in (("https://app.example", True),
                                    ("https://other.example", False)):
                async with http.get(node.url + "/ws", headers={
                        "Origin": origin, "Connection": "Upgrade", "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
                    assert (r.status == 101) is allowed, (origin, r.status)
                async with http.get(node.url + "/socket.io/?EIO=4&transport=polling",
                                    headers={"Origin": origin}) as r:
                    assert (r.status == 200) is allowed, (origin, r.status)
    finally:
        node.stop()


# Connection caps (§2.2 ConnectionLimiter, §4.1 "连接数超限 → 429", seed 001 §6.1)

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


async def _refused(http: aiohttp.ClientSession, url: str, address: str, code: str,
                   upgrade: bool = True) -> None:
    headers = {"X-Forwarded-For": address, **(UPGRADE if upgrade else {})}
    async with http.get(url, headers=headers) as r:
        assert r.status == 429, (url, r.status)
        assert r.headers["Retry-After"] == "5"
        assert (await r.json())["error"]["code"] == code


async def _open_slots(node: SeedNode, want: int) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            caps: dict[str, Any] = (await node.metrics_json())["connection_caps"]
            if caps["open"] == want:
                return caps
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_caps_refuse_with_429_before_the_upgrade(store_url: str, tmp_path: Path) -> None:
    """3 sockets per node, 2 per address; 127.0.0.1 is a trusted proxy, so the test
    speaks for several client addresses with X-Forwarded-For."""
    node = SeedNode(store_url, tmp_path, {"TIDINGS_MAX_CONNECTIONS": "3",
                                             "TIDINGS_MAX_CONNECTIONS_PER_IP": "2",
                                             "TIDINGS_TRUSTED_PROXIES": "127.0.0.1/32"},
                    demo=False)
    ws, sio, editing = (node.url + "/ws", node.url + "/socket.io/?EIO=4&transport=polling",
                        node.url + "/api/v1/ws/editing/es_0123456789abcdef")
    try:
        async with aiohttp.ClientSession() as http:
            first = [await http.ws_connect(ws, headers={"X-Forwarded-For": "10.0.0.1"})
                     for _ in range(2)]
            await _refused(http, ws, "10.0.0.1", "TOO_MANY_CONNECTIONS_PER_IP")
            await _refused(http, sio, "10.0.0.1", "TOO_MANY_CONNECTIONS_PER_IP", upgrade=False)
            await _refused(http, editing, "10.0.0.1", "TOO_MANY_CONNECTIONS_PER_IP")
            other = await http.ws_connect(ws, headers={"X-Forwarded-For": "10.0.0.2"})
            await _refused(http, ws, "10.0.0.3", "TOO_MANY_CONNECTIONS")
            await _refused(http, sio, "10.0.0.3", "TOO_MANY_CONNECTIONS", upgrade=False)
            caps = await _open_slots(node, 3)
            assert caps["refused"] == {"address": 3, "node": 2}
            assert caps["max_connections"] == 3 and caps["max_connections_per_ip"] == 2
            async with http.get(node.url + "/metrics") as r:
                text = await r.text()
            assert 'tidings_connections_refused_total{cap="address"} 3.0' in text
            assert 'tidings_connections_refused_total{cap="node"} 2.0' in text
            assert "tidings_connection_slots 3.0" in text

            # A closed socket gives its slot back; a Socket.IO session holds one
            # across its polling requests and upgrade, until it ends.
            await first[0].close()
            await _open_slots(node, 2)
            vue = await SeedClient.start(node.url, {
                "auth": {"token": node.tokens["alice"]},
                "extraHeaders": {"X-Forwarded-For": "10.0.0.3"}})
            try:
                await vue.connected()
                await _open_slots(node, 3)
                await _refused(http, ws, "10.0.0.4", "TOO_MANY_CONNECTIONS")
            finally:
                await vue.close()
            await _open_slots(node, 2)
            # A request refused by its endpoint (no token) gives its slot back at once.
            async with http.get(editing, headers=UPGRADE) as r:
                assert r.status == 401
            assert (await _open_slots(node, 2))["open"] == 2
            for sock in (first[1], other):
                await sock.close()
            await _open_slots(node, 0)
    finally:
        node.stop()
