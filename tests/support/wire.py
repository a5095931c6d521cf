"""A bare protocol client for black-box tests: frames in, frames out, no SDK logic."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp

from tidings.protocol.codec import decode_server_frame, encode_client_frame
from tidings.protocol.codes import MsgType


class Closed(Exception):
    """The server closed the connection."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class Wire:
    """One raw WebSocket connection speaking the native protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self._seq = itertools.count(1)
        self.user_id = 0
        self.device_id = ""
        self.replayed: list[dict[str, Any]] = []  # the backlog pushed after auth
        self.skipped_pushes: list[dict[str, Any]] = []  # MsgChatPush read while expecting else
        self.skipped_presence: list[dict[str, Any]] = []  # MsgPresencePush likewise

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, *, binary: bool = True,
                   **kwargs: Any) -> Wire:
        return cls(await http.ws_connect(url, autoping=True, **kwargs), binary)

    @classmethod
    async def ready(cls, http: aiohttp.ClientSession, url: str, token: str,
                    device_id: str | None = None, **kwargs: Any) -> Wire:
        """Open, authenticate and read the backlog (kept in :attr:`replayed`)."""
        wire = await cls.open(http, url, **kwargs)
        await wire.auth(token, device_id)
        wire.replayed = await wire.backlog()
        return wire

    async def send(self, type_: int, payload: Any = None, seq: int | None = None) -> int:
        seq = next(self._seq) if seq is None else seq
        data = encode_client_frame(type_, seq, payload, binary=self.binary)
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)
        return seq

    async def recv(self, timeout: float = 5.0) -> tuple[int, int, dict[str, Any]]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING):
            raise Closed(self.ws.close_code)
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise Closed(self.ws.close_code)
        assert msg.type == (aiohttp.WSMsgType.BINARY if self.binary else aiohttp.WSMsgType.TEXT)
        return decode_server_frame(msg.data)

    async def expect(self, type_: int, timeout: float = 5.0,
                     skip: tuple[int, ...] = (MsgType.PRESENCE_PUSH,)
                     ) -> tuple[int, dict[str, Any]]:
        """The next frame of ``type_``, skipping frames of types in ``skip``."""
        while True:
            t, seq, payload = await self.recv(timeout)
            if t == type_:
                return seq, payload
            if t == MsgType.CHAT_PUSH:
                self.skipped_pushes.append(payload)
            elif t == MsgType.PRESENCE_PUSH:
                self.skipped_presence.append(payload)
            assert t in skip, f"expected type {type_}, got {t} {payload}"

    async def auth(self, token: str, device_id: str | None = None) -> dict[str, Any]:
        """Authenticate and consume the backlog replay; return the MsgAuthRsp payload."""
        body: dict[str, Any] = {"token": token}
        if device_id:
            body["device_id"] = device_id
        seq = await self.send(MsgType.AUTH, body)
        rsp_seq, rsp = await self.expect(MsgType.AUTH_RSP)
        assert rsp_seq == seq
        assert rsp["success"], rsp
        self.user_id, self.device_id = rsp["user_id"], rsp["device_id"]
        return rsp

    async def backlog(self) -> list[dict[str, Any]]:
        """Read the unsolicited MsgSyncRsp pages sent after auth."""
        messages: list[dict[str, Any]] = []
        while True:
            _, page = await self.expect(MsgType.SYNC_RSP)
            messages += page["messages"]
            if not page["has_more"]:
                return messages

    async def chat(self, to: int, content: str, seq: int | None = None) -> dict[str, Any]:
        seq = await self.send(MsgType.CHAT, {"to": to, "type": "text", "content": content}, seq)
        got_seq, ack = await self.expect(MsgType.CHAT_ACK,
                                         skip=(MsgType.PRESENCE_PUSH, MsgType.CHAT_PUSH,
                                               MsgType.RECEIPT_PUSH))
        assert got_seq == seq
        return ack

    async def close(self) -> None:
        await self.ws.close()

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; return its close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return self.ws.close_code
