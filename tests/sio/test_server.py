"""tidings.sio's server, byte for byte over real sockets: long-polling, the WebSocket
upgrade, WebSocket-only sessions, acks, rooms, the heartbeat and bad requests.
(socket.io-client itself runs against it in tests/seeds and tests/desks.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tidings.sio.server import ConnectRefused, SioServer
from tidings.sio.session import Session


class App:
    """A SioServer on a real port, with handlers that record what they see."""

    def __init__(self, **options: Any) -> None:
        self.events: list[tuple[str, Any]] = []
        self.server = SioServer(allow_origin=lambda origin, host: origin in (
            None, "http://ok.example"), connect=self._connect, connected=self._connected,
            disconnected=lambda s: self.events.append(("disconnected", s.sio_sid)),
            **options)
        self.server.on("join", self._join)
        self.url = ""

    async def _connect(self, session: Session, auth: Any, environ: dict[str, Any]) -> None:
        if not isinstance(auth, dict) or auth.get("token") != "good":
            raise ConnectRefused("bad token", {"code": "UNAUTHORIZED"})
        session.data["query"] = environ["QUERY_STRING"]

    def _connected(self, session: Session) -> None:
        self.events.append(("connected", session.sio_sid))
        self.server.emit_to(session, "hello", {"n": 1})

    async def _join(self, session: Session, data: Any) -> Any:
        self.server.enter_room(session, str(data))
        return {"joined": data}


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[App]:
    """An App on 127.0.0.1, stopped (every session, every task) at the end."""
    made = App(**options)
    web_app = web.Application()
    made.server.attach(web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    made.url = f"http://127.0.0.1:{port}/socket.io/"
    try:
        yield made
    finally:
        await made.server.shutdown()
        await runner.cleanup()


@pytest.fixture
async def app() -> AsyncIterator[App]:
    async with serving(ping_interval=0.3, ping_timeout=0.3) as made:
        yield made


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, str]:
    async with http.get(url, params={"EIO": "4", "transport": "polling", **params}) as r:
        return r.status, await r.text()


async def _post(http: aiohttp.ClientSession, url: str, sid: str, body: str) -> tuple[int, str]:
    async with http.post(url, params={"EIO": "4", "transport": "polling", "sid": sid},
                         data=body.encode()) as r:
        return r.status, await r.text()


async def _until(condition: Any) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def _handshake(http: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, Any]]:
    status, body = await _get(http, url)
    assert status == 200 and body[0] == "0"
    opened = json.loads(body[1:])
    return opened["sid"], opened


async def test_polling_connect_event_ack_and_room_emit(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        sid, opened = await _handshake(http, app.url)
        assert opened == {"sid": sid, "upgrades": ["websocket"], "pingInterval": 300,
                          "pingTimeout": 300, "maxPayload": 1_000_000}
        assert await _post(http, app.url, sid, '40{"token":"good"}') == (200, "ok")
        _, body = await _get(http, app.url, sid=sid)
        connect, hello = body.split("\x1e")
        sio_sid = json.loads(connect[2:])["sid"]
        assert connect == f'40{{"sid":"{sio_sid}"}}' and sio_sid != sid
        assert hello == '42["hello",{"n":1}]'
        assert await _post(http, app.url, sid, '42["nobody listens"]\x1e425["join","r1"]') == \
            (200, "ok")
        assert (await _get(http, app.url, sid=sid))[1] == '435[{"joined":"r1"}]'
        assert app.server.emit("tick", {"x": 1}, ["r1", "r2"]) == 1
        assert (await _get(http, app.url, sid=sid))[1] == '42["tick",{"x":1}]'
        # The client leaves the namespace: out of its rooms, the handler told.
        assert await _post(http, app.url, sid, "41") == (200, "ok")
        assert app.server.rooms == {} and ("disconnected", sio_sid) in app.events
        assert await _post(http, app.url, sid, "1") == (200, "ok")
        assert sid not in app.server.sessions
        assert (await _get(http, app.url, sid=sid))[0] == 400


async def test_refused_connect_and_unknown_namespace(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        sid, _ = await _handshake(http, app.url)
        await _post(http, app.url, sid, '40{"token":"bad"}\x1e40/admin,')
        _, body = await _get(http, app.url, sid=sid)
        if "\x1e" not in body:  # the refusal comes from a task: perhaps in the next poll
            body += "\x1e" + (await _get(http, app.url, sid=sid))[1]
        assert sorted(body.split("\x1e")) == [
            '44/admin,{"message":"Invalid namespace"}',
            '44{"message":"bad token","data":{"code":"UNAUTHORIZED"}}']
        assert app.events == []


async def test_upgrade_from_polling_to_websocket(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        sid, _ = await _handshake(http, app.url)
        await _post(http, app.url, sid, '40{"token":"good"}')
        _, body = await _get(http, app.url, sid=sid)
        assert body.startswith("40{")
        waiting = asyncio.create_task(_get(http, app.url, sid=sid))  # a poll in flight
        await _until(lambda: app.server.sessions[sid].polling)
        ws = await http.ws_connect(app.url + f"?EIO=4&transport=websocket&sid={sid}")
        await ws.send_str("2probe")
        assert await ws.receive_str() == "3probe"
        assert await waiting == (200, "6")  # the waiting poll is let go with a NOOP
        app.server.emit("queued", 1, ["nobody"])
        session = app.server.sessions[sid]
        session.send('42["before upgrade"]')  # queued on polling, sent after UPGRADE
        await ws.send_str("5")
        assert await ws.receive_str() == '42["before upgrade"]'
        await ws.send_str('427["join","r"]')
        assert await ws.receive_str() == '437[{"joined":"r"}]'
        assert app.server.emit("e", [1, 2], ["r"]) == 1
        assert await ws.receive_str() == '42["e",[1,2]]'
        # The heartbeat: ping, answered; then unanswered, the session ends.
        assert await ws.receive_str() == "2"
        await ws.send_str("3")
        assert await ws.receive_str() == "2"
        closed = await ws.receive()
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert sid not in app.server.sessions and app.server.rooms == {}


async def test_websocket_only_session_and_server_disconnect(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(app.url + "?EIO=4&transport=websocket&token=q")
        opened = await ws.receive_str()
        assert opened.startswith("0") and json.loads(opened[1:])["upgrades"] == []
        await ws.send_str('40{"token":"good"}')
        assert (await ws.receive_str()).startswith('40{"sid":')
        assert await ws.receive_str() == '42["hello",{"n":1}]'
        session = next(iter(app.server.sessions.values()))
        assert session.data["query"] == "EIO=4&transport=websocket&token=q"
        app.server.disconnect(session)
        assert await ws.receive_str() == "41"
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
        # A binary frame (Socket.IO attachments) is not taken: the session ends.
        ws = await http.ws_connect(app.url + "?EIO=4&transport=websocket")
        await ws.receive_str()
        await ws.send_bytes(b"\x01\x02")
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
        await _until(lambda: app.server.sessions == {})


async def test_an_idle_websocket_session_holds_no_task() -> None:
    """As on /ws: a task reads the socket only while frames wait; the next frame, and
    the client's close, each start one that handles it. (Pings far apart: this client
    does not answer them, and a session ended by its ping timeout has no task either.)"""
    async with serving(ping_interval=30, ping_timeout=30) as app, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(app.url + "?EIO=4&transport=websocket")
        await ws.receive_str()
        await ws.send_str('40{"token":"good"}')
        assert (await ws.receive_str()).startswith('40{"sid":')
        assert await ws.receive_str() == '42["hello",{"n":1}]'
        session = next(iter(app.server.sessions.values()))
        assert session.conn is not None
        await _until(lambda: not app.server._tasks)
        assert session.conn.reader is None
        await ws.send_str('421["join","r1"]')  # woken: the event is handled and acked
        assert await ws.receive_str() == '431[{"joined":"r1"}]'
        await _until(lambda: not app.server._tasks)
        await ws.close()
        await _until(lambda: app.server.sessions == {})
        assert ("disconnected", session.sio_sid) in app.events


async def test_bad_requests_get_engine_io_errors(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        for params, code in (({"EIO": "3", "transport": "polling"}, 5),
                             ({"EIO": "4", "transport": "flash"}, 0),
                             ({"EIO": "4", "transport": "polling", "sid": "nope"}, 1)):
            async with http.get(app.url, params=params) as r:
                assert r.status == 400 and (await r.json())["code"] == code, params
        async with http.get(app.url, params={"EIO": "4", "transport": "polling"},
                            headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 400 and "Access-Control-Allow-Origin" not in r.headers
        async with http.options(app.url, headers={
                "Origin": "http://ok.example", "Access-Control-Request-Headers": "x-a"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://ok.example"
            assert r.headers["Access-Control-Allow-Headers"] == "x-a"
        sid, _ = await _handshake(http, app.url)
        assert (await _post(http, app.url, sid, "4x"))[0] == 400  # not Socket.IO: ended
        assert sid not in app.server.sessions
        sid, _ = await _handshake(http, app.url)
        first = asyncio.create_task(_get(http, app.url, sid=sid))
        await _until(lambda: app.server.sessions[sid].polling)
        assert (await _get(http, app.url, sid=sid))[0] == 400  # two polls at once
        assert await first == (200, "1")
        sid, _ = await _handshake(http, app.url)
        assert (await _get(http, app.url, sid=sid))[1] == "2"  # the server's ping
        await _until(lambda: sid not in app.server.sessions)  # no pong: ended


async def test_a_session_that_never_connects_is_ended() -> None:
    async with serving(connect_timeout=0.2) as app, aiohttp.ClientSession() as http:
        sid, _ = await _handshake(http, app.url)
        assert (await _get(http, app.url, sid=sid))[1] == "1"  # the close, not a ping
        assert sid not in app.server.sessions


async def test_a_long_poll_whose_connection_drops_ends_its_session() -> None:
    """As engine.io's "poll connection closed prematurely": a client killed while its
    GET waits is gone now, not at the ping timeout (here 30 s away)."""
    async with serving(ping_interval=30, ping_timeout=30) as app, \
            aiohttp.ClientSession() as http:
        sid, _ = await _handshake(http, app.url)
        await _post(http, app.url, sid, '40{"token":"good"}')
        await _get(http, app.url, sid=sid)  # the connect and the hello: nothing queued now
        host, port = app.url.split("/")[2].split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                     f"Host: {host}\r\n\r\n".encode())
        await writer.drain()
        await _until(lambda: app.server.sessions[sid].polling)
        writer.close()  # killed mid-poll: the GET's connection ends, unanswered
        await writer.wait_closed()
        async with asyncio.timeout(3):
            while sid in app.server.sessions:
                await asyncio.sleep(0.05)
        assert app.events[-1][0] == "disconnected"

