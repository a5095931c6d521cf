"""``GET /test/echo``: a test-only WebSocket echo for protocol-compliance runs.

Served only with ``test_endpoints`` on (never in production). It exists so that
the Autobahn cases (``make autobahn``, ``tests/compliance``) measure the
WebSocket layer the gateway really runs: the upgrade is accepted and the socket
taken over from aiohttp exactly as on ``/ws`` (:mod:`tidings.gateway.wire`, with
``max_msg_size = max_frame_bytes + 1`` and pings answered by the read loop), and
frames are read, answered and closed through the same :class:`WsPeer`.
What it leaves out is the chat protocol above the frames: no auth, no rate limit,
no send queue, no timeouts, and any text or binary message is echoed verbatim.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from tidings.api.openapi import Operation, describe
from tidings.config import Settings
from tidings.gateway.wire import WsPeer
from tidings.protocol.codes import CloseCode

log = logging.getLogger(__name__)

ECHO_PATH = "/test/echo"


class EchoEndpoint:
    """Echoes every text and binary message back in the same framing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade and echo until the peer closes or breaks the protocol."""
        peer = WsPeer.take_over(request, self.settings.max_frame_bytes + 1)
        task = asyncio.get_running_loop().create_task(self._run(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.StreamResponse(status=101)  # never sent: the socket is the peer's

    async def _run(self, ws: WsPeer) -> None:
        try:
            await self._echo(ws)
        except ConnectionError:
            pass
        finally:
            await ws.close(ws.close_code or CloseCode.NORMAL, "")

    async def _echo(self, ws: WsPeer) -> None:
        # The same branches, in the same order, as Gateway._serve before dispatch.
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                # The peer has already sent its close frame (1002, 1007, 1009...);
                # this close is then a no-op, exactly as on /ws.
                log.debug("echo protocol error: %s", ws.error or msg.data)
                await ws.close(ws.close_code or CloseCode.MESSAGE_TOO_BIG, "protocol error")
                return
            if msg.type == WSMsgType.TEXT:
                await ws.send(msg.data.encode(), binary=False)
            elif msg.type == WSMsgType.BINARY:
                await ws.send(msg.data, binary=True)


def add_test_routes(app: web.Application, settings: Settings) -> None:
    """Register the test-only endpoints (call only when ``settings.test_endpoints``)."""
    app.router.add_get(ECHO_PATH, EchoEndpoint(settings).handle)
    describe(app, [Operation("GET", ECHO_PATH, "testEcho", "A WebSocket echo (test only)",
                             "test", auth="none", status=101,
                             extensions={"x-tidings-test-only": True,
                                         "x-tidings-path": "served only with test_endpoints"})])
    log.warning("test endpoints enabled: WebSocket echo at %s (never use in production)",
                ECHO_PATH)
