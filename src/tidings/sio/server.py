"""The Socket.IO endpoint: Engine.IO 4 over long-polling and WebSocket (with the
upgrade between them), namespace ``/``, events with acks, rooms, and the room emit.

What the application gives it: ``connect(session, auth, environ)`` (``auth`` is the
client's handshake object, ``environ`` the handshake request's headers as ``HTTP_*``,
``QUERY_STRING`` and ``REMOTE_ADDR``; raise :class:`ConnectRefused` to refuse),
``connected(session)`` (after the client was told), ``disconnected(session)``, and one
coroutine per event name, ``handler(session, data)``, whose result is the ack.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tidings.gateway.caps import claim
from tidings.gateway.connection import Connection
from tidings.gateway.wire import WsPeer
from tidings.sio import packets
from tidings.sio.session import POLLING, WEBSOCKET, Session
from tidings.sio.websocket import WsReading

log = logging.getLogger(__name__)

ConnectHandler = Callable[[Session, Any, dict[str, Any]], Awaitable[None]]
EventHandler = Callable[[Session, Any], Awaitable[Any]]
OriginRule = Callable[[str | None, str | None], bool]

# Engine.IO's error answers (the codes socket.io's own server gives)
_TRANSPORT_UNKNOWN = (0, "Transport unknown")
_SESSION_UNKNOWN = (1, "Session ID unknown")
_BAD_REQUEST = (3, "Bad request")
_FORBIDDEN = (4, "Forbidden")
_UNSUPPORTED = (5, "Unsupported protocol version")
# How often a waiting long-poll GET checks that its client is still connected.
_POLL_CHECK = 1.0


class ConnectRefused(Exception):
    """Refuse a client's connect: socket.io-client's ``connect_error`` gets ``message``
    and ``data``."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


def _error(status: int, what: tuple[int, str]) -> web.Response:
    return web.json_response({"code": what[0], "message": what[1]}, status=status)


