"""The server API (issue 21) on one node: the embedded default (SQLite, memory bus),
every transport for real — raw ``/ws``, a python-socketio client, the editing socket."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.channels.helpers import Channels
from tests.editing.client import Api
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    server = await RunningServer(f"sqlite:///{tmp_path / 'tidings.db'}",
                                 admin_users=["boss"]).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, node: RunningServer, method: str, path: str,
               token: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, node.http_url + path, json=body,
                            headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def admin(node: RunningServer) -> str:
    """A token of an ``admin_users`` member (not the admin scope)."""
    user = await node.node.store.create_user("boss", "!")
    token, _ = await node.node.service.auth.issue(user.id)
    return token


async def until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_connections_of_every_transport_and_disconnects(
        node: RunningServer, http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    user_id, token = await node.quick_user()
    phone = await Wire.ready(http, node.ws_url, token, "phone")
    laptop = await Wire.ready(http, node.ws_url, token, "laptop")
    await Channels(laptop).subscribe("room:lobby")
    sio = socketio.AsyncClient(reconnection=False)
    told: list[Any] = []
    sio.on("disconnect_reason", told.append)
    await sio.connect(node.http_url, auth={"token": token, "floor": 1}, wait_timeout=10)
    api = Api(http, node.http_url, token, user_id)
    workspace = await api.workspace()
    tab = api.tab(workspace, 1)
    await tab.start()
    editing = await tab.connect()

    status, body = await call(http, node, "GET", f"/api/v1/admin/users/{user_id}/connections",
                              boss)
    assert status == 200, body
    assert body["missing_nodes"] == [] and body["user_id"] == user_id
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for c in body["connections"]:
        by_kind.setdefault(c["transport"], []).append(c)
        assert c["user_id"] == user_id and c["key"] == f"{c['node']}/{c['id']}"
        assert c["node"] == node.node.node_id and c["remote"] == "127.0.0.1"
    assert sorted(c["device_id"] for c in by_kind["ws"]) == ["laptop", "phone"]
    [lap] = [c for c in by_kind["ws"] if c["device_id"] == "laptop"]
    assert lap["channels"] == ["room:lobby"]
    assert len(by_kind["socketio"]) == 1 and by_kind["socketio"][0]["channels"] == ["floor:1"]
    assert by_kind["editing"][0]["channels"] == [tab.session_id]

    # One connection, with the operator's code and reason: only that socket closes.
    status, body = await call(http, node, "POST", "/api/v1/admin/disconnect", boss,
                              {"user_id": user_id, "connection": lap["key"], "code": 4321,
                               "reason": "bye"})
    assert (status, body) == (200, {"closed": 1, "missing_nodes": []})
    assert await laptop.closed_with() == 4321
    await phone.send(MsgType.PING, {})
    assert (await phone.expect(MsgType.PONG))[0] > 0
    # Connection ids are unique per node only: another node's "c5" is not this one's.
    [phone_conn] = node.node.hub.connections(user_id)
    status, body = await call(http, node, "POST", "/api/v1/admin/disconnect", boss,
                              {"user_id": user_id, "connection": f"other-node/{phone_conn.id}"})
    assert (status, body) == (200, {"closed": 0, "missing_nodes": []})
    assert not phone_conn.closed

    # Every other connection of the user, on all three transports.
    status, body = await call(http, node, "POST", "/api/v1/admin/disconnect", boss,
                              {"user_id": user_id})
    assert (status, body) == (200, {"closed": 3, "missing_nodes": []})
    assert await phone.closed_with() == 4000
    msg = await editing.ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000,
                                               "disconnected by the server")

    async def sio_gone() -> bool:
        return not sio.connected

    await until(sio_gone)
    assert told == [{"code": 4000, "reason": "disconnected by the server"}]

    async def none_left() -> bool:
        _, left = await call(http, node, "GET",
                             f"/api/v1/admin/users/{user_id}/connections", boss)
        return left["connections"] == []

    await until(none_left)
    await sio.disconnect()


async def test_channels_presence_unsubscribe_and_history(
        node: RunningServer, http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    alice, alice_token = await node.quick_user()
    bob, bob_token = await node.quick_user()
    wa = Channels(await Wire.ready(http, node.ws_url, alice_token, "a"))
    wb = Channels(await Wire.ready(http, node.ws_url, bob_token, "b"))
    await wa.subscribe("room:x")
    await wb.subscribe("room:x")
    await wb.subscribe("news")
    await wa.publish("room:x", {"n": 1})
    await wa.publish("room:x", {"n": 2})
    await wb.until(2)

    status, body = await call(http, node, "GET", "/api/v1/admin/channels", boss)
    assert status == 200
    assert body == {"channels": [{"channel": "room:x", "subscribers": 2},
                                 {"channel": "news", "subscribers": 1}], "missing_nodes": []}
    status, body = await call(http, node, "GET", "/api/v1/admin/channels/room:x/presence",
                              boss)
    assert status == 200
    assert [(c["user_id"], c["device_id"]) for c in body["clients"]] == [(alice, "a"),
                                                                        (bob, "b")]

    status, body = await call(http, node, "POST", "/api/v1/admin/unsubscribe", boss,
                              {"user_id": bob, "channel": "room:x"})
    assert (status, body) == (200, {"unsubscribed": 1, "missing_nodes": []})
    async with asyncio.timeout(5):  # bob is told with an unsolicited UnsubscribeRsp
        while True:
            t, seq, payload = await wb.wire.recv()
            if t == MsgType.UNSUBSCRIBE_RSP:
                assert (seq, payload) == (0, {"channel": "room:x"})
                break
    await wa.publish("room:x", {"n": 3})
    await wb.quiet(0.3)
    assert [p["data"] for p in wb.received] == [{"n": 1}, {"n": 2}]  # not n: 3
    _, body = await call(http, node, "GET", "/api/v1/admin/channels/room:x/presence", boss)
    assert [c["user_id"] for c in body["clients"]] == [alice]

    status, body = await call(http, node, "DELETE", "/api/v1/admin/channels/room:x/history",
                              boss)
    assert (status, body) == (200, {"channel": "room:x", "removed": 3})
    status, page = await call(http, node, "GET", "/api/v1/channels/room:x/history", boss)
    assert status == 200 and page["publications"] == [] and page["offset"] == 3


async def test_update_and_delete_a_user(node: RunningServer,
                                        http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    user_id, token = await node.new_user("carol")
    peer, peer_token = await node.quick_user()
    status, _ = await call(http, node, "GET", f"/api/v1/admin/users?q={user_id}", token)
    assert status == 403
    status, body = await call(http, node, "GET", "/api/v1/admin/users?q=carol", boss)
    assert status == 200 and [u["user_id"] for u in body["users"]] == [user_id]
    status, body = await call(http, node, "PATCH", f"/api/v1/admin/users/{user_id}", boss,
                              {"username": "caroline", "password": "new password!"})
    assert status == 200 and body["username"] == "caroline"
    async with http.post(node.http_url + "/api/v1/auth/login",
                         json={"username": "caroline", "password": "new password!"}) as r:
        assert r.status == 200
    async with http.post(node.http_url + "/api/v1/auth/login",
                         json={"username": "caroline", "password": "correct horse"}) as r:
        assert r.status == 401
    for bad, code in (({}, 422), ({"username": "no spaces"}, 422), ({"password": "short"}, 422),
                      ({"username": "boss"}, 409)):
        status, body = await call(http, node, "PATCH", f"/api/v1/admin/users/{user_id}", boss,
                                  bad)
        assert status == code, (bad, body)
        assert "message" in body["error"]

    wire = await Wire.ready(http, node.ws_url, token, "phone")
    ack = await wire.chat(peer, "kept after deletion")
    status, body = await call(http, node, "DELETE", f"/api/v1/admin/users/{user_id}", boss)
    assert status == 200, body
    assert body["tokens_revoked"] >= 1 and body["missing_nodes"] == []
    assert await wire.closed_with() in (4403, 4000)
    assert await node.node.store.get_user(user_id) is None
    async with http.get(node.http_url + "/api/v1/tokens/current",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401
    kept = await node.node.store.get_message(ack["message_id"])
    assert kept is not None and kept.sender_id == user_id
    status, body = await call(http, node, "DELETE", f"/api/v1/admin/users/{user_id}", boss)
    assert status == 404 and body["error"]["code"] == "USER_NOT_FOUND"
    assert peer_token


async def test_refusals_in_words(node: RunningServer, http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    _, plain = await node.quick_user()
    for method, path, body in (("GET", "/api/v1/admin/channels", None),
                               ("POST", "/api/v1/admin/disconnect", {"user_id": 1}),
                               ("GET", "/api/v1/admin/audit", None),
                               ("DELETE", "/api/v1/admin/users/1", None)):
        status, answer = await call(http, node, method, path, plain, body)
        assert (status, answer["error"]["code"]) == (403, "ADMIN_REQUIRED")
    async with http.get(node.http_url + "/api/v1/admin/channels") as r:
        assert r.status == 401
    for body in ({"user_id": 0}, {"user_id": 1, "code": 1000}, {"user_id": 1, "code": 5000},
                 {"user_id": 1, "connection": "no-slash"}, {"user_id": 1, "reason": "é" * 5},
                 {"user_id": 1, "extra": True}, "not an object"):
        status, answer = await call(http, node, "POST", "/api/v1/admin/disconnect", boss, body)
        assert status in (400, 422), (body, status, answer)
        assert answer["error"]["message"]
    for path in ("/api/v1/admin/users/abc/connections", "/api/v1/admin/users/0/connections",
                 "/api/v1/admin/audit?limit=0", "/api/v1/admin/users?q=",
                 "/api/v1/admin/channels/" + "x" * 300 + "/presence"):
        status, answer = await call(http, node, "GET", path, boss)
        assert status == 400, (path, answer)


async def test_the_audit_log_records_who_did_what(node: RunningServer,
                                                  http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    user_id, token = await node.quick_user()
    status, made = await call(http, node, "POST", "/api/v1/tokens", boss,
                              {"name": "backend", "scopes": ["publish:room:*"]})
    assert status == 201
    await call(http, node, "DELETE", f"/api/v1/tokens/{made['id']}", boss)
    await call(http, node, "POST", "/api/v1/admin/disconnect", boss, {"user_id": user_id})
    await call(http, node, "DELETE", "/api/v1/admin/channels/room:y/history", boss)
    status, body = await call(http, node, "GET", "/api/v1/admin/audit", boss)
    assert status == 200
    entries = body["entries"]
    assert [e["action"] for e in entries] == ["channel.history.remove", "user.disconnect",
                                               "token.revoke", "token.create"]
    assert {e["actor"] for e in entries} == {"boss"}
    assert entries[1]["target"] == f"user:{user_id}"
    assert entries[1]["details"]["code"] == 4000 and entries[1]["remote"] == "127.0.0.1"
    assert entries[3]["details"]["scopes"] == ["publish:room:*"]
    assert all(e["at"] > 0 for e in entries)
    _, tokens_only = await call(http, node, "GET", "/api/v1/admin/audit?action=token", boss)
    assert [e["action"] for e in tokens_only["entries"]] == ["token.revoke", "token.create"]
    _, older = await call(http, node, "GET",
                          f"/api/v1/admin/audit?before={entries[1]['id']}&limit=1", boss)
    assert [e["action"] for e in older["entries"]] == ["token.revoke"]
    assert token and secrets


async def test_publish_as_the_server_and_read_any_history(
        node: RunningServer, http: aiohttp.ClientSession) -> None:
    boss = await admin(node)
    user_id, token = await node.quick_user()
    listener = Channels(await Wire.ready(http, node.ws_url, token, "phone"))
    await listener.subscribe("broadcast:all")  # users may not publish here; the server may
    status, ack = await call(http, node, "POST", "/api/v1/admin/publish", boss,
                             {"channel": "broadcast:all", "data": {"text": "<b>hi</b>"}})
    assert status == 200 and ack["offset"] == 1, ack
    [got] = await listener.until(1)
    assert got["data"] == {"text": "<b>hi</b>"} and got["offset"] == 1
    status, page = await call(http, node, "GET",
                              f"/api/v1/admin/channels/user:{user_id}/history", boss)
    assert status == 200 and page["publications"] == []  # owner-only: readable by admins
    status, page = await call(http, node, "GET", "/api/v1/admin/channels/broadcast:all/history",
                              boss)
    assert [p["data"] for p in page["publications"]] == [{"text": "<b>hi</b>"}]
    assert page["publications"][0]["info"]["device_id"] == "server-api"
    for body, status_code, code in (
            ({"channel": "desks:floor:1", "data": 1}, 403, "PERMISSION_DENIED"),
            ({"channel": "nowhere:x", "data": 1}, 404, "UNKNOWN_CHANNEL"),
            ({"channel": "room:x"}, 422, "INVALID_BODY")):
        status, answer = await call(http, node, "POST", "/api/v1/admin/publish", boss, body)
        assert (status, answer["error"]["code"]) == (status_code, code), answer
    _, log = await call(http, node, "GET", "/api/v1/admin/audit?action=channel.publish", boss)
    assert [e["target"] for e in log["entries"]] == ["channel:broadcast:all"]
