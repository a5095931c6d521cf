"""The ``/ws`` endpoint on aiohttp: upgrade, read loop, timeouts, dispatch.

This is the only module that knows aiohttp's WebSocket API; it turns frames
into calls on :class:`~tidings.hub.chat.ChatService` and keeps every failure
inside its own connection.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from tidings.api.errors import ApiError
from tidings.gateway.connection import Connection
from tidings.hub.chat import ChatService
from tidings.protocol.codec import Frame, ProtocolError, decode_frame, decode_payload
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    PresencePayload,
    SyncRequestPayload,
)
from tidings.protocol.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class AiohttpSocket:
    """Adapts :class:`aiohttp.web.WebSocketResponse` to the connection's Socket."""

    __slots__ = ("_transport", "_ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self._ws = ws
        self._transport = transport

    async def send(self, data: bytes, binary: bool) -> None:
        """Write one message frame."""
        await self._ws.send_frame(data, WSMsgType.BINARY if binary else WSMsgType.TEXT)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with ``code``."""
        await self._ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        """Close the TCP connection without a closing handshake."""
        if self._transport is not None:
            self._transport.close()


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Browsers send Origin; a page from another site may open /ws only if listed."""
    if not origin or "*" in allowed or origin in allowed:
        return True
    return bool(host) and urlsplit(origin).netloc == host


class Gateway:
    """Serves ``GET /ws``."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.settings = service.settings
        self.connections: set[Connection] = set()  # all, authenticated or not
        self._watchdog: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the timeout watchdog."""
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop the watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)

    async def _watch(self) -> None:
        # One sweep for every timeout of every connection: cheaper than arming a
        # timer around each receive and each send (that cost ~15 % of a busy node).
        s = self.settings
        period = min(1.0, s.auth_timeout / 4, s.idle_timeout / 4, s.write_timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for conn in list(self.connections):
                code = conn.expired(now, s.auth_timeout, s.idle_timeout, s.write_timeout)
                if code is None or conn.closed or conn.expiry is not None:
                    continue
                log.info("%s user %s: %s", conn.id, conn.user_id, code.name.lower())
                if code == CloseCode.SLOW_CONSUMER or conn.reader is None:
                    conn.close(code, code.name.lower())  # it is not reading: no handshake
                else:
                    # Let the reading task close, so that the closing handshake can
                    # complete: aiohttp drops the TCP connection at once when a close
                    # races a pending receive(), and the client then sees 1006.
                    conn.stop_reader(code)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade to WebSocket and serve one connection until it closes."""
        if not origin_allowed(request.headers.get("Origin"), request.host,
                              self.settings.allowed_origins):
            raise ApiError(403, "ORIGIN_NOT_ALLOWED",
                           f"origin {request.headers.get('Origin')!r} may not open /ws")
        # aiohttp refuses a message of max_msg_size bytes itself: +1 makes ours inclusive.
        ws = web.WebSocketResponse(max_msg_size=self.settings.max_frame_bytes + 1,
                                   autoping=False, compress=False)
        transport = request.transport  # read before the upgrade hands it over
        await ws.prepare(request)
        conn = Connection(AiohttpSocket(ws, transport), queue_size=self.settings.send_queue_size,
                          write_timeout=self.settings.write_timeout,
                          remote=request.remote or "")
        self.connections.add(conn)
        reader = conn.reader = asyncio.current_task()
        try:
            await self._serve(ws, conn)
        except asyncio.CancelledError:
            if conn.expiry is None:
                raise
            if reader is not None:
                reader.uncancel()  # our own (Connection.stop_reader): close and finish
            conn.close(conn.expiry, conn.expiry.name.lower())
        except ConnectionError:
            pass
        finally:
            conn.reader = None  # from here on, nothing may cancel this task
            self.connections.discard(conn)
            if not conn.closed:
                conn.close(ws.close_code or CloseCode.NORMAL)
            self.service.metrics.disconnects.labels(str(conn.close_code)).inc()
            try:
                await self.service.disconnected(conn)  # first: frees the user's slot
            finally:
                await conn.wait_closed()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, conn: Connection) -> None:
        svc = self.service
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.settings.rate_limit, self.settings.rate_burst, loop.time())
        while not conn.closed:
            msg = await ws.receive()
            conn.last_seen = loop.time()
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                code = ws.close_code or CloseCode.MESSAGE_TOO_BIG
                log.info("%s protocol error: %s", conn.id, ws.exception())
                conn.close(code, "protocol error")
                return
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            if not conn.user_id:  # until auth fixes it, answer in the framing just used
                conn.binary = msg.type == WSMsgType.BINARY
            try:
                frame = decode_frame(msg.data)
            except ProtocolError as exc:
                svc.error(conn, 0, exc.code, exc.message)
                continue
            if not bucket.allow(conn.last_seen):
                svc.error(conn, frame.seq, ErrorCode.RATE_LIMITED, "too many frames; slow down")
                continue
            try:
                await self._dispatch(conn, frame)
            except ProtocolError as exc:
                svc.error(conn, exc.seq, exc.code, exc.message)
            except Exception:
                log.exception("%s: internal error", conn.id)
                svc.error(conn, frame.seq, ErrorCode.INTERNAL_ERROR, "internal error")
            if conn.backlogged:  # pace a client that sends faster than it reads
                await conn.drain()

    async def _dispatch(self, conn: Connection, frame: Frame) -> None:
        svc = self.service
        svc.metrics.frame_in(frame.type)
        if not conn.user_id and frame.type != MsgType.AUTH:
            svc.error(conn, frame.seq, ErrorCode.NOT_AUTHENTICATED, "send MsgAuth first")
            return
        payload = decode_payload(frame)
        if isinstance(payload, AuthPayload) and not conn.user_id:
            await svc.authenticate(conn, frame.seq, payload)
            return
        if isinstance(payload, ChatPayload):
            await svc.chat(conn, frame.seq, payload)
        elif isinstance(payload, AckPayload):
            await svc.ack(conn, frame.seq, payload)
        elif isinstance(payload, SyncRequestPayload):
            await svc.sync(conn, frame.seq, payload)
        elif isinstance(payload, PresencePayload):
            await svc.set_presence(conn, frame.seq, payload)
        elif isinstance(payload, AuthPayload):  # a second MsgAuth
            svc.error(conn, frame.seq, ErrorCode.ALREADY_AUTHENTICATED, "already authenticated")
        else:
            svc.ping(conn, frame.seq)
