"""Reading one Socket.IO WebSocket: the upgrade probe from long-polling, then Engine.IO
packets, one text frame each.

As on ``/ws``, a socket is read by a task only while frames wait: an idle one holds
no task or coroutine (about 1.6 KiB each, issue 19), only a :class:`WsReading` parked
on it, which :meth:`WsPeer.park` calls when something arrives.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import WSMsgType

from tidings.gateway.connection import Connection
from tidings.gateway.wire import WsPeer
from tidings.sio import packets
from tidings.sio.session import Session

if TYPE_CHECKING:
    from tidings.sio.server import SioServer


class WsReading:
    """What reading one Socket.IO WebSocket takes, kept while it is idle."""

    __slots__ = ("conn", "peer", "probing", "server", "session")

    def __init__(self, server: SioServer, peer: WsPeer, conn: Connection, session: Session,
                 *, probing: bool) -> None:
        self.server = server
        self.peer = peer
        self.conn = conn
        self.session = session
        self.probing = probing  # an upgrade from long-polling, until its "5"

    def park(self) -> None:
        """Wait, without a task, until something arrives on the socket."""
        self.peer.park(self)

    def __call__(self) -> None:
        """Something arrived on the idle socket: read it until it is idle again."""
        self.conn.reader = self.server.spawn(self._serve())

    async def _serve(self) -> None:
        peer, conn, session = self.peer, self.conn, self.session
        idle = False
        try:
            while not conn.closed:
                if not peer.pending:
                    idle = True
                    return
                msg = await peer.receive()
                if msg.type == WSMsgType.PING:
                    await peer.pong(msg.data)
                    continue
                if msg.type != WSMsgType.TEXT:  # closed, an error, or binary (unsupported)
                    return
                text: str = msg.data
                if self.probing:
                    if text == packets.PING + packets.PROBE and not session.upgrading \
                            and not session.closed:
                        session.probe(conn)
                        continue
                    if text == packets.UPGRADE and session.upgrading and session.conn is conn:
                        session.upgraded()
                        self.probing = False
                        continue
                    if text == packets.NOOP:
                        continue
                    return  # anything else before the upgrade: drop the probe
                if not self.server.received(session, text):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.reader = None
            if idle:  # the next frame (or the close) makes a new task
                self.park()
            else:
                self._ended()

    def _ended(self) -> None:
        conn, session = self.conn, self.session
        if self.probing:
            session.probe_failed(conn)
            if not conn.closed:
                conn.close(1000)
        elif not session.closed:
            session.close()
        if not conn.closed:
            conn.close(self.peer.close_code or 1000)
