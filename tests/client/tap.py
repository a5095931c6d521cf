"""Fault injection on the client's side of a real connection.

:class:`Tap` is a :data:`~tidings.client.Connector` that opens the SDK's own
:class:`~tidings.client.AiohttpTransport` to the real node and wraps it: it
records every frame each way (so tests can see seqs, acks and auths on the
wire), and on request loses frames (one ``ChatAck`` from the server, or every
``MsgAck`` the client sends) or slips extra frames in front of the next one
the server sends (for input no correct server produces). The server and the
socket are real; only the bytes at this end are tampered with.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from tidings.client import AiohttpTransport, Transport
from tidings.protocol.codec import Frame, decode_frame, decode_payload, decode_server_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import Payload


@dataclass(frozen=True)
class Sent:
    """A frame the client sent, on the ``conn``-th connection (from 1)."""

    conn: int
    frame: Frame
    lost: bool  # dropped by the tap, never reached the server

    @property
    def type(self) -> int:
        return self.frame.type

    @property
    def seq(self) -> int:
        return self.frame.seq

    @property
    def payload(self) -> Payload | None:
        return decode_payload(self.frame)


@dataclass(frozen=True)
class Received:
    """A frame the server sent, on the ``conn``-th connection (from 1)."""

    conn: int
    type: int
    seq: int
    body: dict[str, Any]
    binary: bool


class Tap:
    """Connector over the real socket that records traffic and loses frames on request."""

    def __init__(self) -> None:
        self.attempts: list[float] = []  # time.monotonic() of each connect attempt
        self.connects = 0  # attempts that opened a socket
        self.sent: list[Sent] = []
        self.received: list[Received] = []
        self.lose_chat_acks = 0  # swallow this many ChatAck frames from the server
        self.lost_chat_acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lose_acks = False  # swallow every MsgAck the client sends
        self.injections: list[bytes | str] = []  # delivered before the next server frame

    async def connect(self, url: str) -> Transport:
        self.attempts.append(time.monotonic())
        inner = await AiohttpTransport.connect(url)
        self.connects += 1
        return _Tapped(inner, self, self.connects)

    def inject(self, *frames: bytes | str) -> None:
        """Hand ``frames`` to the client just before the next frame the server sends."""
        self.injections.extend(frames)

    def frames(self, type_: int, *, conn: int | None = None) -> list[Sent]:
        """Frames of one type the client sent (that reached the server or not)."""
        return [s for s in self.sent if s.type == type_ and conn in (None, s.conn)]

    def acked_ids(self) -> list[int]:
        """``message_id`` of every delivered-ack the client sent."""
        return [s.payload.message_id for s in self.frames(MsgType.ACK)  # type: ignore[union-attr]
                if s.payload.status == "delivered"]  # type: ignore[union-attr]


class _Tapped:
    def __init__(self, inner: Transport, tap: Tap, conn: int) -> None:
        self._inner, self._tap, self._conn = inner, tap, conn
        self._ready: list[bytes | str] = []

    async def send(self, data: bytes | str) -> None:
        frame = decode_frame(data)
        lose = frame.type == MsgType.ACK and self._tap.lose_acks
        self._tap.sent.append(Sent(self._conn, frame, lose))
        if not lose:
            await self._inner.send(data)

    async def recv(self) -> bytes | str:
        while True:
            if self._ready:
                return self._ready.pop(0)
            data = await self._inner.recv()
            type_, seq, body = decode_server_frame(data)
            self._tap.received.append(
                Received(self._conn, type_, seq, body, isinstance(data, bytes)))
            if type_ == MsgType.CHAT_ACK and self._tap.lose_chat_acks:
                self._tap.lose_chat_acks -= 1
                self._tap.lost_chat_acks.put_nowait(body)
                continue
            if self._tap.injections:
                self._ready, self._tap.injections = self._tap.injections, []
                self._ready.append(data)
                continue
            return data

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)