class SioServer:
    """Serves ``/socket.io/`` on an aiohttp app."""

    def __init__(self, *, allow_origin: OriginRule, connect: ConnectHandler,
                 connected: Callable[[Session], None],
                 disconnected: Callable[[Session], None],
                 ping_interval: float = 25.0, ping_timeout: float = 20.0,
                 connect_timeout: float = 45.0, max_payload: int = 1_000_000,
                 queue_size: int = 1000, write_timeout: float = 10.0) -> None:
        self._allow_origin = allow_origin
        self._connect = connect
        self._connected = connected
        self._disconnected = disconnected
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout  # to join namespace "/" (socket.io's 45 s)
        self.max_payload = max_payload
        self._queue_size = queue_size
        self._write_timeout = write_timeout
        self.events: dict[str, EventHandler] = {}
        self.sessions: dict[str, Session] = {}  # by Engine.IO sid
        self.rooms: dict[str, set[Session]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # WebSocket readers, event handlers

    def on(self, event: str, handler: EventHandler) -> None:
        """Call ``handler(session, data)`` for each ``event``; its result is the ack."""
        self.events[event] = handler

    def attach(self, app: web.Application, path: str = "/socket.io/") -> None:
        """Serve ``path`` (GET, POST, OPTIONS) on ``app``."""
        for method in ("GET", "POST", "OPTIONS"):
            app.router.add_route(method, path, self.handle)

    # Rooms and emitting

    def enter_room(self, session: Session, room: str) -> None:
        """Put ``session`` in ``room``."""
        if not session.closed:
            session.rooms.add(room)
            self.rooms.setdefault(room, set()).add(session)

    def leave_room(self, session: Session, room: str) -> None:
        """Take ``session`` out of ``room``."""
        session.rooms.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(session)
            if not members:
                del self.rooms[room]

    def emit(self, event: str, data: Any, rooms: list[str]) -> int:
        """Send ``event`` to every connected session in any of ``rooms``, each once.

        Encoded once for all of them; each WebSocket gets it in its next write (one
        per loop turn, whatever else is queued for it). Returns how many it went to.
        """
        message = packets.event_message(event, data)
        if len(rooms) == 1:
            members: Any = self.rooms.get(rooms[0], ())
        else:
            members = set().union(*(self.rooms.get(room, ()) for room in rooms))
        sent = 0
        for session in members:
            if session.connected:
                session.send_bytes(message)
                sent += 1
        return sent

    def emit_to(self, session: Session, event: str, data: Any) -> None:
        """Send ``event`` to one session."""
        if session.connected:
            session.send_bytes(packets.event_message(event, data))

    def disconnect(self, session: Session) -> None:
        """Tell the client it was disconnected (``io server disconnect``) and end it."""
        session.close(packets.DISCONNECT_MESSAGE)

    async def shutdown(self) -> None:
        """Disconnect every client and stop every task."""
        sessions = list(self.sessions.values())
        for session in sessions:
            self.disconnect(session)
        await asyncio.gather(*(s.wait_closed() for s in sessions), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # HTTP

    def _cors(self, request: web.Request) -> dict[str, str] | None:
        """The CORS headers for this request, or None if its Origin may not come."""
        origin = request.headers.get("Origin")
        if not self._allow_origin(origin, request.host):
            return None
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One request of Engine.IO 4 (handshake, poll, post, upgrade, preflight)."""
        cors = self._cors(request)
        if cors is None:
            return web.Response(status=400, text="Not an accepted origin.")
        if request.method == "OPTIONS":
            headers = {**cors, "Access-Control-Allow-Methods": "OPTIONS, GET, POST"}
            asked = request.headers.get("Access-Control-Request-Headers")
            if asked:
                headers["Access-Control-Allow-Headers"] = asked
            return web.Response(status=200, headers=headers)
        query = request.query
        if query.get("EIO") != "4":
            return _error(400, _UNSUPPORTED)
        transport = query.get("transport")
        if transport not in (POLLING, WEBSOCKET):
            return _error(400, _TRANSPORT_UNKNOWN)
        sid = query.get("sid")
        if sid is None:
            if request.method != "GET":
                return _error(400, _BAD_REQUEST)
            return self._handshake(request, transport, cors)
        session = self.sessions.get(sid)
        if session is None:
            return _error(400, _SESSION_UNKNOWN)
        if transport == WEBSOCKET:
            if request.method != "GET" or session.conn is not None:
                return _error(400, _BAD_REQUEST)
            return self._probe(request, session)
        if session.transport != POLLING:
            return _error(400, _TRANSPORT_UNKNOWN)
        if request.method == "GET":
            return await self._poll(request, session, cors)
        return await self._post(request, session, cors)

    def _new_session(self, request: web.Request) -> Session:
        environ: dict[str, Any] = {f"HTTP_{k.upper().replace('-', '_')}": v
                                   for k, v in request.headers.items()}
        environ["QUERY_STRING"] = request.query_string
        environ["REMOTE_ADDR"] = request.remote or ""
        # Unguessable: a long-polling request is only as private as its sid. One draw
        # of randomness for both ids (a system call each was a tenth of a connect).
        ids = base64.urlsafe_b64encode(secrets.token_bytes(30)).decode()
        sid = ids[:20]
        session = Session(sid, ids[20:], ping_interval=self.ping_interval,
                          ping_timeout=self.ping_timeout, queue_limit=self._queue_size,
                          lease=claim(request), environ=environ, on_close=self._closed)
        self.sessions[sid] = session
        asyncio.get_running_loop().call_later(self.connect_timeout, self._connect_timed_out,
                                              session)
        return session

    @staticmethod
    def _connect_timed_out(session: Session) -> None:
        if not session.connected:  # an Engine.IO session that never became a socket
            session.close()

    def _handshake(self, request: web.Request, transport: str,
                   cors: dict[str, str]) -> web.StreamResponse:
        if transport == WEBSOCKET:
            peer = WsPeer.take_over(request, self.max_payload + 1)
            session = self._new_session(request)
            conn = self._connection(peer, request)
            session.conn = conn
            session.transport = WEBSOCKET
            conn.push(packets.open_packet(session.sid, [], self.ping_interval,
                                          self.ping_timeout, self.max_payload).encode(), False)
            WsReading(self, peer, conn, session, probing=False).park()
            return web.StreamResponse(status=101)  # never sent: the socket is ours now
        session = self._new_session(request)
        return web.Response(text=packets.open_packet(
            session.sid, [WEBSOCKET], self.ping_interval, self.ping_timeout,
            self.max_payload), content_type="text/plain", charset="utf-8", headers=cors)

    def _connection(self, peer: WsPeer, request: web.Request) -> Connection:
        return Connection(peer, queue_size=self._queue_size, write_timeout=self._write_timeout,
                          remote=request.remote or "")

    async def _poll(self, request: web.Request, session: Session,
                    cors: dict[str, str]) -> web.StreamResponse:
        if session.polling:  # two GETs at once: the protocol forbids it
            session.close()
            return _error(400, _BAD_REQUEST)
        taking = asyncio.ensure_future(session.take())
        # aiohttp neither cancels a handler whose client went away nor says so: look,
        # and end the session as engine.io does ("poll connection closed prematurely"),
        # not 45 s later at the ping timeout, holding its connection slot till then.
        try:
            while not taking.done():
                await asyncio.wait([taking], timeout=_POLL_CHECK)
                transport = request.transport
                if not taking.done() and (transport is None or transport.is_closing()):
                    session.close()
        finally:
            taking.cancel()  # only if this handler was cancelled: done otherwise
        body = packets.join_payload(taking.result())
        return web.Response(text=body, content_type="text/plain", charset="utf-8",
                            headers=cors)

    async def _post(self, request: web.Request, session: Session,
                    cors: dict[str, str]) -> web.StreamResponse:
        if (request.content_length or 0) > self.max_payload:
            session.close()
            return _error(413, _BAD_REQUEST)
        body = await request.text()
        for packet in packets.split_payload(body):
            if not self.received(session, packet):
                session.close()
                return _error(400, _BAD_REQUEST)
        return web.Response(text="ok", content_type="text/html", charset="utf-8",
                            headers=cors)

    def _probe(self, request: web.Request, session: Session) -> web.StreamResponse:
        peer = WsPeer.take_over(request, self.max_payload + 1)
        conn = self._connection(peer, request)
        WsReading(self, peer, conn, session, probing=True).park()
        return web.StreamResponse(status=101)

    # Engine.IO and Socket.IO packets

    def received(self, session: Session, packet: str) -> bool:
        """Handle one Engine.IO packet from the client; False if it was not valid."""
        kind = packet[:1]
        if kind == packets.MESSAGE:
            try:
                sio = packets.decode_sio(packet[1:])
            except packets.PacketError as exc:
                log.info("socket.io %s: %s", session.sio_sid, exc)
                return False
            self._sio_packet(session, sio)
            return True
        if kind == packets.PONG:
            session.pong()
            return True
        if kind == packets.CLOSE:
            session.close()
            return True
        return kind == packets.NOOP

    def _sio_packet(self, session: Session, packet: packets.SioPacket) -> None:
        if packet.namespace != "/":
            session.send(packets.connect_error_message(packet.namespace,
                                                       "Invalid namespace"))
            return
        if packet.type == packets.CONNECT:
            if not session.connected and session.environ is not None:
                self.spawn(self._connecting(session, packet.data))
        elif packet.type == packets.EVENT:
            if session.connected:
                self.spawn(self._event(session, packet))
        elif packet.type == packets.DISCONNECT:
            self._leave_namespace(session)
        # an ACK: the server never asks for one; CONNECT_ERROR never comes from a client

    def spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``work`` as a task that :meth:`shutdown` waits for."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connecting(self, session: Session, auth: Any) -> None:
        environ, session.environ = session.environ, None
        assert environ is not None
        try:
            await self._connect(session, auth, environ)
        except ConnectRefused as exc:
            session.send(packets.connect_error_message("/", exc.message, exc.data))
            return
        except Exception:
            log.exception("socket.io %s: connect handler failed", session.sio_sid)
            session.send(packets.connect_error_message("/", "internal error"))
            return
        if session.closed:
            return
        session.connected = True
        session.send(packets.connect_message(session.sio_sid))
        self._connected(session)

    async def _event(self, session: Session, packet: packets.SioPacket) -> None:
        name, *args = packet.data
        handler = self.events.get(name)
        if handler is None:
            return
        try:
            result = await handler(session, args[0] if args else None)
        except Exception:
            log.exception("socket.io %s: handler of %r failed", session.sio_sid, name)
            return
        if packet.id is not None:
            session.send(packets.ack_message(packet.id, [] if result is None else [result]))

    def _leave_namespace(self, session: Session) -> None:
        for room in list(session.rooms):
            self.leave_room(session, room)
        if session.connected:
            session.connected = False
            self._disconnected(session)

    def _closed(self, session: Session) -> None:
        """The session ended: out of the registry and its rooms, its cap slot back."""
        self.sessions.pop(session.sid, None)
        self._leave_namespace(session)
        session.lease.release()

