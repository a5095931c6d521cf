"""The Socket.IO endpoint at ``/socket.io`` (Tidings' own Engine.IO 4 / Socket.IO 5
server, :mod:`tidings.sio`, on the node's aiohttp app), so the seed's Vue client with
``socket.io-client`` v4 connects unchanged.

A client authenticates in the handshake — ``io(url, {auth: {token}})``, or
``?token=`` / ``Authorization: Bearer`` — and joins rooms either in the same
``auth`` object (``floor``, ``dept``) or later with ``socket.emit("join", {floor: 3})``.
The node emits desk events only to the rooms they concern, each event encoded once for
all its recipients. A client may occupy and release desks with §2.2.2's
``workstation_occupy`` / ``workstation_release`` (:mod:`tidings.apps.desks.occupancy`).
Each engine.io session holds one slot of the node's connection caps
(:mod:`tidings.gateway.caps`) from its handshake to its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tidings.api.openapi import Operation, Param, describe
from tidings.apps.desks.events import department_room, floor_room, message
from tidings.apps.desks.monitoring import DeskMonitor
from tidings.apps.desks.occupancy import Occupancy
from tidings.auth import Authenticator, AuthError, Identity
from tidings.gateway.origins import origin_allowed
from tidings.hooks import HookUnavailable
from tidings.sio.server import ConnectRefused, SioServer
from tidings.sio.session import Session

log = logging.getLogger(__name__)

MAX_ROOMS_PER_CLIENT = 100
ResolveDepartment = Callable[[str], Awaitable[int | None]]


class RoomError(ValueError):
    """A join/leave request named no valid room."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _origin_rule(allowed: list[str]) -> Callable[[str | None, dict[str, Any]], bool]:
    """The core's Origin rule (:mod:`tidings.gateway.origins`, the same function as
    ``/ws``): same host and port as ``Host``, no Origin at all, or one listed."""
    def allow(origin: str | None, environ: dict[str, Any]) -> bool:
        return origin_allowed(origin, environ.get("HTTP_HOST"), allowed)
    return allow


