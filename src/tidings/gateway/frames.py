"""Client frames to messages (RFC 6455 §5) in plain Python: the fallback frame parser.

``/ws`` parses with aiohttp's C ``WebSocketReader`` when its private queue class is
there and behaves as this gateway expects (:mod:`tidings.gateway.parser` checks both at
import). When an aiohttp release moves or changes it, this parser takes its place, so an
upgrade never stops a node: it hands the same ``WSMessage`` s (and the same
``WebSocketError`` s, with the same close codes) to the same queue methods, uses only
aiohttp's public names, and is what ``TIDINGS_WS_PARSER=python`` selects (the hostile
and compliance suites run against it that way). It is slower per inbound frame
(docs/architecture.md, "The frame parser"); outbound frames never pass through a parser.
No extension is ever negotiated, so RSV bits are always an error.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMessage, WSMsgType
from aiohttp.http_websocket import WebSocketError

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_CLOSE_CODES = frozenset(int(c) for c in WSCloseCode)  # below 3000, only these may be sent
_MAX_PAYLOAD = 2**63 - 1


class MessageQueue(Protocol):
    """Where parsed messages go (the shape of aiohttp's ``WebSocketDataQueue``)."""

    def feed_data(self, data: Any, size: int) -> None:
        """One message, ``size`` bytes of payload."""

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        """The client broke the protocol: no message follows."""


def unmask(mask: bytes, payload: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask``, as one big-integer operation."""
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        n, "little")


class FrameParser:
    """Incremental parser: ``feed_data`` any slice of the byte stream, messages come out."""

    __slots__ = ("_buf", "_failed", "_max", "_opcode", "_parts", "_parts_len", "queue")

    def __init__(self, queue: MessageQueue, max_msg_size: int) -> None:
        self.queue = queue
        self._max = max_msg_size  # a message of this many bytes is refused (as aiohttp does)
        self._buf = b""  # an incomplete frame
        self._opcode = 0  # the opcode of the fragmented message under way, 0 if none
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._failed = False

    def feed_data(self, data: bytes) -> None:
        """Parse what ``data`` completes; on a protocol error, report it and stop."""
        if self._failed:
            return
        buf = self._buf + data if self._buf else bytes(data)
        try:
            self._buf = buf[self._parse(buf):]
        except WebSocketError as exc:
            self._failed = True
            self._buf = b""
            self.queue.set_exception(exc)

    def _parse(self, buf: bytes) -> int:
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            if first & 0x70:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                     "Received frame with non-zero reserved bits")
            if opcode not in _OPCODES:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, f"Unexpected opcode={opcode}")
            if opcode > 0x7 and (not fin or length > 125):
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                     "Received fragmented or oversized control frame")
            head = pos + 2
            if length == 126:
                if end - head < 2:
                    break
                length = struct.unpack_from("!H", buf, head)[0]
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = struct.unpack_from("!Q", buf, head)[0]
                head += 8
                if length > _MAX_PAYLOAD:
                    raise WebSocketError(WSCloseCode.MESSAGE_TOO_BIG,
                                         f"Frame length {length} exceeds limit")
            # Refused before the payload arrives: a client announcing a huge frame is
            # not buffered. Control frames are never counted against the limit.
            if opcode <= 0x7 and self._max and length >= self._max - self._parts_len:
                raise WebSocketError(WSCloseCode.MESSAGE_TOO_BIG,
                                     f"Message size {self._parts_len + length} exceeds "
                                     f"limit {self._max}")
            mask_at = head
            if second & 0x80:
                head += 4
            if end - head < length:
                break
            payload = buf[head:head + length]
            if second & 0x80:
                payload = unmask(buf[mask_at:mask_at + 4], payload)
            pos = head + length
            self._frame(bool(fin), opcode, payload)
        return pos

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode > 0x7:
            self._control(opcode, payload)
            return
        if opcode == OP_CONTINUATION:
            if not self._opcode:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                     "Continuation frame for non started message")
        elif self._opcode:
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                 f"The opcode in non-fin frame is expected to be zero, "
                                 f"got {opcode}")
        else:
            self._opcode = opcode
        if not fin:
            self._parts.append(payload)
            self._parts_len += len(payload)
            return
        if self._parts:
            self._parts.append(payload)
            payload = b"".join(self._parts)
            self._parts.clear()
            self._parts_len = 0
        opcode, self._opcode = self._opcode, 0
        if opcode == OP_TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise WebSocketError(WSCloseCode.INVALID_TEXT,
                                     "Invalid UTF-8 text message") from None
            self.queue.feed_data(WSMessage(WSMsgType.TEXT, text, ""), len(payload))
        else:
            self.queue.feed_data(WSMessage(WSMsgType.BINARY, payload, ""), len(payload))

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.queue.feed_data(WSMessage(WSMsgType.PING, payload, ""), len(payload))
        elif opcode == OP_PONG:
            self.queue.feed_data(WSMessage(WSMsgType.PONG, payload, ""), len(payload))
        elif len(payload) >= 2:
            code = struct.unpack_from("!H", payload)[0]
            if code < 3000 and code not in _CLOSE_CODES:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, f"Invalid close code: {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise WebSocketError(WSCloseCode.INVALID_TEXT,
                                     "Invalid UTF-8 text message") from None
            self.queue.feed_data(WSMessage(WSMsgType.CLOSE, code, reason), 0)
        elif payload:
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "Invalid close frame")
        else:
            self.queue.feed_data(WSMessage(WSMsgType.CLOSE, 0, ""), 0)
