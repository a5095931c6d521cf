"""``GET /api/v1/ws/editing/{session_id}``: the fast path of seed 002.

A client opens one socket per editing session and receives JSON text frames
``{"type": ..., "data": {...}}``: first ``connected`` (a snapshot of the
session's state, so a client that reconnects, on any node, misses nothing the
database knows), then live ``takeover_request``, ``takeover_response``,
``takeover_expired`` and ``editing_ended`` events, which reach this node through
the bus from whichever node changed the state. The client may send
``{"type": "ping"}`` (answered ``pong``; it also refreshes the session's
heartbeat). While a socket is open the node keeps its session alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from tidings.api.errors import ApiError
from tidings.apps.editing.models import Session
from tidings.apps.editing.service import EditingService
from tidings.auth import Authenticator, AuthError, Identity
from tidings.bus.base import EditingEvent
from tidings.gateway.origins import origin_allowed
from tidings.protocol.codes import CloseCode
from tidings.protocol.codes import EditingErrorCode as Code
from tidings.protocol.codes import EditingEventType as Ev
from tidings.store.base import now_ms

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"es_[A-Za-z0-9_-]{10,64}\Z")
_MAX_CLIENT_FRAME = 4096  # clients only send pings
_peer_ids = itertools.count(1)
_QUEUE_LIMIT = 100  # events waiting for one slow socket before it is closed (4413)


class ClientFrame(msgspec.Struct):
    """What a client may send: ``{"type": "ping"}``."""

    type: str
    data: dict[str, Any] | None = None


def event_frame(type_: str, data: dict[str, Any]) -> str:
    """One JSON text frame."""
    return msgspec.json.encode({"type": type_, "data": data}).decode()


class EditingPeer:
    """One open socket of one session on this node, with its own ordered outbox."""

    def __init__(self, ws: web.WebSocketResponse, session: Session,
                 token_id: int | None, remote: str = "") -> None:
        self.id = f"e{next(_peer_ids)}"  # unique on this node (the server API names it)
        self.remote = remote
        self.ws = ws
        self.session = session
        self.token_id = token_id  # None for a JWT
        self.connected_at = now_ms()
        self.outbox: asyncio.Queue[str] = asyncio.Queue(_QUEUE_LIMIT)

    def push(self, frame: str) -> None:
        """Queue a frame; a socket that stopped reading is closed, not waited for."""
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("editing socket of %s is not reading: closing it",
                        self.session.session_id)
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CloseCode.SLOW_CONSUMER, message=b"slow consumer"))

    async def write(self, write_timeout: float) -> None:
        """Send queued frames in order until the socket closes; drop a socket whose
        write blocks longer than ``write_timeout``."""
        while not self.ws.closed:
            frame = await self.outbox.get()
            try:
                async with asyncio.timeout(write_timeout):
                    await self.ws.send_str(frame)
            except TimeoutError:
                log.warning("editing socket of %s blocked: closing it", self.session.session_id)
                await self.ws.close(code=CloseCode.SLOW_CONSUMER, message=b"write timeout")


class EditingSockets:
    """This node's editing sockets, by session id."""

    def __init__(self, service: EditingService, auth: Authenticator,
                 allowed_origins: list[str], write_timeout: float) -> None:
        self.service = service
        self.auth = auth
        self.allowed_origins = allowed_origins
        self.write_timeout = write_timeout
        self.peers: dict[str, set[EditingPeer]] = {}
        self._closing: set[asyncio.Task[Any]] = set()

    async def _identify(self, request: web.Request) -> Identity:
        # Browsers cannot set headers on a WebSocket: the token may come as ?token=.
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = request.query.get("token", "")
        if not token:
            raise ApiError(401, "UNAUTHORIZED", "send Authorization: Bearer <token> or ?token=")
        try:
            return await self.auth.verify(token.strip())
        except AuthError as exc:
            raise ApiError(401, "UNAUTHORIZED", str(exc)) from None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, check the session is the caller's, upgrade, then serve."""
        if not origin_allowed(request.headers.get("Origin"), request.host,
                              self.allowed_origins):
            raise ApiError(403, "ORIGIN_FORBIDDEN", "Origin not allowed")
        me = await self._identify(request)
        session_id = request.match_info["session_id"]
        session = (await self.service.get_session(session_id)
                   if SESSION_ID.match(session_id) else None)
        if session is None or session.user_id != me.user_id:
            raise ApiError(404, Code.SESSION_NOT_FOUND, "no such editing session of yours")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=_MAX_CLIENT_FRAME)
        await ws.prepare(request)
        peer = EditingPeer(ws, session, me.token_id, request.remote or "")
        self.peers.setdefault(session_id, set()).add(peer)
        writer: asyncio.Task[None] | None = None
        # No in-band refresh here: the socket closes (4402) when its credential expires.
        left = self.auth.seconds_left(me)
        expiry = None if left is None else asyncio.get_running_loop().call_later(
            left, self._expire, peer)
        try:
            # Registered first, so an event racing the snapshot is queued behind it
            # (and possibly repeated in it: clients key requests by id).
            snapshot = await self.service.snapshot(session)
            await ws.send_str(event_frame(Ev.CONNECTED, snapshot))
            writer = asyncio.get_running_loop().create_task(peer.write(self.write_timeout))
            await self._read(peer)
        finally:
            if expiry is not None:
                expiry.cancel()
            self._forget(peer)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await writer
        return ws

    async def _read(self, peer: EditingPeer) -> None:
        async for msg in peer.ws:
            if msg.type != WSMsgType.TEXT:
                peer.push(event_frame(Ev.ERROR, {"code": Code.BAD_FRAME,
                                                 "message": "send JSON text frames"}))
                continue
            try:
                frame = msgspec.json.decode(msg.data, type=ClientFrame)
            except msgspec.MsgspecError as exc:
                peer.push(event_frame(Ev.ERROR, {"code": Code.BAD_FRAME, "message": str(exc)}))
                continue
            if frame.type == "ping":
                await self.service.touch([peer.session.session_id])
                peer.push(event_frame(Ev.PONG, {}))
            else:
                peer.push(event_frame(Ev.ERROR, {"code": Code.UNKNOWN_TYPE,
                                                 "message": f"unknown type {frame.type!r}"}))

    def _forget(self, peer: EditingPeer) -> None:
        peers = self.peers.get(peer.session.session_id)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.peers[peer.session.session_id]

    def on_event(self, event: EditingEvent) -> None:
        """Deliver a bus event to this node's sockets of its sessions."""
        frame: str | None = None
        for session_id in dict.fromkeys(event.session_ids):  # each session once
            for peer in self.peers.get(session_id, ()):
                frame = frame or event_frame(event.type, event.data)
                peer.push(frame)

    def _expire(self, peer: EditingPeer) -> None:
        log.info("editing socket of %s: token expired, closing", peer.session.session_id)
        task = asyncio.get_running_loop().create_task(peer.ws.close(
            code=CloseCode.TOKEN_EXPIRED, message=b"token expired"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_tokens(self, token_ids: set[int]) -> None:
        """Close (4403) this node's sockets opened with one of these revoked tokens."""
        for peers in list(self.peers.values()):
            for peer in list(peers):
                if peer.token_id is not None and peer.token_id in token_ids:
                    log.info("editing socket of %s: token %d revoked, closing",
                             peer.session.session_id, peer.token_id)
                    asyncio.get_running_loop().create_task(peer.ws.close(
                        code=CloseCode.TOKEN_REVOKED, message=b"token revoked"))

    def control_connections(self, user_id: int | None) -> list[dict[str, Any]]:
        """This node's editing sockets (of one user, or all) for the server API."""
        return [{"transport": "editing", "id": p.id, "user_id": p.session.user_id,
                 "device_id": "", "remote": p.remote, "connected_at": p.connected_at,
                 "channels": [p.session.session_id]}
                for peers in self.peers.values() for p in peers
                if user_id is None or p.session.user_id == user_id]

    def control_disconnect(self, user_id: int, conn_id: str | None, code: int,
                           reason: str) -> int:
        """Close this node's editing sockets of a user (or the one ``conn_id``)."""
        doomed = [p for peers in self.peers.values() for p in peers
                  if p.session.user_id == user_id and conn_id in (None, p.id)]
        for peer in doomed:
            log.info("editing socket %s of user %d: disconnected by an operator", peer.id,
                     user_id)
            asyncio.get_running_loop().create_task(
                peer.ws.close(code=code, message=reason.encode()))
        return len(doomed)

    def session_ids(self) -> list[str]:
        """Sessions with at least one socket open here."""
        return list(self.peers)

    def listing(self, workspace_ids: set[int]) -> list[dict[str, Any]]:
        """``GET /api/v1/ws/sessions``: open sessions of these workspaces on this node."""
        rows = []
        for session_id, peers in sorted(self.peers.items()):
            s = next(iter(peers)).session
            if s.workspace_id in workspace_ids:
                rows.append({"session_id": session_id, "workspace_id": s.workspace_id,
                             "resource_id": s.resource_id, "user_id": s.user_id,
                             "user_name": s.user_name, "sockets": len(peers),
                             "connected_at": min(p.connected_at for p in peers)})
        return rows

    async def close(self) -> None:
        """Close every socket (1001: reconnect, possibly to another node)."""
        peers = [p for ps in self.peers.values() for p in ps]
        for peer in peers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.write_timeout):
                    await peer.ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")
