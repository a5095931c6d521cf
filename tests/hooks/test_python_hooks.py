"""``hooks_module``: the hook points as functions of an importable module, for
applications that embed Tidings; and the settings' refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.channels.helpers import Channels, Refused
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.config import Settings, load_settings
from tidings.hooks.backend import load_module_hooks
from tidings.hooks.signing import sign, verify
from tidings.hub.rpc import MAX_CALLS_IN_FLIGHT
from tidings.protocol.codes import MsgType
from tidings.server import Server

Factory = Callable[..., Awaitable[RunningServer]]


async def test_python_hooks(server_factory: Factory, http: aiohttp.ClientSession) -> None:
    node = await server_factory(hooks_module="tests.hooks.py_hooks", proxy_timeout=0.5)
    user_id, token = await node.quick_user()
    ws = await http.ws_connect(node.ws_url)
    refused = Wire(ws, binary=False)
    await refused.send(MsgType.AUTH, {"token": token, "device_id": "refuse"})
    _, rsp = await refused.expect(MsgType.AUTH_RSP)
    assert rsp["error"] == "WS_AUTH_FAILED: refused by the application: not this device"

    wire = await Wire.open(http, node.ws_url)
    rsp = await wire.auth(token)
    assert rsp["data"] == {"hello": user_id}
    await wire.backlog()
    channels = Channels(wire)
    await channels.subscribe("room:fine")
    with pytest.raises(Refused) as exc:
        await channels.subscribe("room:boom")
    assert exc.value.code == "WS_BACKEND_UNAVAILABLE"
    assert "raised RuntimeError" in exc.value.message
    await channels.publish("room:fine", 42)
    assert [p["data"] for p in await channels.until(1)] == [{"wrapped": 42}]
    for method, answer in (("ping", "PING"), ("slow", None), ("bad", None)):
        await wire.send(MsgType.RPC, {"method": method})
        type_, _, payload = await wire.recv()
        if answer is None:
            assert type_ == MsgType.ERROR and payload["code"] == "WS_BACKEND_UNAVAILABLE"
        else:
            assert (type_, payload) == (MsgType.RPC_RSP, {"method": method, "data": answer})
    await wire.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"hooks_module 'no\.such\.module' cannot be imported"):
        load_module_hooks("no.such.module")
    with pytest.raises(ValueError, match="proxy_connect_on_error"):
        load_settings(environ={"TIDINGS_PROXY_CONNECT_ON_ERROR": "maybe"})
    settings = load_settings(environ={"TIDINGS_PROXY_HEADERS": "Cookie, X-Tenant",
                                      "TIDINGS_WEBHOOK_EVENTS": "user.*"})
    assert settings.proxy_headers == ["Cookie", "X-Tenant"]
    assert settings.webhook_events == ["user.*"]
    with pytest.raises(ValueError, match="Redis store keeps no webhook outbox"):
        Server(Settings(database_url="redis://127.0.0.1:1/0", webhook_url="http://x/",
                        apps_enabled=False))
    with pytest.raises(ValueError, match="names no event"):
        Server(Settings(database_url="sqlite:///:memory:", webhook_url="http://x/",
                        webhook_events=["nope"], apps_enabled=False))


async def test_rpc_calls_in_flight_are_bounded_and_cancelled_on_close(
        server_factory: Factory, http: aiohttp.ClientSession) -> None:
    node = await server_factory(hooks_module="tests.hooks.py_hooks", proxy_timeout=30)
    _, token = await node.quick_user()
    wire = await Wire.ready(http, node.ws_url, token)
    for _ in range(MAX_CALLS_IN_FLIGHT):
        await wire.send(MsgType.RPC, {"method": "slow"})
    seq = await wire.send(MsgType.RPC, {"method": "slow"})
    got_seq, err = await wire.expect(MsgType.ERROR)
    assert (got_seq, err["code"]) == (seq, "WS_RATE_LIMITED")
    calls = node.node.rpc._tasks
    assert sum(len(t) for t in calls.values()) == MAX_CALLS_IN_FLIGHT
    await wire.close()
    async with asyncio.timeout(10):  # the closed connection's calls are cancelled
        while calls:
            await asyncio.sleep(0.05)


def test_signatures() -> None:
    body = b'{"a": 1}'
    header = sign("s3cret", body, at=1_000_000)
    assert verify("s3cret", body, header, now=1_000_100)
    assert not verify("s3cret", body + b" ", header, now=1_000_100)  # tampered
    assert not verify("other", body, header, now=1_000_100)  # another secret
    assert not verify("s3cret", body, header, now=1_000_301)  # stale: a replay
    assert not verify("s3cret", body, "garbage")
    assert not verify("s3cret", body, "t=abc,v1=00")
