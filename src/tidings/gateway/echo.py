"""``GET /test/echo``: a test-only WebSocket echo for protocol-compliance runs.

Served only with ``test_endpoints`` on (never in production). It exists so that
the Autobahn cases (``make autobahn``, ``tests/compliance``) measure the
WebSocket layer the gateway really runs: the socket is opened with exactly the
options of ``/ws`` (``max_msg_size = max_frame_bytes + 1``, ``compress=False``,
``autoping=False`` with pings answered by the read loop, as ``/ws`` does), and
replies and close frames go through the gateway's own :class:`AiohttpSocket`.
What it leaves out is the chat protocol above the frames: no auth, no rate limit,
no send queue, no timeouts, and any text or binary message is echoed verbatim.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from tidings.config import Settings
from tidings.gateway.websocket import AiohttpSocket
from tidings.protocol.codes import CloseCode

log = logging.getLogger(__name__)

ECHO_PATH = "/test/echo"


class EchoEndpoint:
    """Echoes every text and binary message back in the same framing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade and echo until the peer closes or breaks the protocol."""
        ws = web.WebSocketResponse(max_msg_size=self.settings.max_frame_bytes + 1,
                                   autoping=False, compress=False)
        await ws.prepare(request)
        sock = AiohttpSocket(ws, request.transport)
        try:
            await self._echo(ws, sock)
        except ConnectionError:
            pass
        finally:
            if not ws.closed:
                await sock.close(ws.close_code or CloseCode.NORMAL, "")
        return ws

    async def _echo(self, ws: web.WebSocketResponse, sock: AiohttpSocket) -> None:
        # The same branches, in the same order, as Gateway._serve before dispatch.
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                # aiohttp has already sent its close frame (1002, 1007, 1009...);
                # this close is then a no-op, exactly as on /ws.
                log.debug("echo protocol error: %s", ws.exception() or msg.data)
                await sock.close(ws.close_code or CloseCode.MESSAGE_TOO_BIG, "protocol error")
                return
            if msg.type == WSMsgType.TEXT:
                await sock.send(msg.data.encode(), binary=False)
            elif msg.type == WSMsgType.BINARY:
                await sock.send(msg.data, binary=True)


def add_test_routes(app: web.Application, settings: Settings) -> None:
    """Register the test-only endpoints (call only when ``settings.test_endpoints``)."""
    app.router.add_get(ECHO_PATH, EchoEndpoint(settings).handle)
    log.warning("test endpoints enabled: WebSocket echo at %s (never use in production)",
                ECHO_PATH)