def _ids(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class DeskSockets:
    """The Socket.IO server and its handlers."""

    def __init__(self, auth: Authenticator, allowed_origins: list[str],
                 resolve_department: ResolveDepartment, monitor: DeskMonitor) -> None:
        self._auth = auth
        #: The application's connect hook (hooks/connect.py), when one is set.
        self.connect_hook: Callable[[str, str, dict[str, Any]], Awaitable[Identity]] | None = None
        self._resolve_department = resolve_department
        self._monitor = monitor
        rule = _origin_rule(allowed_origins)
        self.sio = SioServer(allow_origin=lambda origin, host: rule(origin, {"HTTP_HOST": host}),
                             connect=self._connect, connected=self._connected,
                             disconnected=self._disconnect)
        self.connected = 0
        self.sio.on("join", self._join)
        self.sio.on("leave", self._leave)
        self._occupancy: Occupancy | None = None

    def serve_occupancy(self, occupancy: Occupancy) -> None:
        """Answer §2.2.2's ``workstation_occupy`` and ``workstation_release``."""
        self._occupancy = occupancy
        self.sio.on("workstation_occupy", self._occupy)
        self.sio.on("workstation_release", self._release)

    def attach(self, app: web.Application) -> None:
        """Serve ``/socket.io/`` on ``app``."""
        self.sio.attach(app, "/socket.io/")
        describe(app, [Operation(method, "/socket.io/", f"socketIo{method.capitalize()}",
                                 "Socket.IO (Engine.IO 4) of the desk map: `join`/`leave` "
                                 "rooms, seed 000 events", "desks", auth="none",
                                 params=(Param("EIO", str, "4", required=True),
                                         Param("transport", str, "polling or websocket",
                                               required=True),
                                         Param("token", str, "the token (or auth.token in "
                                                             "the handshake)")),
                                 media="text/plain",
                                 extensions={"x-tidings-path": "Socket.IO's own path, as the "
                                                               "seed's socket.io-client uses"})
                       for method in ("GET", "POST", "OPTIONS")])

    @staticmethod
    def _token(environ: dict[str, Any], auth: Any) -> str:
        if isinstance(auth, dict) and isinstance(auth.get("token"), str):
            return str(auth["token"])
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("token"):
            return str(query["token"][0])
        scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    async def _connect(self, session: Session, auth: Any, environ: dict[str, Any]) -> None:
        token = self._token(environ, auth)
        if not token and self.connect_hook is None:
            raise ConnectRefused("send auth: {token}", {"code": "UNAUTHORIZED"})
        try:
            identity = await (self._auth.verify(token) if self.connect_hook is None
                              else self.connect_hook(session.sio_sid, token, environ))
        except AuthError as exc:
            raise ConnectRefused(str(exc), {"code": "UNAUTHORIZED"}) from None
        except HookUnavailable as exc:
            raise ConnectRefused(str(exc), {"code": "BACKEND_UNAVAILABLE"}) from None
        session.data["user_id"] = identity.user_id
        session.data["token_id"] = identity.token_id
        # For the server API: the client's address and when it connected (ms).
        session.data["remote"] = str(environ.get("REMOTE_ADDR", ""))
        session.data["connected_at"] = int(time.time() * 1000)
        # No in-band refresh on Socket.IO: the client is told, then disconnected, when its
        # credential expires (it reconnects with a new token).
        left = self._auth.seconds_left(identity)
        if left is not None:
            session.data["expiry"] = asyncio.get_running_loop().call_later(
                left, self._expire, session)
        joined: list[str] = []
        if isinstance(auth, dict) and ("floor" in auth or "dept" in auth):
            try:
                joined = await self._enter(session, auth)
            except RoomError as exc:
                session.data["room_error"] = exc
        session.data["joined"] = joined

    def _connected(self, session: Session) -> None:
        """The client has its CONNECT: now the events it may not miss."""
        self.connected += 1
        self._monitor.socketio_connections.set(self.connected)
        error = session.data.pop("room_error", None)
        if isinstance(error, RoomError):
            self.sio.emit_to(session, "error", message(
                "error", {"code": error.code, "message": str(error)}))
        self.sio.emit_to(session, "connection_ack", message(
            "connection_ack", {"userId": session.data["user_id"],
                               "rooms": session.data.pop("joined", [])}))

    def _disconnect(self, session: Session) -> None:
        expiry = session.data.pop("expiry", None)
        if isinstance(expiry, asyncio.TimerHandle):
            expiry.cancel()
        self.connected -= 1
        self._monitor.socketio_connections.set(self.connected)

    async def _rooms(self, data: Any) -> list[str]:
        if not isinstance(data, dict):
            raise RoomError("BAD_ROOM", "send {floor: ID} and/or {dept: ID or name}")
        rooms: list[str] = []
        for floor in _ids(data.get("floor")):
            if isinstance(floor, bool) or not isinstance(floor, int) or not 0 < floor < 2**31:
                raise RoomError("BAD_ROOM", "floor must be a floor id")
            rooms.append(floor_room(floor))
        for dept in _ids(data.get("dept", data.get("department"))):
            if isinstance(dept, int) and not isinstance(dept, bool) and 0 < dept < 2**31:
                rooms.append(department_room(dept))
                continue
            found = await self._resolve_department(dept) if isinstance(dept, str) and \
                len(dept) <= 100 else None
            if found is None:
                raise RoomError("DEPARTMENT_NOT_FOUND", f"no department {str(dept)[:100]!r}")
            rooms.append(department_room(found))
        if not rooms:
            raise RoomError("BAD_ROOM", "send {floor: ID} and/or {dept: ID or name}")
        return rooms

    async def _enter(self, session: Session, data: Any) -> list[str]:
        rooms = await self._rooms(data)
        if len(session.rooms | set(rooms)) > MAX_ROOMS_PER_CLIENT:
            raise RoomError("TOO_MANY_ROOMS", f"at most {MAX_ROOMS_PER_CLIENT} rooms")
        for room in rooms:
            self.sio.enter_room(session, room)
        return rooms

    async def _join(self, session: Session, data: Any = None) -> dict[str, Any]:
        """``join`` → ack ``{ok: true, rooms}`` or ``{ok: false, error: {code, message}}``."""
        try:
            return {"ok": True, "rooms": await self._enter(session, data)}
        except RoomError as exc:
            return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}

    async def _occupy(self, session: Session, data: Any = None) -> dict[str, Any]:
        """``workstation_occupy`` → ack (and ``occupy_result`` event) as in §2.2.2."""
        assert self._occupancy is not None
        result = await self._occupancy.occupy(int(session.data["user_id"]), data)
        self.sio.emit_to(session, "occupy_result", result)
        return result

    async def _release(self, session: Session, data: Any = None) -> dict[str, Any]:
        """``workstation_release`` → ack (and ``release_result`` event), same shape."""
        assert self._occupancy is not None
        result = await self._occupancy.release(int(session.data["user_id"]), data)
        self.sio.emit_to(session, "release_result", result)
        return result

    async def _leave(self, session: Session, data: Any = None) -> dict[str, Any]:
        """``leave`` → ack like ``join``."""
        try:
            rooms = await self._rooms(data)
        except RoomError as exc:
            return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
        for room in rooms:
            self.sio.leave_room(session, room)
        return {"ok": True, "rooms": rooms}

    def _expire(self, session: Session) -> None:
        log.info("socket.io %s: token expired, disconnecting", session.sio_sid)
        session.data.pop("expiry", None)
        self.sio.emit_to(session, "token_expired", message("token_expired", {
            "code": "TOKEN_EXPIRED", "message": "the token expired: reconnect with a new one"}))
        self.sio.disconnect(session)

    def close_tokens(self, token_ids: set[int]) -> int:
        """Disconnect every client authenticated with one of ``token_ids`` (revoked)."""
        doomed = [s for s in self.sio.sessions.values()
                  if s.connected and s.data.get("token_id") in token_ids]
        for session in doomed:
            log.info("socket.io %s: token revoked, disconnecting", session.sio_sid)
            self.sio.disconnect(session)
        return len(doomed)

    def control_connections(self, user_id: int | None) -> list[dict[str, Any]]:
        """This node's Socket.IO clients (of one user, or all) for the server API."""
        return [{"transport": "socketio", "id": s.sio_sid, "user_id": s.data["user_id"],
                 "device_id": "", "remote": s.data["remote"],
                 "connected_at": s.data["connected_at"], "channels": sorted(s.rooms)}
                for s in self.sio.sessions.values()
                if s.connected and user_id in (None, s.data["user_id"])]

    def control_disconnect(self, user_id: int, conn_id: str | None, code: int,
                           reason: str) -> int:
        """Disconnect this node's Socket.IO clients of a user (or the one ``conn_id``),
        telling each first with a ``disconnect_reason`` event ``{code, reason}``."""
        doomed = [s for s in self.sio.sessions.values() if s.connected
                  and s.data["user_id"] == user_id and conn_id in (None, s.sio_sid)]
        for session in doomed:
            log.info("socket.io %s of user %d: disconnected by an operator",
                     session.sio_sid, user_id)
            self.sio.emit_to(session, "disconnect_reason", {"code": code, "reason": reason})
            self.sio.disconnect(session)
        return len(doomed)

    async def emit(self, type_: str, body: dict[str, Any], rooms: list[str]) -> None:
        """Send one event to every client in any of ``rooms`` (each client once)."""
        if rooms:
            self.sio.emit(type_, body, rooms)

    async def close(self) -> None:
        """Disconnect every client."""
        await self.sio.shutdown()
