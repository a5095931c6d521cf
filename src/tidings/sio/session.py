"""One Engine.IO session: its transport (long-polling, then perhaps WebSocket), its
heartbeat, and the Socket.IO state of namespace ``/`` the server keeps on it.

Long-polling: packets wait in a list until the client's next ``GET`` takes them all.
WebSocket: each packet is one text frame, pushed to a :class:`~tidings.gateway.connection.
Connection` (the ``/ws`` outbox), which writes everything queued for a socket in one
``transport.write`` at the end of the loop turn. No task runs for an idle session: the
heartbeat is two timer handles, and a WebSocket has the one task that reads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tidings.gateway.caps import Lease
from tidings.gateway.connection import Connection
from tidings.sio import packets

POLLING, WEBSOCKET = "polling", "websocket"


class Session:
    """An Engine.IO session (and the Socket.IO socket of namespace ``/`` on it)."""

    __slots__ = ("_closing", "_deadline", "_loop", "_on_close", "_ping_interval",
                 "_ping_timeout", "_pinger", "_poll", "_queue", "_queue_limit",
                 "closed", "conn", "connected", "data", "environ", "lease", "rooms", "sid",
                 "sio_sid", "transport", "upgrading")

    def __init__(self, sid: str, sio_sid: str, *, ping_interval: float, ping_timeout: float,
                 queue_limit: int, lease: Lease, environ: dict[str, Any],
                 on_close: Callable[[Session], None]) -> None:
        self.sid = sid
        self.sio_sid = sio_sid
        self.transport = POLLING
        self.upgrading = False  # a WebSocket probe succeeded; UPGRADE not yet received
        self.conn: Connection | None = None  # the WebSocket, once the transport is one
        self.lease = lease  # the connection cap's slot (gateway/caps.py) until the end
        self.environ: dict[str, Any] | None = environ  # the handshake, until "/" connects
        self.connected = False  # namespace "/" accepted
        self.closed = False
        self.rooms: set[str] = set()
        self.data: dict[str, Any] = {}  # the application's (user id, token id, ...)
        self._queue: list[str] = []  # long-polling: packets not yet taken by a GET
        self._queue_limit = queue_limit
        self._poll: asyncio.Future[None] | None = None  # a GET waiting for packets
        self._loop = asyncio.get_running_loop()
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._pinger: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._on_close = on_close
        self._closing: asyncio.Task[None] | None = None
        self._schedule_ping()

    # Sending

    def send(self, packet: str) -> None:
        """Queue one Engine.IO packet (text) on the session's transport."""
        if self.closed:
            return
        conn = self.conn
        if conn is not None and not self.upgrading:
            if not conn.push(packet.encode(), False):
                self.close()
            return
        self._queue_packet(packet)

    def send_bytes(self, packet: bytes) -> None:
        """Queue one Engine.IO packet already encoded (UTF-8): a room emit's, shared."""
        conn = self.conn
        if conn is not None and not self.upgrading and not self.closed:
            if not conn.push(packet, False):
                self.close()
            return
        self.send(packet.decode())

    def _queue_packet(self, packet: str) -> None:
        if len(self._queue) >= self._queue_limit:  # a client that stopped polling
            self.close()
            return
        self._queue.append(packet)
        self._wake_poll()

    def _wake_poll(self) -> None:
        poll, self._poll = self._poll, None
        if poll is not None and not poll.done():
            poll.set_result(None)

    # Long-polling

    @property
    def polling(self) -> bool:
        """A GET is waiting for packets."""
        return self._poll is not None

    async def take(self) -> list[str]:
        """A long-polling GET: what is queued, else wait until something is.

        While an upgrade is under way (or done) a waiting GET is answered ``NOOP`` at
        once, so that the client can pause polling and switch (Engine.IO 4 §upgrade).
        """
        if not self._queue and not self.closed and not self.upgrading and self.conn is None:
            self._poll = self._loop.create_future()
            try:
                await self._poll
            finally:
                self._poll = None
        if self.closed and not self._queue:
            return [packets.CLOSE]
        if not self._queue:
            return [packets.NOOP]
        taken, self._queue = self._queue, []
        return taken

    # Upgrading to WebSocket

    def probe(self, conn: Connection) -> None:
        """The client tested ``conn`` (``2probe``): answer, and free a waiting GET."""
        conn.push(packets.PONG.encode() + packets.PROBE.encode(), False)
        self.upgrading = True
        self.conn = conn
        self._wake_poll()

    def upgraded(self) -> None:
        """``UPGRADE`` arrived: from now on everything goes over the WebSocket."""
        conn = self.conn
        assert conn is not None
        self.transport = WEBSOCKET
        self.upgrading = False
        queued, self._queue = self._queue, []
        self._wake_poll()
        for packet in queued:
            conn.push(packet.encode(), False)

    def probe_failed(self, conn: Connection) -> None:
        """The probing WebSocket ended before ``UPGRADE``: stay on long-polling."""
        if self.conn is conn and self.transport == POLLING:
            self.conn = None
            self.upgrading = False

    # Heartbeat: the server pings every ping_interval; no pong in ping_timeout closes.

    def _schedule_ping(self) -> None:
        self._pinger = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        self._pinger = None
        if self.closed:
            return
        self.send(packets.PING)
        self._deadline = self._loop.call_later(self._ping_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._deadline = None
        self.close()

    def pong(self) -> None:
        """The client answered a ping."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._schedule_ping()

    # Ending

    def close(self, farewell: str | None = None) -> None:
        """End the session (once): a last packet if given, then the transport's close."""
        if self.closed:
            return
        if farewell is not None:
            self.send(farewell)
        self.closed = True
        for timer in (self._pinger, self._deadline):
            if timer is not None:
                timer.cancel()
        self._pinger = self._deadline = None
        conn = self.conn
        if conn is not None and not conn.closed:
            self._closing = self._loop.create_task(_close_after_flush(conn))
        else:
            self._queue.append(packets.CLOSE)
        self._wake_poll()
        self._on_close(self)

    async def wait_closed(self) -> None:
        """Wait until the WebSocket (if any) has been closed."""
        if self._closing is not None:
            await asyncio.wait([self._closing])


async def _close_after_flush(conn: Connection) -> None:
    """Write what is queued (the farewell), then close the WebSocket normally."""
    try:
        async with asyncio.timeout(5.0):
            await conn.drain()
    except TimeoutError:
        pass
    conn.close(1000)
    await conn.wait_closed()
