"""The editing WebSocket: who may open it, what a client may send, the listing."""

from __future__ import annotations

import aiohttp

from tests.editing.client import Api
from tests.support.server import RunningServer
from tidings.store.base import now_ms


async def test_socket_access(node: RunningServer, team: tuple[int, list[Api]],
                             http: aiohttp.ClientSession) -> None:
    ws, (alice, bob, *_) = team
    a = alice.tab(ws, 1)
    await a.start()
    url = node.http_url.replace("http://", "ws://") + "/api/v1/ws/editing/"

    async def refused(path: str, **kwargs: object) -> int:
        try:
            sock = await http.ws_connect(url + path, **kwargs)  # type: ignore[arg-type]
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await sock.close()
        return 101

    assert await refused(a.session_id) == 401
    assert await refused(a.session_id, params={"token": "tdg_" + "x" * 43}) == 401
    bob_auth = {"Authorization": f"Bearer {bob.token}"}
    assert await refused(a.session_id, headers=bob_auth) == 404  # alice's session
    assert await refused("es_doesnotexist000", headers=bob_auth) == 404
    assert await refused("../../etc", headers=bob_auth) == 404
    assert await refused(a.session_id, params={"token": alice.token},
                         headers={"Origin": "https://evil.example"}) == 403
    # A browser passes the token in the query string.
    assert await refused(a.session_id, params={"token": alice.token}) == 101


async def test_client_frames(node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, *_) = team
    a = alice.tab(ws, 1)
    await a.start()
    sock = await a.connect()
    assert sock.snapshot["session_id"] == a.session_id
    assert sock.snapshot["pending_requests"] == [] and sock.snapshot["my_requests"] == []
    await sock.ws.send_str('{"type": "ping"}')
    assert (await sock.recv())["type"] == "pong"
    for bad, code in (("not json", "BAD_FRAME"), ('{"data": {}}', "BAD_FRAME"),
                      ('{"type": "takeover"}', "UNKNOWN_TYPE")):
        await sock.ws.send_str(bad)
        event = await sock.recv()
        assert (event["type"], event["data"]["code"]) == ("error", code)
    await sock.ws.send_bytes(b"\x00\x01")
    assert (await sock.recv())["data"]["code"] == "BAD_FRAME"
    # Still open and serving.
    await sock.ws.send_str('{"type": "ping"}')
    assert (await sock.recv())["type"] == "pong"
    # A frame over the limit closes the socket with 1009, nothing else.
    await sock.ws.send_str('{"type": "ping", "data": {"x": "' + "y" * 10_000 + '"}}')
    msg = await sock.ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
    assert (await a.heartbeat()).status == 200


async def test_connected_sessions_are_listed(node: RunningServer,
                                             team: tuple[int, list[Api]],
                                             users: object) -> None:
    ws, (alice, bob, *_) = team
    (outsider,) = await users(1)  # type: ignore[operator]
    a, b = alice.tab(ws, 1), bob.tab(ws, 2)
    await a.start()
    await b.start()
    await a.connect()
    second = alice.tab(ws, 1)
    second.session_id = a.session_id
    await second.connect()  # two sockets on one session
    listed = (await bob.call("GET", "/api/v1/ws/sessions")).body["sessions"]
    assert [(s["session_id"], s["sockets"], s["user_id"], s["resource_id"]) for s in listed] \
        == [(a.session_id, 2, alice.user_id, 1)]
    assert (await outsider.call("GET", "/api/v1/ws/sessions")).body == {"sessions": []}
    narrowed = await bob.call("GET", "/api/v1/ws/sessions", params={"workspace_id": "999"})
    assert narrowed.body == {"sessions": []}
    assert a.socket is not None and second.socket is not None
    await a.socket.close()
    await second.socket.close()
    for _ in range(50):
        if not (await bob.call("GET", "/api/v1/ws/sessions")).body["sessions"]:
            break
    assert (await bob.call("GET", "/api/v1/ws/sessions")).body == {"sessions": []}


async def test_revoking_the_token_closes_its_editing_sockets(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, *_) = team
    a, b = alice.tab(ws, 1), bob.tab(ws, 1)
    await a.start()
    await b.start()
    a_sock, b_sock = await a.connect(), await b.connect()
    # Through the API: the RevokeEvent on the bus.
    current = await alice.call("GET", "/api/v1/tokens/current")
    assert (await alice.call("DELETE", f"/api/v1/tokens/{current.body['id']}")).status == 200
    closed = await a_sock.ws.receive(timeout=5)
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4403)
    # Straight in the store (as `tidings token revoke` does): the node's poll finds it.
    token_id = (await bob.call("GET", "/api/v1/tokens/current")).body["id"]
    await node.node.store.revoke_tokens(None, [token_id], now_ms())
    closed = await b_sock.ws.receive(timeout=5)
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4403)
