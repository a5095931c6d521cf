"""The Socket.IO endpoint at ``/socket.io`` (python-socketio on the node's aiohttp
app), so the seed's Vue client with ``socket.io-client`` v4 connects unchanged.

A client authenticates in the handshake — ``io(url, {auth: {token}})``, or
``?token=`` / ``Authorization: Bearer`` — and joins rooms either in the same
``auth`` object (``floor``, ``dept``) or later with ``socket.emit("join", {floor: 3})``.
The node emits desk events only to the rooms they concern. A client may occupy and
release desks with §2.2.2's ``workstation_occupy`` / ``workstation_release``
(:mod:`tidings.apps.desks.occupancy`). Each engine.io session holds one slot of the
node's connection caps (:mod:`tidings.gateway.caps`) from its handshake to its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

from tidings.api.openapi import Operation, Param, describe
from tidings.apps.desks.events import department_room, floor_room, message
from tidings.apps.desks.monitoring import DeskMonitor
from tidings.apps.desks.occupancy import Occupancy
from tidings.auth import Authenticator, AuthError, Identity
from tidings.gateway.caps import Lease, claim
from tidings.gateway.origins import origin_allowed
from tidings.hooks import HookUnavailable

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
        self.sio = socketio.AsyncServer(async_mode="aiohttp", logger=False,
                                        engineio_logger=False,
                                        cors_allowed_origins=_origin_rule(allowed_origins))
        self.connected = 0
        self._token_of: dict[str, int | None] = {}  # sid → the token it authenticated with
        # sid → (user id, client address, connected at ms), for the server API.
        self._client_of: dict[str, tuple[int, str, int]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._expiries: dict[str, asyncio.TimerHandle] = {}  # sid → its credential's end
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("join", self._join)
        self.sio.on("leave", self._leave)
        self._occupancy: Occupancy | None = None
        self._leases: dict[str, Lease] = {}  # engine.io sid → its connection-cap slot
        self._eio_connect = self.sio.eio.handlers["connect"]
        self._eio_disconnect = self.sio.eio.handlers["disconnect"]
        self.sio.eio.on("connect", self._session_opened)
        self.sio.eio.on("disconnect", self._session_closed)

    def serve_occupancy(self, occupancy: Occupancy) -> None:
        """Answer §2.2.2's ``workstation_occupy`` and ``workstation_release``."""
        self._occupancy = occupancy
        self.sio.on("workstation_occupy", self._occupy)
        self.sio.on("workstation_release", self._release)

    async def _session_opened(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        """An engine.io session began: it holds the cap's slot its handshake took
        (gateway/caps.py) until it ends, across polling requests and the upgrade."""
        answer = await self._eio_connect(eio_sid, environ)
        request = environ.get("aiohttp.request")
        if answer in (None, True) and isinstance(request, web.Request):
            self._leases[eio_sid] = claim(request)
        return answer

    async def _session_closed(self, eio_sid: str, reason: Any) -> None:
        try:
            await self._eio_disconnect(eio_sid, reason)
        finally:
            lease = self._leases.pop(eio_sid, None)
            if lease is not None:
                lease.release()

    def attach(self, app: web.Application) -> None:
        """Serve ``/socket.io/`` on ``app``."""
        self.sio.attach(app, socketio_path="socket.io")
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

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = self._token(environ, auth)
        if not token and self.connect_hook is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "send auth: {token}", {"code": "UNAUTHORIZED"})
        try:
            identity = await (self._auth.verify(token) if self.connect_hook is None
                              else self.connect_hook(sid, token, environ))
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": "UNAUTHORIZED"}) from None
        except HookUnavailable as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": "BACKEND_UNAVAILABLE"}) from None
        await self.sio.save_session(sid, {"user_id": identity.user_id})
        self._token_of[sid] = identity.token_id
        request = environ.get("aiohttp.request")
        remote = (request.remote or "") if isinstance(request, web.Request) else ""
        self._client_of[sid] = (identity.user_id, remote, int(time.time() * 1000))
        # No in-band refresh on Socket.IO: the client is told, then disconnected, when its
        # credential expires (it reconnects with a new token).
        left = self._auth.seconds_left(identity)
        if left is not None:
            self._expiries[sid] = asyncio.get_running_loop().call_later(
                left, self._expire, sid)
        self.connected += 1
        self._monitor.socketio_connections.set(self.connected)
        joined: list[str] = []
        if isinstance(auth, dict) and ("floor" in auth or "dept" in auth):
            try:
                joined = await self._enter(sid, auth)
            except RoomError as exc:
                self.sio.start_background_task(self.sio.emit, "error", message(
                    "error", {"code": exc.code, "message": str(exc)}), to=sid)
        # Sent from a task: python-socketio sends the CONNECT packet only once this
        # handler returns, and the client drops events that arrive before it.
        self.sio.start_background_task(self.sio.emit, "connection_ack", message(
            "connection_ack", {"userId": identity.user_id, "rooms": joined}), to=sid)

    async def _disconnect(self, sid: str, *_reason: Any) -> None:
        self._token_of.pop(sid, None)
        self._client_of.pop(sid, None)
        expiry = self._expiries.pop(sid, None)
        if expiry is not None:
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

    async def _enter(self, sid: str, data: Any) -> list[str]:
        rooms = await self._rooms(data)
        if len(self.sio.rooms(sid)) + len(rooms) > MAX_ROOMS_PER_CLIENT + 1:  # +1: own sid
            raise RoomError("TOO_MANY_ROOMS", f"at most {MAX_ROOMS_PER_CLIENT} rooms")
        for room in rooms:
            await self.sio.enter_room(sid, room)
        return rooms

    async def _join(self, sid: str, data: Any = None) -> dict[str, Any]:
        """``join`` → ack ``{ok: true, rooms}`` or ``{ok: false, error: {code, message}}``."""
        try:
            return {"ok": True, "rooms": await self._enter(sid, data)}
        except RoomError as exc:
            return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}

    async def _occupy(self, sid: str, data: Any = None) -> dict[str, Any]:
        """``workstation_occupy`` → ack (and ``occupy_result`` event) as in §2.2.2."""
        assert self._occupancy is not None
        session = await self.sio.get_session(sid)
        result = await self._occupancy.occupy(int(session["user_id"]), data)
        await self.sio.emit("occupy_result", result, to=sid)
        return result

    async def _release(self, sid: str, data: Any = None) -> dict[str, Any]:
        """``workstation_release`` → ack (and ``release_result`` event), same shape."""
        assert self._occupancy is not None
        session = await self.sio.get_session(sid)
        result = await self._occupancy.release(int(session["user_id"]), data)
        await self.sio.emit("release_result", result, to=sid)
        return result

    async def _leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        """``leave`` → ack like ``join``."""
        try:
            rooms = await self._rooms(data)
        except RoomError as exc:
            return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
        for room in rooms:
            await self.sio.leave_room(sid, room)
        return {"ok": True, "rooms": rooms}

    def _expire(self, sid: str) -> None:
        log.info("socket.io %s: token expired, disconnecting", sid)
        self._expiries.pop(sid, None)

        async def tell_then_disconnect() -> None:
            await self.sio.emit("token_expired", message("token_expired", {
                "code": "TOKEN_EXPIRED", "message": "the token expired: reconnect with a "
                                                    "new one"}), to=sid)
            await self.sio.disconnect(sid)
        task = asyncio.get_running_loop().create_task(tell_then_disconnect())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_tokens(self, token_ids: set[int]) -> int:
        """Disconnect every client authenticated with one of ``token_ids`` (revoked)."""
        doomed = [sid for sid, token in self._token_of.items() if token in token_ids]
        for sid in doomed:
            log.info("socket.io %s: token revoked, disconnecting", sid)
            task = asyncio.get_running_loop().create_task(self.sio.disconnect(sid))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(doomed)

    def control_connections(self, user_id: int | None) -> list[dict[str, Any]]:
        """This node's Socket.IO clients (of one user, or all) for the server API."""
        return [{"transport": "socketio", "id": sid, "user_id": uid, "device_id": "",
                 "remote": remote, "connected_at": at, "channels": sorted(
                     r for r in self.sio.rooms(sid) if r != sid)}
                for sid, (uid, remote, at) in self._client_of.items()
                if user_id is None or uid == user_id]

    def control_disconnect(self, user_id: int, conn_id: str | None, code: int,
                           reason: str) -> int:
        """Disconnect this node's Socket.IO clients of a user (or the one ``conn_id``),
        telling each first with a ``disconnect_reason`` event ``{code, reason}``."""
        doomed = [sid for sid, (uid, _, _) in self._client_of.items()
                  if uid == user_id and conn_id in (None, sid)]
        for sid in doomed:
            log.info("socket.io %s of user %d: disconnected by an operator", sid, user_id)
            task = asyncio.get_running_loop().create_task(self._kick(sid, code, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(doomed)

    async def _kick(self, sid: str, code: int, reason: str) -> None:
        await self.sio.emit("disconnect_reason", {"code": code, "reason": reason}, to=sid)
        await self.sio.disconnect(sid)

    async def emit(self, type_: str, body: dict[str, Any], rooms: list[str]) -> None:
        """Send one event to every client in any of ``rooms`` (each client once)."""
        if rooms:
            await self.sio.emit(type_, body, room=rooms)

    async def close(self) -> None:
        """Disconnect every client."""
        await self.sio.shutdown()
