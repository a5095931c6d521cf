"""The ``/ws`` endpoint: upgrade, read loop, timeouts, dispatch.

It turns frames into calls on :class:`~tidings.hub.chat.ChatService` and keeps every
failure inside its own connection. The socket itself, once upgraded, is a
:class:`~tidings.gateway.wire.WsPeer`: aiohttp serves the upgrade request and then
lets go of the connection (memory per idle connection; see wire.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from tidings.api.errors import ApiError
from tidings.gateway.caps import Lease, claim
from tidings.gateway.connection import CURRENT, Connection
from tidings.gateway.origins import origin_allowed
from tidings.gateway.reading import Reading, ack_of
from tidings.gateway.wire import WsPeer
from tidings.hub.chat import ChatService
from tidings.logs import REQUEST_ID
from tidings.protocol.codec import Frame, ProtocolError, decode_frame, decode_payload
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    Payload,
    PresencePayload,
    SyncRequestPayload,
)
from tidings.protocol.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# How long a reader busy with a frame may take to reach the client's close frame (or the
# end of its TCP connection) before it is stopped (Gateway.peer_gone).
PEER_GONE_GRACE = 1.0

RequestHandler = Callable[[Connection, int, Any], Awaitable[None]]
"""Handles one decoded client frame: (connection, seq, payload)."""


class Gateway:
    """Serves ``GET /ws``."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.settings = service.settings
        self.connections: set[Connection] = set()  # all, authenticated or not
        # Features beside chat register their client types and clean-up here.
        self.handlers: dict[int, RequestHandler] = {}
        self.on_disconnect: list[Callable[[Connection], Awaitable[None]]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()  # one task per connection
        self._settling: set[asyncio.Task[None]] = set()  # see _stop_if_stuck
        self.draining = False  # set by stop_taking_frames(): only MsgAck is still handled
        self._handling = 0  # frames being handled right now, on all connections
        self._idle = asyncio.Event()
        self._idle.set()

    def stop_taking_frames(self) -> None:
        """Shutting down: from now on frames are read but not handled, except delivery
        acks (``MsgAck``), which are stored before the connections close (shutdown.py)."""
        self.draining = True

    async def idle(self) -> None:
        """Wait until no frame is being handled."""
        await self._idle.wait()

    def start(self) -> None:
        """Start the timeout watchdog."""
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self, grace: float = 2.0) -> None:
        """Stop the watchdog; give connections still closing ``grace`` s, then cancel;
        close the idle ones (no task reads them) and wait until each is settled."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await self._settle(grace)
        idle = [c for c in self.connections if c.reader is None]
        for conn in idle:
            conn.close(CloseCode.NORMAL)
        if idle:  # each close ends within write_timeout (Connection._close_socket)
            await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in idle])
        # A closed socket's end (connection_lost, a loop turn later) starts the task
        # that settles it: wait for those too.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c in self.connections for c in idle) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self._settle(grace)

    async def _settle(self, grace: float) -> None:
        if self._serving:
            _, stuck = await asyncio.wait(list(self._serving), timeout=grace)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._settling:  # connections let go by _stop_if_stuck: their release
            await asyncio.wait(list(self._settling), timeout=grace)

    async def _watch(self) -> None:
        # One sweep for every timeout of every connection: cheaper than arming a
        # timer around each receive and each send (that cost ~15 % of a busy node).
        s = self.settings
        period = min(1.0, s.auth_timeout / 4, s.idle_timeout / 4, s.write_timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now, wall_ms = loop.time(), int(time.time() * 1000)
            for conn in list(self.connections):
                code = conn.expired(now, s.auth_timeout, s.idle_timeout, s.write_timeout,
                                    wall_ms)
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
        version = request.headers.get("Sec-WebSocket-Version", "").strip()
        if version and version != "13":  # aiohttp would also upgrade hybi drafts 7 and 8
            raise web.HTTPUpgradeRequired(headers={"Sec-WebSocket-Version": "13"})
        # aiohttp's parser refuses a message of max_msg_size bytes: +1 makes ours inclusive.
        peer = WsPeer.take_over(request, self.settings.max_frame_bytes + 1)
        conn = Connection(peer, queue_size=self.settings.send_queue_size,
                          queue_bytes=self.settings.send_queue_bytes,
                          write_timeout=self.settings.write_timeout,
                          remote=request.remote or "",
                          headers=self.service.hooks.pick_headers(request.headers)
                          if self.service.hooks.any else None)
        self.connections.add(conn)
        bucket = TokenBucket(self.settings.rate_limit, self.settings.rate_burst,
                             asyncio.get_running_loop().time())
        # Read by a task of its own, made only when there is something to read: aiohttp's
        # request, its tasks and the middleware frames end here, and an idle connection
        # holds no task or coroutine at all (Connection.reader is then None).
        # The reading tasks start from the socket's callbacks, outside this request's
        # context: they carry its request id (the access log's) themselves.
        reading = Reading(self, peer, conn, claim(request), bucket, REQUEST_ID.get())
        peer.on_gone = reading.gone
        peer.park(reading)
        return web.StreamResponse(status=101)  # never sent: the socket is no longer aiohttp's

    def resume(self, reading: Reading) -> None:
        """Something arrived on an idle socket (its :class:`Reading` calls this): read it
        until the socket is idle again (chats are stored at once, see
        :meth:`_chats_now`; the rest takes a task)."""
        try:
            idle = self._chats_now(reading)
        except Exception:  # the task reads on and ends the connection cleanly if need be
            reading.log_failure("fast path failed")
            idle = False
        if idle:
            reading.peer.park(reading)
            return
        task = reading.conn.reader = asyncio.get_running_loop().create_task(
            self._run(reading))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    def _chats_now(self, reading: Reading) -> bool:
        """Handle the idle socket's chats to known users and delivery acks here, in the
        parser's callback; True if that read everything (the socket is idle again). A
        chatting client sends one frame at a time, and a task per frame (made,
        scheduled, stepped through its coroutines, then parked again) was a tenth of a
        busy node's CPU (bench: durable chat, open loop); a receiver acks every push.
        Anything else, and what follows it, is left in order for :meth:`_serve`, which
        does the same checks (and reuses what was decoded)."""
        peer, conn, svc = reading.peer, reading.conn, self.service
        if not conn.user_id or self.draining:
            return False
        loop = asyncio.get_running_loop()
        while not (conn.closed or conn.expiry is not None or conn.backlogged):
            msg = peer.ready_data()
            if msg is None:
                return not peer.pending
            try:
                frame = decode_frame(msg.data)
                payload = decode_payload(frame) if frame.type == MsgType.CHAT and \
                    MsgType.CHAT not in self.handlers else ack_of(conn, frame)
            except ProtocolError:
                return False  # _serve answers it
            now = loop.time()
            if not self._now_or_later(reading, payload, now):
                reading.decoded = (msg.data, frame, payload)
                return False
            peer.take()
            try:
                conn.last_seen = now
                svc.metrics.frame_in(frame.type)
                conn.frames_in += 1
                if isinstance(payload, ChatPayload):
                    svc.chat_now(conn, frame.seq, payload)
                elif isinstance(payload, AckPayload):
                    svc.ack_now(conn, frame.seq, payload)
            except Exception:
                reading.log_failure("internal error")
                svc.error(conn, frame.seq, ErrorCode.INTERNAL_ERROR, "internal error")
        return False  # a task waits for the outbox (pacing) or finishes the connection

    def _now_or_later(self, reading: Reading, payload: object, now: float) -> bool:
        """True if a decoded frame is handled in the socket's callback: a chat to a known
        user, or a delivery ack (a read ack waits for the store), each within the rate
        limit as in :meth:`_serve`."""
        if isinstance(payload, ChatPayload):
            return self.service.knows_user(payload.to) and reading.bucket.allow(now)
        if isinstance(payload, AckPayload) and payload.status == "delivered" and \
                MsgType.ACK not in self.handlers:
            return self._confirms_more(reading.conn, payload) or reading.bucket.allow(now)
        return False

    def peer_gone(self, conn: Connection) -> None:
        """The client closed (or its TCP connection ended) while the reader was busy
        handling a frame (its :class:`Reading` says so): give it PEER_GONE_GRACE s to
        finish, then stop it."""
        asyncio.get_running_loop().call_later(PEER_GONE_GRACE, self._stop_if_stuck, conn)

    def _stop_if_stuck(self, conn: Connection) -> None:
        if conn.reader is None or conn.reader.done() or conn.expiry is not None:
            return  # it read the close and ended (or is ending) by itself
        # A handler waiting on a dead store or registry link (a partition) would hold a
        # connection its client has left: its registry entry would keep the user online
        # on every node until that statement timed out (presence convergence,
        # docs/reliability.md). The frames it had not read yet are lost with the client.
        log.info("%s user %s: client gone while a frame was being handled; stopping it",
                 conn.id, conn.user_id)
        conn.stop_reader(CloseCode.NORMAL, "client closed")
        # The cancel may itself wait on the dead link (asyncpg cancels a statement over
        # a new connection, which the partition holds too): meanwhile the hub would
        # still hold the connection and the heartbeat re-register it. So its slot and
        # presence are settled now; the reader's own clean-up then finds nothing to do.
        settle = asyncio.get_running_loop().create_task(self.service.disconnected(conn))
        self._settling.add(settle)
        settle.add_done_callback(self._settling.discard)

    async def _run(self, reading: Reading) -> None:
        peer, conn = reading.peer, reading.conn
        CURRENT.set(conn)  # for the logs: this task's records name the connection
        REQUEST_ID.set(reading.request_id)  # ... and the upgrade request
        idle = False
        try:
            idle = await self._serve(reading)
        except asyncio.CancelledError:
            if conn.expiry is None:
                raise
        except ConnectionError:
            pass
        finally:
            conn.reader = None  # from here on, nothing may cancel this task
            if idle:  # nothing more to read for now: the next frame makes a new task
                peer.park(reading)
            else:  # (the reader is looked up only here: most runs end idle)
                await self._finish(peer, conn, reading.lease, asyncio.current_task())

    async def _finish(self, peer: WsPeer, conn: Connection, lease: Lease,
                      reader: asyncio.Task[Any] | None) -> None:
        """The connection ended: settle its slot, presence and close (once)."""
        if conn.expiry is not None and reader is not None:
            # Our own cancel (Connection.stop_reader), raised or swallowed by a
            # library mid-request (seen in the presence lookup on Python 3.11):
            # take it back, then close with the reason it was given.
            while reader.cancelling():
                reader.uncancel()
            conn.close(conn.expiry, conn.expiry_words())
        self.connections.discard(conn)
        lease.release()  # the connection cap's slot (gateway/caps.py)
        if not conn.closed:
            conn.close(peer.close_code or CloseCode.NORMAL)
        self.service.metrics.disconnects.labels(str(conn.close_code)).inc()
        try:
            # Shielded: the node's stop cancels what is left, and the slot, presence
            # and offline announcement must still be settled.
            await asyncio.shield(self._disconnected(conn))
        finally:
            await conn.wait_closed()

    async def _disconnected(self, conn: Connection) -> None:
        for hook in self.on_disconnect:
            try:
                await hook(conn)
            except Exception:
                log.exception("%s: disconnect hook failed", conn.id)
        await self.service.disconnected(conn)

    async def _serve(self, reading: Reading) -> bool:
        """Handle the socket's messages; True if it went idle, False if it is done."""
        ws, conn, bucket, svc = reading.peer, reading.conn, reading.bucket, self.service
        loop = asyncio.get_running_loop()
        while not conn.closed and conn.expiry is None:
            if conn.backlogged:  # pace a client that sends faster than it reads
                await conn.drain()
                continue
            if not ws.pending:
                return True
            msg = await ws.receive()
            conn.last_seen = loop.time()
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return False
            if msg.type == WSMsgType.ERROR:
                code = ws.close_code or CloseCode.MESSAGE_TOO_BIG
                log.info("%s protocol error: %s", conn.id, ws.error)
                conn.close(code, "protocol error")
                return False
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY) or (
                    self.draining and not conn.user_id):
                continue
            if not conn.user_id:  # until auth fixes it, answer in the framing just used
                conn.binary = msg.type == WSMsgType.BINARY
            decoded, reading.decoded = reading.decoded, None
            payload: Payload | None = None  # decoded already by _chats_now, if at all
            try:
                if decoded and decoded[0] is msg.data:
                    _, frame, payload = decoded
                else:
                    frame = decode_frame(msg.data)
            except ProtocolError as exc:
                if not self.draining:
                    svc.error(conn, 0, exc.code, exc.message)
                continue
            if self.draining and frame.type != MsgType.ACK:
                continue  # shutting down: only delivery acks are still taken
            # Decoded once, for the rate limit and the handler.
            ack = payload if isinstance(payload, AckPayload) else ack_of(conn, frame)
            # While draining only acks come here: the last ones, each folded into one
            # cursor write; refusing them would only make their messages come again.
            if not self.draining and not self._confirms_more(conn, ack) and \
                    not bucket.allow(conn.last_seen):
                svc.error(conn, frame.seq, ErrorCode.RATE_LIMITED, "too many frames; slow down")
                continue
            self._handling += 1
            self._idle.clear()
            try:
                await self._dispatch(conn, frame, payload if payload is not None else ack)
            except ProtocolError as exc:
                svc.error(conn, exc.seq, exc.code, exc.message)
            except Exception:
                log.exception("%s: internal error", conn.id)
                svc.error(conn, frame.seq, ErrorCode.INTERNAL_ERROR, "internal error")
            finally:
                self._handling -= 1
                if not self._handling:
                    self._idle.set()
        return False

    def _confirms_more(self, conn: Connection, ack: AckPayload | None) -> bool:
        """True for a delivery ack that confirms more than this connection did before.

        Such acks take no rate-limit token: there can be no more of them than pushes
        the server itself sent, and refusing them would only bring their messages back
        on the next connection (a busy receiver's acks would also starve its chats).
        """
        return (ack is not None
                and self.service.confirmed(conn) < ack.message_id <= conn.highest_sent_id)

    async def _dispatch(self, conn: Connection, frame: Frame,
                        decoded: Payload | None = None) -> None:
        # ``decoded``: the frame's payload if it was decoded already (_chats_now, ack_of).
        svc = self.service
        svc.metrics.frame_in(frame.type)
        conn.frames_in += 1
        if not conn.user_id and frame.type != MsgType.AUTH:
            svc.error(conn, frame.seq, ErrorCode.NOT_AUTHENTICATED, "send MsgAuth first")
            return
        payload = decoded if decoded is not None else decode_payload(frame)
        if isinstance(payload, AuthPayload) and not conn.user_id:
            await svc.authenticate(conn, frame.seq, payload)
            return
        handler = self.handlers.get(frame.type)
        if handler is not None:
            await handler(conn, frame.seq, payload)
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
