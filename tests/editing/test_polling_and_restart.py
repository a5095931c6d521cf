"""The polling fallback (no WebSocket at all), a node restart between request and
response, and sessions kept or dropped by their heartbeat."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.editing.client import Api
from tests.editing.conftest import NodeFactory
from tests.support.server import RunningServer


async def _pair(node: RunningServer, http: aiohttp.ClientSession) -> tuple[int, Api, Api]:
    alice_id, alice_token = await node.quick_user()
    bob_id, bob_token = await node.quick_user()
    alice = Api(http, node.http_url, alice_token, alice_id)
    bob = Api(http, node.http_url, bob_token, bob_id)
    ws = await alice.workspace()
    await alice.add_member(ws, bob.user_id)
    return ws, alice, bob


async def test_a_polling_only_client_gets_the_same_outcome(
        node: RunningServer, http: aiohttp.ClientSession) -> None:
    ws, alice, bob = await _pair(node, http)
    a, b = alice.tab(ws, 2), bob.tab(ws, 2)
    await a.start()
    await b.start()
    assert (await a.pending()).body == {"requests": []}
    request = (await b.request()).body["request"]
    # The editor polls pending-requests and sees the request with its countdown.
    polled = (await a.pending()).body["requests"]
    assert [r["id"] for r in polled] == [request["id"]]
    assert 0 < polled[0]["expires_in_ms"] <= 30_000
    assert (await b.request_status(request["id"])).body["request"]["status"] == "pending"
    assert (await a.status()).body["pending_request"]["id"] == request["id"]
    assert (await a.respond(request["id"], approved=True)).status == 200
    # The requester polls request-status and learns it is now the editor.
    status = (await b.request_status(request["id"])).body["request"]
    assert status["status"] == "approved" and status["responded_at"] is not None
    assert (await b.heartbeat()).body["editing"] is True
    assert (await a.heartbeat()).body["editing"] is False
    assert (await a.pending()).body == {"requests": []}


async def test_a_polling_requester_sees_the_expiry_without_the_job(
        node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(takeover_timeout=0.5, editing_sweep_interval=3600)
    ws, alice, bob = await _pair(node, http)
    a, b = alice.tab(ws, 2), bob.tab(ws, 2)
    await a.start()
    await b.start()
    request = (await b.request()).body["request"]
    await asyncio.sleep(0.7)
    assert (await a.pending()).body == {"requests": []}  # past its deadline: not shown
    status = (await b.request_status(request["id"])).body["request"]
    assert (status["status"], status["reason"], status["expires_in_ms"]) == (
        "expired", "timeout", 0)
    # A new request is accepted at once: the stale one no longer blocks the resource.
    assert (await b.request()).status == 201


async def test_a_node_restart_between_request_and_response_loses_nothing(
        node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    first = await node_factory()
    ws, alice, bob = await _pair(first, http)
    a, b = alice.tab(ws, 8), bob.tab(ws, 8)
    await a.start()
    await b.start()
    a_sock = await a.connect()
    request = (await b.request()).body["request"]
    await a_sock.next("takeover_request")
    reading = asyncio.ensure_future(a_sock.ws.receive(timeout=5))  # as a browser would
    await first.stop()
    closed = await reading
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert a_sock.ws.close_code == 1001

    second = await node_factory()  # same database, new process state, new port
    a.api, b.api = a.api.on(second.http_url), b.api.on(second.http_url)
    a_sock, b_sock = await a.connect(), await b.connect()
    # The reconnecting sockets' snapshots carry what the database knows.
    assert [r["id"] for r in a_sock.snapshot["pending_requests"]] == [request["id"]]
    assert a_sock.snapshot["editing"] is True
    assert [r["id"] for r in b_sock.snapshot["my_requests"]] == [request["id"]]
    assert (await a.respond(request["id"], approved=True)).status == 200
    assert (await b_sock.next("takeover_response"))["approved"] is True
    assert (await a_sock.next("editing_ended"))["reason"] == "taken_over"
    assert b_sock.snapshot["editing"] is False
    assert (await b.status()).body["editor"]["session_id"] == b.session_id


async def test_a_silent_editor_times_out_and_an_open_socket_keeps_a_session(
        node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(editing_session_ttl=1.5, editing_sweep_interval=0.2)
    ws, alice, bob = await _pair(node, http)
    a, b = alice.tab(ws, 6), bob.tab(ws, 6)
    await a.start()  # the editor, with neither socket nor heartbeat
    await b.start()
    b_sock = await b.connect()  # bob never heartbeats over HTTP: his socket does it
    gone = await b_sock.next("editing_ended", timeout=6)
    assert gone == {"workspace_id": ws, "resource_id": 6, "session_id": a.session_id,
                    "user_id": alice.user_id, "reason": "timed_out", "editor": None}
    assert (await a.heartbeat()).code == "SESSION_NOT_FOUND"
    await asyncio.sleep(2.0)  # longer than the TTL: bob's session is still there
    assert (await b.heartbeat()).status == 200
    assert (await bob.tab(ws, 6).start()).body["editing"] is True


async def test_http_heartbeats_keep_an_editor(
        node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(editing_session_ttl=1.0, editing_sweep_interval=0.2)
    ws, alice, _ = await _pair(node, http)
    a = alice.tab(ws, 1)
    started = await a.start()
    assert started.body["heartbeat_interval_ms"] == 333
    for _ in range(6):
        await asyncio.sleep(0.3)
        assert (await a.heartbeat()).body["editing"] is True
