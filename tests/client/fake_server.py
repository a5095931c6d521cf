"""A small in-process stand-in for the Tidings server, for client tests.

It speaks the wire protocol the client relies on (auth with device ids,
backlog pages on connect, chats with per-device idempotent seqs, cumulative
acks, receipts, presence, sync, ping) and offers knobs to misbehave: drop a
user's connections, lose a ChatAck, ignore acks, stop answering pings.
It can be reached over an in-memory pipe (:meth:`FakeServer.connect`) or over
a real socket (:func:`aiohttp_app`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from tidings.client import Transport, TransportClosed
from tidings.protocol.codec import decode_frame, decode_payload, encode_frame
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    PresencePayload,
    SyncRequestPayload,
)


class ServerSocket(Protocol):
    async def send(self, data: bytes | str) -> None: ...
    async def recv(self) -> bytes | str: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass
class _Closed:
    code: int
    reason: str


class MemoryTransport:
    """One end of an in-memory WebSocket-like pipe (both ends see the close code)."""

    def __init__(self, inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.closed: _Closed | None = None

    async def send(self, data: bytes | str) -> None:
        if self.closed is not None:
            raise TransportClosed(self.closed.code, self.closed.reason)
        self._outbox.put_nowait(data)

    async def recv(self) -> bytes | str:
        item = await self._inbox.get()
        if isinstance(item, _Closed):
            self._inbox.put_nowait(item)
            self.closed = item
            raise TransportClosed(item.code, item.reason)
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = _Closed(code, reason)
            self._outbox.put_nowait(self.closed)
            self._inbox.put_nowait(self.closed)


def pipe() -> tuple[MemoryTransport, MemoryTransport]:
    a: asyncio.Queue[Any] = asyncio.Queue()
    b: asyncio.Queue[Any] = asyncio.Queue()
    return MemoryTransport(a, b), MemoryTransport(b, a)


@dataclass(eq=False)
class Conn:
    sock: ServerSocket
    user_id: int
    device_id: str
    binary: bool
    out: asyncio.Queue[bytes | str | None] = field(default_factory=asyncio.Queue)

    def push(self, type_: int, seq: int, payload: Any) -> None:
        data = encode_frame(type_, seq, payload, binary=self.binary)
        self.out.put_nowait(data if self.binary else data.decode())


class FakeServer:
    """Protocol-level fake. Inspect ``messages``, ``cursors``, ``received``."""

    def __init__(self, page_size: int = 50) -> None:
        self.page_size = page_size
        self.tokens: dict[str, int] = {}
        self.messages: list[dict[str, Any]] = []
        self.cursors: dict[tuple[int, str], int] = defaultdict(int)
        self.received: list[tuple[int, str, int, int, Any]] = []  # user, device, type, seq, body
        self.conns: dict[int, set[Conn]] = defaultdict(set)
        self.connects = 0
        self._idem: dict[tuple[int, str, int], int] = {}
        self._ids = itertools.count(1)
        self._devices = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # misbehaviour knobs
        self.drop_instead_of_chat_ack = 0  # drop the sender this many times after storing
        self.drop_code: int = CloseCode.GOING_AWAY
        self.refuse = False  # connections fail before the WebSocket opens
        self.auths: list[tuple[AuthPayload, bool]] = []  # every MsgAuth, with its framing
        self.ignore_acks = False
        self.answer_pings = True

    def new_user(self, user_id: int) -> str:
        token = f"token-{user_id}"
        self.tokens[token] = user_id
        return token

    def store(self, sender: int, to: int, content: str) -> dict[str, Any]:
        msg = {"message_id": next(self._ids), "from": sender, "to": to, "type": "text",
               "content": content, "created_at": int(time.time() * 1000), "status": "sent"}
        self.messages.append(msg)
        return msg

    def chat_seqs(self, user_id: int) -> list[int]:
        return [seq for uid, _, t, seq, _ in self.received if uid == user_id and t == MsgType.CHAT]

    async def connect(self, url: str) -> Transport:
        """A :data:`~tidings.client.Connector` over an in-memory pipe."""
        self.connects += 1
        if self.refuse:
            raise ConnectionRefusedError("fake server refuses connections")
        client_end, server_end = pipe()
        task = asyncio.create_task(self.handle(server_end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client_end

    async def drop(self, user_id: int, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        for conn in list(self.conns[user_id]):
            await conn.sock.close(code, reason)

    def inject(self, user_id: int, data: bytes | str) -> None:
        """Send raw bytes to every connection of ``user_id``."""
        for conn in self.conns[user_id]:
            conn.out.put_nowait(data)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, sock: ServerSocket) -> None:
        try:
            frame = decode_frame(await sock.recv())
        except TransportClosed:
            return
        auth = decode_payload(frame)
        rsp_type, seq = MsgType.AUTH_RSP, frame.seq
        if isinstance(auth, AuthPayload):
            self.auths.append((auth, frame.binary))
        if not isinstance(auth, AuthPayload) or auth.token not in self.tokens:
            data = encode_frame(rsp_type, seq, {"success": False, "error": "bad token"},
                                binary=frame.binary)
            await sock.send(data if frame.binary else data.decode())
            await sock.close(CloseCode.AUTH_FAILED, "bad token")
            return
        conn = Conn(sock, self.tokens[auth.token], auth.device_id or f"dev-{next(self._devices)}",
                    frame.binary)
        conn.push(rsp_type, seq, {"success": True, "user_id": conn.user_id,
                                  "device_id": conn.device_id})
        self.conns[conn.user_id].add(conn)
        backlog = self._after(conn.user_id, self.cursors[conn.user_id, conn.device_id], None)
        for i in range(0, len(backlog), self.page_size):
            page = backlog[i:i + self.page_size]
            conn.push(MsgType.SYNC_RSP, 0, {"messages": page,
                                            "has_more": i + self.page_size < len(backlog)})
        writer = asyncio.create_task(self._write(conn))
        try:
            while True:
                try:
                    frame = decode_frame(await sock.recv())
                except TransportClosed:
                    return
                body = decode_payload(frame)
                self.received.append((conn.user_id, conn.device_id, frame.type, frame.seq, body))
                await self._on_frame(conn, frame.type, frame.seq, body)
        finally:
            self.conns[conn.user_id].discard(conn)
            conn.out.put_nowait(None)
            await writer

    async def _write(self, conn: Conn) -> None:
        while (data := await conn.out.get()) is not None:
            try:
                await conn.sock.send(data)
            except (TransportClosed, ConnectionError):
                return

    def _after(self, user_id: int, after: int, limit: int | None) -> list[dict[str, Any]]:
        found = [m for m in self.messages if m["to"] == user_id and m["message_id"] > after]
        return found[:limit] if limit else found

    def _receipt(self, msgs: list[dict[str, Any]], status: str, by: int) -> None:
        by_sender: dict[int, list[int]] = defaultdict(list)
        for m in msgs:
            by_sender[m["from"]].append(m["message_id"])
        for sender, ids in by_sender.items():
            for c in self.conns[sender]:
                c.push(MsgType.RECEIPT_PUSH, 0, {"message_ids": ids, "status": status, "by": by})

    async def _on_frame(self, conn: Conn, type_: int, seq: int, body: Any) -> None:
        if isinstance(body, ChatPayload):
            key = (conn.user_id, conn.device_id, seq)
            if key in self._idem:
                msg = next(m for m in self.messages if m["message_id"] == self._idem[key])
            elif body.to not in self.tokens.values():
                conn.push(MsgType.ERROR, seq, {"code": ErrorCode.USER_NOT_FOUND,
                                               "message": f"no user {body.to}"})
                return
            else:
                msg = self.store(conn.user_id, body.to, body.content)
                msg["type"] = body.type
                self._idem[key] = msg["message_id"]
                for c in self.conns[body.to]:
                    c.push(MsgType.CHAT_PUSH, 0, msg)
            if self.drop_instead_of_chat_ack:
                self.drop_instead_of_chat_ack -= 1
                await conn.sock.close(self.drop_code, "dropped before ChatAck")
                return
            conn.push(MsgType.CHAT_ACK, seq, {"message_id": msg["message_id"],
                                              "created_at": msg["created_at"]})
        elif isinstance(body, AckPayload):
            if self.ignore_acks:
                return
            mine = [m for m in self.messages if m["to"] == conn.user_id]
            if body.status == "read":
                read = [m for m in mine if m["message_id"] == body.message_id]
                for m in read:
                    m["status"] = "read"
                self._receipt(read, "read", conn.user_id)
                return
            key = (conn.user_id, conn.device_id)
            self.cursors[key] = max(self.cursors[key], body.message_id)
            newly = [m for m in mine
                     if m["message_id"] <= body.message_id and m["status"] == "sent"]
            for m in newly:
                m["status"] = "delivered"
            self._receipt(newly, "delivered", conn.user_id)
        elif isinstance(body, SyncRequestPayload):
            page = self._after(conn.user_id, body.last_message_id, self.page_size + 1)
            conn.push(MsgType.SYNC_RSP, seq, {"messages": page[:self.page_size],
                                              "has_more": len(page) > self.page_size})
        elif isinstance(body, PresencePayload):
            for uid, conns in self.conns.items():
                if uid != conn.user_id:
                    for c in conns:
                        c.push(MsgType.PRESENCE_PUSH, 0,
                               {"user_id": conn.user_id, "status": body.status})
        elif type_ == MsgType.PING and self.answer_pings:
            conn.push(MsgType.PONG, seq, None)


class _AiohttpServerSocket:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def send(self, data: bytes | str) -> None:
        if self._ws.closed:
            raise TransportClosed(self._ws.close_code or 1006)
        if isinstance(data, str):
            await self._ws.send_str(data)
        else:
            await self._ws.send_bytes(data)

    async def recv(self) -> bytes | str:
        msg = await self._ws.receive()
        if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            return msg.data  # type: ignore[no-any-return]
        raise TransportClosed(self._ws.close_code or 1006)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code=code, message=reason.encode())


def aiohttp_app(fake: FakeServer) -> web.Application:
    """Serve ``fake`` at ``/ws`` over real WebSockets."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        fake.connects += 1
        await fake.handle(_AiohttpServerSocket(ws))
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    return app


def payload_of(data: bytes | str) -> Any:
    """Decode a frame's payload to plain Python (for assertions)."""
    frame = decode_frame(data)
    if not frame.payload:
        return None
    return (msgspec.msgpack.decode(frame.payload) if frame.binary
            else msgspec.json.decode(frame.payload))
