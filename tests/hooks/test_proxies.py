"""The connect / subscribe / publish / rpc proxies against a real backend process
(tests/hooks/backend_app.py): allow, refuse, rewrite, timeout and backend-down, on /ws,
over HTTP publish and on Socket.IO's handshake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import socketio

from tests.channels.helpers import Channels, Refused
from tests.hooks.backend_app import SECRET
from tests.hooks.conftest import Backend
from tests.support.server import RunningServer
from tests.support.services import free_port
from tests.support.wire import Closed, Wire
from tidings.protocol.codes import CloseCode, MsgType

Factory = Callable[..., Awaitable[RunningServer]]


async def _node(server_factory: Factory, backend: Backend, **overrides: Any) -> RunningServer:
    assert backend.proc.poll() is None
    async with aiohttp.ClientSession() as s, s.post(backend.url + "/reset") as r:
        assert r.status == 200
    settings: dict[str, Any] = {
        "proxy_connect_url": backend.url + "/connect",
        "proxy_subscribe_url": backend.url + "/subscribe",
        "proxy_publish_url": backend.url + "/publish",
        "proxy_rpc_url": backend.url + "/rpc", "proxy_secret": SECRET,
        "proxy_timeout": 1.0}
    settings.update(overrides)
    return await server_factory(**settings)


async def _log(backend: Backend) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(backend.url + "/log") as r:
        return list((await r.json())["requests"])


async def _auth(http: aiohttp.ClientSession, node: RunningServer, token: str,
                device: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[Wire, dict[str, Any]]:
    ws = await http.ws_connect(node.ws_url, headers=headers or {})
    wire = Wire(ws, binary=False)
    body: dict[str, Any] = {"token": token}
    if device:
        body["device_id"] = device
    await wire.send(MsgType.AUTH, body)
    _, rsp = await wire.expect(MsgType.AUTH_RSP)
    return wire, rsp


def _down_url() -> str:
    return f"http://127.0.0.1:{free_port()}/nobody-listens"


async def test_connect_allows_passes_headers_and_refuses(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend)
    user_id, token = await node.quick_user()
    wire, rsp = await _auth(http, node, token, "phone",
                            headers={"X-Request-Id": "req-1", "X-Secret-Thing": "no"})
    assert rsp["success"] and rsp["user_id"] == user_id and rsp["device_id"] == "phone"
    assert "data" not in rsp
    [call] = [c for c in await _log(backend) if c["path"] == "/connect"]
    body = call["body"]
    assert body["token"] == token and body["user_id"] == user_id
    assert body["device_id"] == "phone" and body["transport"] == "websocket"
    assert body["remote"] == "127.0.0.1"
    assert body["headers"]["x-request-id"] == "req-1"
    assert "x-secret-thing" not in body["headers"]  # only proxy_headers pass
    await wire.close()

    wire, rsp = await _auth(http, node, token, "refuse")
    assert not rsp["success"]
    assert rsp["error"] == ("WS_AUTH_FAILED: refused by the application: "
                            "this device is banned")
    assert await wire.closed_with() == CloseCode.AUTH_FAILED


async def test_connect_rewrites_and_accepts_the_applications_own_session(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend)
    _user_id, token = await node.quick_user()
    wire, rsp = await _auth(http, node, token, "rewrite")
    assert rsp["success"] and rsp["device_id"] == "rewritten"
    assert rsp["data"] == {"plan": "gold"}
    await wire.expect(MsgType.SYNC_RSP)
    channels = Channels(wire)
    await channels.subscribe("room:lobby")  # the hook's scopes allow room:* only
    with pytest.raises(Refused) as refused:
        await channels.subscribe("broadcast:news")
    assert refused.value.code == "WS_PERMISSION_DENIED"
    await wire.close()

    other, _ = await node.quick_user()
    wire, rsp = await _auth(http, node, f"app:{other}")  # not a Tidings token
    assert rsp["success"] and rsp["user_id"] == other
    assert rsp["data"] == {"via": "app session"}
    await wire.close()
    wire, rsp = await _auth(http, node, "app:999999")  # the hook names a stranger
    assert not rsp["success"] and "does not exist" in rsp["error"]
    await wire.close()


async def test_connect_timeout_and_backend_down(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend, proxy_timeout=0.5)
    _, token = await node.quick_user()
    wire, rsp = await _auth(http, node, token, "slow")
    assert not rsp["success"] and rsp["error"].startswith("WS_BACKEND_UNAVAILABLE")
    assert await wire.closed_with() == CloseCode.INTERNAL_ERROR  # retry later

    down = await _node(server_factory, backend, proxy_connect_url=_down_url())
    _, token = await down.quick_user()
    wire, rsp = await _auth(http, down, token)
    assert not rsp["success"] and rsp["error"].startswith("WS_BACKEND_UNAVAILABLE")
    await wire.close()

    lenient = await _node(server_factory, backend, proxy_connect_url=_down_url(),
                          proxy_connect_on_error="allow")
    user_id, token = await lenient.quick_user()
    wire, rsp = await _auth(http, lenient, token)
    assert rsp["success"] and rsp["user_id"] == user_id  # the token alone decided
    await wire.close()
    wire, rsp = await _auth(http, lenient, "not-a-token")
    assert not rsp["success"] and rsp["error"].startswith("WS_AUTH_FAILED")
    await wire.close()


async def test_subscribe_hook(server_factory: Factory, backend: Backend,
                              http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend, proxy_timeout=0.5)
    user_id, token = await node.quick_user()
    wire = await Wire.ready(http, node.ws_url, token, "d1")
    channels = Channels(wire)
    assert (await channels.subscribe("room:ok"))["channel"] == "room:ok"
    call = next(c["body"] for c in await _log(backend) if c["path"] == "/subscribe")
    assert call["channel"] == "room:ok" and call["user_id"] == user_id
    assert call["device_id"] == "d1"
    for channel, code in (("room:refuse", "WS_REFUSED_BY_BACKEND"),
                          ("room:slow", "WS_BACKEND_UNAVAILABLE")):
        with pytest.raises(Refused) as refused:
            await channels.subscribe(channel)
        assert refused.value.code == code
    assert "not in room:refuse" in str(await _refusal(channels, "room:refuse"))
    await wire.close()

    for on_error, allowed in (("refuse", False), ("allow", True)):
        down = await _node(server_factory, backend, proxy_subscribe_url=_down_url(),
                           proxy_subscribe_on_error=on_error)
        _, token = await down.quick_user()
        wire = await Wire.ready(http, down.ws_url, token)
        if allowed:
            await Channels(wire).subscribe("room:a")
        else:
            assert (await _refusal(Channels(wire), "room:a")).code == "WS_BACKEND_UNAVAILABLE"
        await wire.close()


async def _refusal(channels: Channels, channel: str) -> Refused:
    try:
        await channels.subscribe(channel)
    except Refused as exc:
        return exc
    raise AssertionError(f"subscribing to {channel} was not refused")


async def test_publish_hook_on_ws_and_http(server_factory: Factory, backend: Backend,
                                           http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend, proxy_timeout=0.5)
    user_id, token = await node.quick_user()
    wire = await Wire.ready(http, node.ws_url, token)
    channels = Channels(wire)
    await channels.subscribe("room:pub")
    await channels.publish("room:pub", {"text": "hello"})
    await channels.publish("room:pub", {"cmd": "rewrite", "text": "rude"})
    for cmd, code in (("refuse", "WS_REFUSED_BY_BACKEND"), ("slow", "WS_BACKEND_UNAVAILABLE")):
        with pytest.raises(Refused) as refused:
            await channels.publish("room:pub", {"cmd": cmd})
        assert refused.value.code == code
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(node.http_url + "/api/v1/publish", headers=headers,
                         json={"channel": "room:pub", "data": {"cmd": "rewrite"}}) as r:
        assert r.status == 200, await r.text()
    async with http.post(node.http_url + "/api/v1/publish", headers=headers,
                         json={"channel": "room:pub", "data": {"cmd": "refuse"}}) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "REFUSED_BY_BACKEND"
    got = await channels.until(3)
    assert [p["data"] for p in got] == [
        {"text": "hello"}, {"text": "[moderated]", "by": user_id},
        {"text": "[moderated]", "by": user_id}]
    transports = [c["body"]["transport"] for c in await _log(backend)
                  if c["path"] == "/publish"]
    assert transports == ["websocket"] * 4 + ["http"] * 2
    await wire.close()

    lenient = await _node(server_factory, backend, proxy_publish_url=_down_url(),
                          proxy_publish_on_error="allow")
    _, token = await lenient.quick_user()
    wire = await Wire.ready(http, lenient.ws_url, token)
    ack = await Channels(wire).publish("room:x", {"cmd": "rewrite"})
    assert ack["offset"] == 1  # stored as sent: the backend was down and allowed
    await wire.close()


async def test_rpc(server_factory: Factory, backend: Backend,
                   http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend, proxy_timeout=0.5)
    user_id, token = await node.quick_user()
    wire = await Wire.ready(http, node.ws_url, token)
    seq = await wire.send(MsgType.RPC, {"method": "echo", "data": {"n": 1}})
    got_seq, rsp = await wire.expect(MsgType.RPC_RSP)
    assert got_seq == seq
    assert rsp == {"method": "echo", "data": {"echo": {"n": 1}, "user_id": user_id}}
    for method, code in (("refuse", "WS_REFUSED_BY_BACKEND"),
                         ("slow", "WS_BACKEND_UNAVAILABLE")):
        seq = await wire.send(MsgType.RPC, {"method": method})
        got_seq, err = await wire.expect(MsgType.ERROR)
        assert got_seq == seq and err["code"] == code
    seq = await wire.send(MsgType.RPC, {"method": ""})
    _, err = await wire.expect(MsgType.ERROR)
    assert err["code"] == "WS_INVALID_PAYLOAD"
    await wire.close()

    for url, words in ((_down_url(), "ClientConnectorError"), ("", "no rpc backend")):
        other = await _node(server_factory, backend, proxy_rpc_url=url)
        _, token = await other.quick_user()
        wire = await Wire.ready(http, other.ws_url, token)
        await wire.send(MsgType.RPC, {"method": "echo"})
        _, err = await wire.expect(MsgType.ERROR)
        assert err["code"] == "WS_BACKEND_UNAVAILABLE" and words in err["message"], err
        await wire.close()


async def test_socketio_handshake_goes_through_the_connect_hook(
        server_factory: Factory, backend: Backend) -> None:
    node = await _node(server_factory, backend)
    user_id, token = await node.quick_user()
    for auth, ok in (({"token": token}, True), ({"token": f"app:{user_id}"}, True),
                     ({"token": "app:999999"}, False), ({}, False)):
        client = socketio.AsyncClient(reconnection=False)
        acked: list[Any] = []
        client.on("connection_ack", acked.append)
        try:
            if ok:
                await client.connect(node.http_url, auth=auth, wait_timeout=10)
                assert client.connected
            else:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await client.connect(node.http_url, auth=auth, wait_timeout=10)
        finally:
            await client.disconnect()
    calls = [c["body"] for c in await _log(backend) if c["path"] == "/connect"]
    assert [c["transport"] for c in calls] == ["socket.io"] * 4
    assert calls[0]["user_id"] == user_id and calls[1]["user_id"] == 0


async def test_closed_connection_is_reported_as_closed(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    node = await _node(server_factory, backend)
    wire, rsp = await _auth(http, node, "nonsense")
    assert not rsp["success"] and rsp["error"].startswith("WS_AUTH_FAILED")
    with pytest.raises(Closed):
        while True:
            await wire.recv(5)
