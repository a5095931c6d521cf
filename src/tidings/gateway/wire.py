"""A ``/ws`` socket after the handshake: aiohttp's frame parser on a transport of its own.

aiohttp keeps everything of a WebSocket's HTTP request alive for the socket's whole
life: the parsed request, its protocol object with the HTTP parser and two tasks, the
handler's coroutine frames through every middleware and the ``WebSocketResponse``
(about 12 KiB of an idle connection's 17, docs/benchmarks.md). So the gateway checks
the upgrade request itself (as aiohttp does), takes the transport over
(``transport.set_protocol``), lets aiohttp's request end, and answers ``101`` itself.
Frames are then parsed by aiohttp's own ``WebSocketReader`` (its C parser, which the
RFC 6455 compliance and hostile suites cover; or, if an aiohttp release changes what
that needs, our own: :mod:`tidings.gateway.parser`) straight into a :class:`WsPeer`, which is
at once the transport's protocol, the parser's queue and the gateway's Socket. Closing
follows aiohttp's ``WebSocketResponse`` step by step (``close`` / ``receive``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, hdrs, web
from aiohttp.http_websocket import WS_CLOSED_MESSAGE, WS_CLOSING_MESSAGE, WS_KEY, WebSocketError

from tidings.gateway.masking import MaskBitCheck
from tidings.gateway.parser import QueueBase, make_parser

# Past this many unsent bytes in the kernel-side buffer, frames are written one by one,
# each waiting for the socket to drain (uvloop's default high-water mark).
WRITE_BUFFER_LIMIT = 64 * 1024
# Parsed messages not yet taken by the reader, in bytes (+128 each, as aiohttp counts),
# beyond which the socket is not read until they are (aiohttp's limit).
READ_LIMIT = 128 * 1024
CLOSE_TIMEOUT = 10.0  # how long a close waits for the peer's close frame (aiohttp's)

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PONG = 0x1, 0x2, 0x8, 0xA


def frame_header(length: int, binary: bool, opcode: int = 0) -> bytes:
    """The header of one unmasked, final server frame (RFC 6455 §5.2)."""
    first = 0x80 | (opcode or (OP_BINARY if binary else OP_TEXT))
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def accept_upgrade(request: web.Request) -> bytes:
    """The ``101`` response to a valid WebSocket upgrade request.

    The checks are aiohttp's (``WebSocketResponse._handshake``) and so are their
    ``400`` answers; no subprotocol or extension is ever negotiated. Like every 101
    (tidings.security), it carries no security headers: there is no document to protect.
    """
    headers = request.headers
    if headers.get(hdrs.UPGRADE, "").lower().strip() != "websocket":
        raise web.HTTPBadRequest(text=f"No WebSocket UPGRADE hdr: {headers.get(hdrs.UPGRADE)}"
                                      '\n Can "Upgrade" only to "WebSocket".')
    tokens = {t.strip().lower() for t in headers.get(hdrs.CONNECTION, "").split(",")}
    if "upgrade" not in tokens:
        raise web.HTTPBadRequest(
            text=f"No CONNECTION upgrade hdr: {headers.get(hdrs.CONNECTION)}")
    version = headers.get(hdrs.SEC_WEBSOCKET_VERSION, "")
    if version not in ("13", "8", "7"):
        raise web.HTTPBadRequest(text=f"Unsupported version: {version}")
    key = headers.get(hdrs.SEC_WEBSOCKET_KEY)
    try:
        if not key or len(base64.b64decode(key)) != 16:
            raise web.HTTPBadRequest(text=f"Handshake error: {key!r}")
    except binascii.Error:
        raise web.HTTPBadRequest(text=f"Handshake error: {key!r}") from None
    digest = hashlib.sha1(key.encode() + WS_KEY, usedforsecurity=False).digest()
    accept = base64.b64encode(digest).decode()
    # Server: names the agent in WebSocket test suites' reports (Autobahn, docs/compliance).
    return (f"HTTP/1.1 101 Switching Protocols\r\nServer: Tidings\r\nUpgrade: websocket\r\n"
            f"Connection: upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode()


class _Eof(Exception):
    """The TCP connection ended without a close frame."""


class WsPeer(QueueBase, asyncio.Protocol):  # type: ignore[misc]
    """One WebSocket after the handshake: protocol, parser queue and writer in one object.

    ``receive`` returns what ``WebSocketResponse.receive`` (autoping and autoclose on,
    no heartbeat) would; ``close`` sends a close frame and waits for the peer's.
    """

    __slots__ = (
        "_closed",
        "_closing",
        "_drain",
        "_eof",
        "_failure",
        "_inbox",
        "_inbox_bytes",
        "_masks",
        "_on_ready",
        "_parser",
        "_read_paused",
        "_transport",
        "_waiter",
        "_waiting",
        "close_code",
        "error",
        "on_gone",
    )
    # Read by aiohttp's pure-Python parser: this queue never asks the parser to stall.
    _size = 0
    _limit = 0

    def __init__(self, transport: asyncio.Transport, max_msg_size: int) -> None:
        self._transport = transport
        self._parser = make_parser(self, max_msg_size)
        self._masks = MaskBitCheck()
        # Messages not yet read; the shared empty tuple while there are none rather than
        # an empty list of its own (56 bytes on each idle connection, issue 19).
        self._inbox: list[tuple[WSMessage, int]] | tuple[()] = ()
        self._inbox_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._waiting = False  # a receive() is waiting for a message
        self._failure: BaseException | None = None  # the parser's error, if any
        self._eof = False
        self._drain: asyncio.Future[None] | None = None  # while the transport is paused
        self._read_paused = False
        self._closed = False  # our close frame is sent (or being sent)
        self._closing = False  # the peer's close frame arrived
        self.close_code: int | None = None
        self.error: BaseException | None = None  # why receive() returned an ERROR
        # Called when the peer's close frame or the end of the TCP connection arrives
        # while no receive() waits for it: the reader is busy handling a frame, and may
        # be stuck there (a statement on a dead store link; docs/reliability.md).
        self.on_gone: Callable[[], None] | None = None
        # While no task reads this socket (it is idle): called once when there is
        # something to read again, or the connection ends (see park).
        self._on_ready: Callable[[], None] | None = None

    @classmethod
    def take_over(cls, request: web.Request, max_msg_size: int) -> WsPeer:
        """Check the upgrade request (``400`` if it is not one), take its socket from
        aiohttp and answer ``101``. Raise ``ConnectionResetError`` if the client is gone."""
        response = accept_upgrade(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection lost")
        peer = cls(transport, max_msg_size)
        peer.adopt(request, response)
        return peer

    def adopt(self, request: web.Request, response: bytes) -> None:
        """Take the socket over from aiohttp and send the ``101`` response.

        aiohttp's protocol object is told that its connection is gone (it then drops
        its parser, keep-alive timer and server registration) after its transport has
        been taken away, so that it neither closes nor writes to the socket; bytes the
        client sent behind the upgrade request are parsed here.
        """
        protocol = request.protocol
        tail = getattr(protocol, "_message_tail", b"")
        self._transport.set_protocol(self)
        protocol.transport = None
        protocol.connection_lost(None)
        self._transport.resume_reading()
        self._transport.write(response)
        if tail:
            self.data_received(bytes(tail))

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        """Parse frames; the parser hands each message to :meth:`feed_data`."""
        if self._failure is not None:  # the connection is failing: read nothing more
            return
        if self._masks.unmasked(data):
            self.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                              "unmasked client frame"))
            return
        self._parser.feed_data(data)

    def eof_received(self) -> bool:
        """The peer shut its side: let the transport close (after our writes)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake whoever waits: a reader, a writer, a close."""
        if not self._eof:
            self._gone()
        self._eof = True
        self._wake()
        self._release_writers()

    def pause_writing(self) -> None:
        """The kernel buffer is full: writers wait in :meth:`send`."""
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The kernel buffer drained."""
        self._release_writers()

    def _release_writers(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # The parser's queue (WebSocketDataQueue)

    def feed_data(self, data: Any, size: int) -> None:
        """A message from the parser."""
        if self._inbox:
            self._inbox.append((data, size))
        else:
            self._inbox = [(data, size)]
        self._inbox_bytes += size + 128
        if data.type is WSMsgType.CLOSE:
            self._gone()
        if self._inbox_bytes > READ_LIMIT and not self._read_paused:
            self._read_paused = True
            self._transport.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        """The parser's end (it is never told: :meth:`connection_lost` is)."""
        self._eof = True
        self._wake()

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        """A protocol error in the client's frames."""
        self._failure = exc
        self._wake()

    def _gone(self) -> None:
        # Parked (no reader at all): the wake that follows starts one, which reads it.
        if (not self._waiting and self._on_ready is None and not self._closed
                and self.on_gone is not None):
            self.on_gone()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        on_ready, self._on_ready = self._on_ready, None
        if on_ready is not None:
            on_ready()

    @property
    def pending(self) -> bool:
        """True if ``receive`` would return without waiting."""
        return bool(self._inbox or self._failure is not None or self._eof or self._closed
                    or self._closing)

    def park(self, on_ready: Callable[[], None]) -> None:
        """Nobody reads this socket until ``on_ready`` is called (once): when a message,
        an error or the end arrives. An idle connection then costs no task and no
        coroutine frames (about 1.6 KiB each, docs/benchmarks.md)."""
        self._on_ready = on_ready
        if self.pending:
            self._wake()

    async def _next(self) -> WSMessage:
        while not self._inbox:
            if self._failure is not None:
                raise self._failure
            if self._eof:
                raise _Eof
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take()

    def ready_data(self) -> WSMessage | None:
        """The next message, not taken, if it is here and a text or binary one: what
        :meth:`receive` would return next without waiting or answering anything."""
        if not self._inbox or self._closed or self._closing:
            return None
        msg = self._inbox[0][0]
        return msg if msg.type is WSMsgType.BINARY or msg.type is WSMsgType.TEXT else None

    def take(self) -> WSMessage:
        """Take the next message from the inbox (one must be there)."""
        msg, size = self._inbox.pop(0)  # type: ignore[union-attr]  # () only when empty
        if not self._inbox:
            self._inbox = ()
        self._inbox_bytes -= size + 128
        if self._read_paused and self._inbox_bytes < READ_LIMIT // 2:
            self._read_paused = False
            self._transport.resume_reading()
        return msg

    # Reading and closing, as aiohttp's WebSocketResponse does

    async def receive(self) -> WSMessage:
        """The next message; PING and PONG are returned, CLOSE is answered."""
        if self._closed:
            return WS_CLOSED_MESSAGE
        if self._closing:
            return WS_CLOSING_MESSAGE
        self._waiting = True
        try:
            msg = await self._next()
        except _Eof:
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
            self._closed = True
            self._transport.close()
            return WS_CLOSED_MESSAGE
        except WebSocketError as exc:
            self.close_code = exc.code
            self.error = exc
            await self.close(exc.code, "")
            return WSMessage(WSMsgType.ERROR, exc, None)
        except Exception as exc:
            self.error = exc
            self._closing = True
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
            await self.close(WSCloseCode.OK, "")
            return WSMessage(WSMsgType.ERROR, exc, None)
        finally:
            self._waiting = False
        if msg.type is WSMsgType.CLOSE:
            self._closing = True
            if msg.data == WSCloseCode.ABNORMAL_CLOSURE or msg.data >= 5000:
                # RFC 6455 §7.4: 1006 is never sent, and codes stop at 4999; aiohttp's
                # reader lets both through.
                invalid = WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                         f"invalid close code {msg.data}")
                self.close_code, self.error = invalid.code, invalid
                await self.close(invalid.code, "")
                return WSMessage(WSMsgType.ERROR, invalid, None)
            self.close_code = msg.data
            if not self._closed:
                await self.close(WSCloseCode.OK, "", drain=False)
        elif msg.type is WSMsgType.CLOSING:
            self._closing = True
        return msg

    async def close(self, code: int, reason: str, *, drain: bool = True) -> None:
        """Send a close frame with ``code``; wait for the peer's (at most CLOSE_TIMEOUT)."""
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        payload = struct.pack("!H", code) + reason.encode()[:123]
        if transport.is_closing():
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
            return
        transport.write(frame_header(len(payload), True, OP_CLOSE) + payload)
        if drain and self._drain is not None:
            await asyncio.shield(self._drain)
        on_ready, self._on_ready = self._on_ready, None
        if on_ready is not None:  # no task reads: one settles the connection now, as the
            on_ready()  # reader would once its receive() returned CLOSING (below)
        if self._waiting:  # a receive() is parked: it returns CLOSING, and aiohttp then
            self._closing = True  # drops the TCP connection without waiting for the peer
            self._inbox = [(WS_CLOSING_MESSAGE, -128), *self._inbox]
            self._wake()
        if self._closing:
            transport.close()
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while True:
                    msg = await self._next()
                    if msg.type is WSMsgType.CLOSE:
                        self.close_code = msg.data
                        return
        except asyncio.CancelledError:
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
            raise
        except Exception:
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
        finally:
            transport.close()

    # The gateway's Socket (tidings.gateway.connection)

    async def send(self, data: bytes, binary: bool) -> None:
        """Write one message frame, then wait while the kernel buffer is full."""
        if self._transport.is_closing():
            raise ConnectionResetError("socket closed")
        await self._write_and_drain(frame_header(len(data), binary) + data)

    def write_now(self, frames: list[tuple[bytes, bool]]) -> bool:
        """Write every frame in one ``transport.write``, unless the socket is backed up.

        One write per loop turn rather than one per frame is what makes fan-out cheap
        (docs/benchmarks.md).
        """
        transport = self._transport
        if transport.is_closing():
            raise ConnectionResetError("socket closed")
        if self._closed or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        if len(frames) == 1:  # the usual case: no list, no join
            data, binary = frames[0]
            transport.write(frame_header(len(data), binary) + data)
            return True
        parts: list[bytes] = []
        for data, binary in frames:
            parts.append(frame_header(len(data), binary))
            parts.append(data)
        transport.write(b"".join(parts))
        return True

    async def pong(self, data: bytes) -> None:
        """Answer a ping; wait while the kernel buffer is full (a flood of pings whose
        pongs are not read then stops being read: backpressure)."""
        if self._transport.is_closing():
            return
        await self._write_and_drain(frame_header(len(data), True, OP_PONG) + bytes(data))

    async def _write_and_drain(self, frame: bytes) -> None:
        self._transport.write(frame)
        if self._drain is not None:  # shielded: a cancelled writer must not cancel the rest
            await asyncio.shield(self._drain)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake, and what it has not
        written: a peer that does not read would keep a plain close() waiting for a
        flush that never comes (and the node's stop waiting with it)."""
        self._transport.abort()
