"""One client connection: identity, framing, delivery state and a bounded outbox.

Live pushes never wait: a connection whose outbox holds ``send_queue_size``
frames, or ``send_queue_bytes`` bytes, is a slow consumer and is closed (it
recovers everything through sync on reconnect, since its cursor only moves on its
own acks). Replies are never refused; instead the gateway stops reading a
connection whose outbox is half full, so a client that pipelines requests is
paced, not dropped. Sync pages wait for room, which is how a large backlog is
paced.

Writing: frames queued during one turn of the event loop are written together,
in one ``write`` (one syscall) at the end of that turn — a group commit of many
publications reaches each subscriber as one write, not one per frame; the kernel
send path is where a busy node spends most of its time (docs/benchmarks.md). Only
a socket whose kernel buffer is backed up gets a writer task, which waits for it
to drain; an idle connection has no task of its own (memory per connection).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from typing import Any, Protocol

from tidings.protocol.codes import CloseCode

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_NO_HEADERS: dict[str, str] = {}

CURRENT: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
    "tidings_connection", default=None)
"""The connection whose task is running (the gateway sets it; the logs read it)."""

# Connections with frames to write at the end of this loop turn, per event loop: one
# callback flushes them all (a callback per connection costs more than its write).
_flush_due: dict[asyncio.AbstractEventLoop, list[Connection]] = {}


def _flush_all(loop: asyncio.AbstractEventLoop) -> None:
    for conn in _flush_due.pop(loop, ()):
        conn._flush()


class Socket(Protocol):
    """What a connection needs from a WebSocket (the gateway adapts aiohttp to it)."""

    async def send(self, data: bytes, binary: bool) -> None:
        """Send one message; text messages are UTF-8 bytes."""

    def write_now(self, frames: list[tuple[bytes, bool]]) -> bool:
        """Write messages at once without waiting; False if the socket is backed up."""

    async def close(self, code: int, reason: str) -> None:
        """Close the WebSocket with a close code."""

    def abort(self) -> None:
        """Drop the TCP connection at once (when a clean close could not be done)."""


class Connection:
    """A WebSocket connection after the upgrade, before and after auth."""

    # Slots: 50 000 idle connections each save the ~450-byte attribute dict.
    __slots__ = (
        "_closing",
        "_flush_due",
        "_loop",
        "_outbox",
        "_queue_bytes",
        "_queue_size",
        "_queued",
        "_room",
        "_socket",
        "_write_timeout",
        "_writer",
        "binary",
        "buffered",
        "catching_up",
        "close_code",
        "closed",
        "credential_expires",
        "device_id",
        "expiry",
        "expiry_reason",
        "frames_in",
        "frames_out",
        "headers",
        "id",
        "last_pushed_id",
        "last_seen",
        "opened_at",
        "reader",
        "remote",
        "scopes",
        "synced_id",
        "token_id",
        "user_id",
        "write_started",
    )

    def __init__(self, socket: Socket, *, queue_size: int, write_timeout: float,
                 remote: str = "", headers: dict[str, str] | None = None,
                 queue_bytes: int = 4 << 20) -> None:
        self.id = f"c{next(_ids)}"
        self.remote = remote
        self.frames_in = 0  # counted for the access log
        self.frames_out = 0
        # The upgrade's headers the backend hooks may see (proxy_headers), if any is on.
        self.headers = headers or _NO_HEADERS
        self.user_id = 0
        self.device_id = ""
        self.token_id: int | None = None  # the opaque token it authenticated with, if any
        self.scopes: tuple[str, ...] | None = None  # that token's scopes (None: unrestricted)
        # When its credential runs out (ms since the epoch; None: never): closed with 4402
        # then, unless a Refresh frame brings a new one (hub/credentials.py).
        self.credential_expires: int | None = None
        self.binary = True
        # Delivery state: pushes are buffered while the backlog is replayed, and
        # a chat push with an id at or below last_pushed_id was already sent.
        self.catching_up = True
        # Made when the first push is held back (hub.py): most connections get none
        # during their replay, and an empty list each is 56 bytes (issue 19).
        self.buffered: list[object] | None = None
        self.last_pushed_id = 0
        self.synced_id = 0  # highest id sent in an explicit MsgSyncRsp
        self.closed = False
        self.close_code: int | None = None
        # Timeouts, checked by the gateway's watchdog (loop.time() seconds).
        # Bound to the loop it was made on; asking asyncio for the running loop on every
        # push costs a getpid() system call in CPython 3.11 (a fan-out does 1000s a turn).
        self._loop = asyncio.get_running_loop()
        self.opened_at = self.last_seen = self._loop.time()
        self.write_started = 0.0  # when the write now in progress began; 0 if none
        self.reader: asyncio.Task[object] | None = None  # the task reading this socket
        # Why we stopped the reader, if we did: a CloseCode, or an operator's 4000-4999.
        self.expiry: int | None = None
        self.expiry_reason = ""  # the close reason stop_reader() was given ("": the code's name)
        self._socket = socket
        self._queue_size = queue_size
        self._write_timeout = write_timeout
        # Between writes the outbox is the shared empty tuple, not an empty list of its
        # own (56 bytes on each idle connection, issue 19): the first frame queued makes
        # the list. A writer task's list stays until it is done: pushes go to it.
        self._outbox: list[tuple[bytes, bool]] | tuple[()] = ()
        # Bytes in the outbox: a frame count alone let a never-reading client hold
        # 100 frames of up to 1 MiB each (docs/reliability.md, "Memory under a flood").
        self._queue_bytes = queue_bytes
        self._queued = 0
        self._flush_due = False  # a flush is scheduled for the end of this loop turn
        self._room: asyncio.Event | None = None  # made when someone waits for room
        self._writer: asyncio.Task[None] | None = None  # only while the socket is backed up
        self._closing: asyncio.Task[None] | None = None

    def hook_request(self) -> dict[str, Any]:
        """Who this client is, for a backend hook's request (docs/integration.md)."""
        return {"client": self.id, "transport": "websocket", "remote": self.remote,
                "headers": self.headers, "user_id": self.user_id,
                "device_id": self.device_id}

    @property
    def highest_sent_id(self) -> int:
        """The highest message id sent on this connection: acks may not go beyond it."""
        return max(self.last_pushed_id, self.synced_id)

    def expired(self, now: float, auth_timeout: float, idle_timeout: float,
                write_timeout: float, wall_ms: int = 0) -> CloseCode | None:
        """The close code of a timeout this connection has run into, if any (``now`` is
        the loop's clock, ``wall_ms`` the epoch's, for the credential's expiry)."""
        if not self.user_id and now - self.opened_at > auth_timeout:
            return CloseCode.AUTH_TIMEOUT
        if self.credential_expires is not None and wall_ms >= self.credential_expires:
            return CloseCode.TOKEN_EXPIRED
        if self.user_id and now - self.last_seen > idle_timeout:
            return CloseCode.IDLE_TIMEOUT
        if self.write_started and now - self.write_started > write_timeout:
            return CloseCode.SLOW_CONSUMER
        return None

    def push(self, data: bytes, binary: bool | None = None) -> bool:
        """Queue a frame without waiting. On overflow close as a slow consumer."""
        if self.closed:
            return False
        # self.full, inlined: this runs for every push of every connection.
        if len(self._outbox) >= self._queue_size or self._queued >= self._queue_bytes:
            log.warning("%s user %s: send queue full, closing", self.id, self.user_id)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return False
        outbox = self._outbox
        if isinstance(outbox, tuple):  # nothing queued (see __init__)
            outbox = self._outbox = []
        outbox.append((data, self.binary if binary is None else binary))
        self._queued += len(data)
        self._schedule_flush()
        return True

    def reply(self, data: bytes) -> None:
        """Queue an answer to the client's own request (never refused: see module doc)."""
        if not self.closed:
            outbox = self._outbox
            if isinstance(outbox, tuple):  # nothing queued (see __init__)
                outbox = self._outbox = []
            outbox.append((data, self.binary))
            self._queued += len(data)
            self._schedule_flush()

    @property
    def full(self) -> bool:
        """True when a live push would overflow the outbox (and close the connection)."""
        return len(self._outbox) >= self._queue_size or self._queued >= self._queue_bytes

    @property
    def backlogged(self) -> bool:
        """True when the outbox is half full: the gateway then waits before reading more."""
        return (len(self._outbox) >= self._queue_size // 2
                or self._queued >= self._queue_bytes // 2)

    async def send(self, data: bytes, binary: bool | None = None) -> None:
        """Queue a frame, waiting while the outbox is full."""
        while self.full and not self.closed:
            await self._wait_for_room()
        self.push(data, binary)

    def close(self, code: int, reason: str = "") -> None:
        """Stop sending and close the socket with ``code`` (once)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._outbox = ()
        self._queued = 0
        self._made_room()
        if self._writer is not None:
            self._writer.cancel()
        self._closing = self._loop.create_task(self._close_socket(code, reason))

    async def wait_closed(self) -> None:
        """Wait until the close frame has been sent (or the attempt failed)."""
        if self._closing is not None:
            # wait(), not await: the closing task may end cancelled (aiohttp shares one
            # drain future between writers), and that must not cancel the caller.
            await asyncio.wait([self._closing])

    async def drain(self) -> None:
        """Wait until everything queued has been written (or the connection closed)."""
        while (self._outbox or self.write_started) and not self.closed:
            await self._wait_for_room()

    def abort(self) -> None:
        """Drop the TCP connection now, closing handshake or not (shutdown's last resort)."""
        self.close(CloseCode.GOING_AWAY)
        self._socket.abort()

    def stop_reader(self, why: int, reason: str = "") -> None:
        """Wake the task reading this socket so that it finishes, closing with ``why`` and
        ``reason`` (by default the code's name) once no receive is pending: the closing
        handshake can then complete (see Gateway.handle)."""
        reader = self.reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            if self.expiry is None:
                self.expiry = why
                if reason:
                    self.expiry_reason = reason
            reader.cancel()

    def expiry_words(self) -> str:
        """The close reason for :attr:`expiry`: the one given, else the code's name."""
        if self.expiry_reason or self.expiry is None:
            return self.expiry_reason
        try:
            return CloseCode(self.expiry).name.lower()
        except ValueError:
            return ""

    async def _close_socket(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._socket.close(code, reason)
        except BaseException as exc:
            # The peer may be gone, or aiohttp cancelled our close: all writers share
            # one drain future, and cancelling the stuck writer cancels it for us too.
            log.debug("%s close: %r", self.id, exc)
            self._socket.abort()
        finally:
            # A reader parked in receive() must not keep a closed connection registered.
            self.stop_reader(CloseCode.GOING_AWAY)

    async def _wait_for_room(self) -> None:
        if self._room is None:
            self._room = asyncio.Event()
        self._room.clear()
        await self._room.wait()

    def _made_room(self) -> None:
        if self._room is not None:
            self._room.set()

    def _schedule_flush(self) -> None:
        if not self._flush_due and self._writer is None:
            self._flush_due = True
            loop = self._loop
            due = _flush_due.get(loop)
            if due is None:  # the first connection with frames this turn: one callback
                due = _flush_due[loop] = []
                loop.call_soon(_flush_all, loop)
            due.append(self)

    def _flush(self) -> None:
        """Write everything queued in one go, unless the socket is backed up."""
        self._flush_due = False
        outbox = self._outbox
        if self.closed or self._writer is not None or not outbox:
            return
        try:
            written = self._socket.write_now(outbox)
        except Exception as exc:
            self._write_failed(exc)
            return
        if written:
            self.frames_out += len(outbox)
            self._outbox = ()
            self._queued = 0
            self._made_room()
        else:
            self._writer = self._loop.create_task(self._write_loop())

    async def _write_loop(self) -> None:
        # Only while the kernel buffer is full: one frame at a time, each write
        # waiting for the socket to drain (the watchdog times a stuck write out).
        outbox = self._outbox
        loop = self._loop
        try:
            while outbox and not self.closed:
                data, binary = outbox.pop(0)
                self._queued -= len(data)
                self.write_started = loop.time()
                await self._socket.send(data, binary)
                self.frames_out += 1
                self.write_started = 0.0
                if not self.full:
                    self._made_room()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._write_failed(exc)
        self._writer = None

    def _write_failed(self, exc: Exception) -> None:
        log.debug("%s write failed: %s", self.id, exc)
        self.closed = True
        self._made_room()
