"""Raw sockets for hostile tests: an HTTP/1.1 upgrade by hand and a WebSocket frame
writer that can set any header bit (RSV, opcode, FIN, MASK, a 64-bit length), for the
frames no client library will send. Server frames are read back unmasked.

Every wait is bounded; ``aclose()`` always releases the socket.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

from tests.support.server import RunningServer
from tidings.protocol.codec import decode_server_frame, encode_client_frame
from tidings.protocol.codes import MsgType

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def build_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                mask: bool = True, length: int | None = None) -> bytes:
    """One frame. ``rsv`` is the 3 RSV bits (0b100 = RSV1); ``length`` overrides the
    declared payload length (a lie), encoded in the smallest form that holds it."""
    declared = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    mask_bit = 0x80 if mask else 0
    if declared < 126:
        head.append(mask_bit | declared)
    elif declared < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", declared)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", declared)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _mask(payload, key)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class EOF(Exception):
    """The server closed the TCP connection."""


class RawSocket:
    """One TCP connection to the node, optionally upgraded to WebSocket by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self._seq = 0

    # opening

    @classmethod
    async def tcp(cls, server: RunningServer, *, rcvbuf: int | None = None,
                  local_host: str | None = None) -> RawSocket:
        """A plain TCP connection; ``rcvbuf`` shrinks the receive buffer (a slow reader)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if local_host is not None:
                sock.bind((local_host, 0))
            sock.setblocking(False)
            async with asyncio.timeout(5):
                await asyncio.get_running_loop().sock_connect(
                    sock, (server.node.settings.host, server.node.port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    @classmethod
    async def upgrade(cls, server: RunningServer, *, headers: dict[str, str] | None = None,
                      rcvbuf: int | None = None) -> RawSocket:
        """A WebSocket connection to /ws by a hand-written handshake; asserts 101."""
        raw = await cls.tcp(server, rcvbuf=rcvbuf)
        try:
            await raw.send(upgrade_request(server, headers))
            await raw.read_response_head()
            assert raw.status == 101, (raw.status, raw.headers)
        except BaseException:
            await raw.aclose()
            raise
        return raw

    # bytes

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(10):
            await self.writer.drain()

    async def read_response_head(self, timeout: float = 5.0) -> int:
        """Read an HTTP status line and headers; return the status (EOF raises)."""
        async with asyncio.timeout(timeout):
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                raise EOF(f"EOF in response head: {exc.partial[:200]!r}") from None
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        return self.status

    async def read_http_response(self, timeout: float = 5.0) -> tuple[int, dict[str, str],
                                                                      bytes]:
        """A whole HTTP response: status, lower-cased headers and body."""
        await self.read_response_head(timeout)
        if self.status == 101:
            return self.status, self.headers, b""  # switched: no HTTP body follows
        async with asyncio.timeout(timeout):
            if "content-length" in self.headers:
                body = await self.reader.readexactly(int(self.headers["content-length"]))
            else:
                body = await self.reader.read()
        return self.status, self.headers, body

    async def eof(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` (data is discarded)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        return True

    # frames

    async def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> None:
        await self.send(build_frame(opcode, payload, **kwargs))

    async def read_frame(self, timeout: float = 5.0) -> tuple[bool, int, bytes]:
        """The next server frame: (fin, opcode, payload). Raises EOF."""
        async with asyncio.timeout(timeout):
            try:
                b1, b2 = await self.reader.readexactly(2)
                length = b2 & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
                assert not b2 & 0x80, "server frames must not be masked"
                payload = await self.reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise EOF(str(exc)) from None
        return bool(b1 & 0x80), b1 & 0x0F, payload

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server's close frame; its code (None: EOF without one)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        _, opcode, payload = await self.read_frame(timeout)
                    except EOF:
                        return None
                    if opcode == OP_CLOSE:
                        return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2
                                else 1005)
        except TimeoutError:
            raise AssertionError(f"no close frame within {timeout} s") from None

    # the Tidings protocol over raw frames

    async def send_msg(self, type_: int, payload: Any = None, seq: int | None = None, *,
                       binary: bool = True) -> int:
        if seq is None:
            self._seq += 1
            seq = self._seq
        data = encode_client_frame(type_, seq, payload, binary=binary)
        if isinstance(data, str):
            await self.send_frame(OP_TEXT, data.encode())
        else:
            await self.send_frame(OP_BINARY, data)
        return seq

    async def recv_msg(self, timeout: float = 5.0) -> tuple[int, int, dict[str, Any]]:
        """The next Tidings frame (control frames skipped). Raises EOF or ClosedByServer."""
        while True:
            _, opcode, payload = await self.read_frame(timeout)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ClosedByServer(code)
            if opcode in (OP_BINARY, OP_TEXT):
                return decode_server_frame(payload if opcode == OP_BINARY
                                           else payload.decode())

    async def expect(self, type_: int, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """The next frame of ``type_``, skipping pushes."""
        while True:
            t, seq, payload = await self.recv_msg(timeout)
            if t == type_:
                return seq, payload
            assert t in (MsgType.PRESENCE_PUSH, MsgType.CHAT_PUSH, MsgType.RECEIPT_PUSH,
                         MsgType.SYNC_RSP), (t, payload)

    async def auth(self, token: str, device_id: str | None = None) -> dict[str, Any]:
        """MsgAuth, then read the backlog to its last page."""
        body: dict[str, Any] = {"token": token}
        if device_id:
            body["device_id"] = device_id
        seq = await self.send_msg(MsgType.AUTH, body)
        got, rsp = await self.expect(MsgType.AUTH_RSP)
        assert got == seq and rsp["success"], rsp
        while True:
            _, page = await self.expect(MsgType.SYNC_RSP)
            if not page["has_more"]:
                return rsp

    # closing

    def abort(self) -> None:
        """Reset the connection (RST): SO_LINGER 0, then close."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def aclose(self) -> None:
        if self.writer.is_closing():
            return
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()


class ClosedByServer(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


def upgrade_request(server: RunningServer, headers: dict[str, str] | None = None, *,
                    method: str = "GET", path: str = "/ws") -> bytes:
    """A WebSocket upgrade request; a header given as "" is left out."""
    host = f"{server.node.settings.host}:{server.node.port}"
    base = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13"}
    base.update(headers or {})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in base.items() if v != ""]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def http_exchange(server: RunningServer, request: bytes, timeout: float = 5.0
                        ) -> tuple[int, dict[str, str], bytes]:
    """Send raw request bytes; read one response. The socket is closed after."""
    raw = await RawSocket.tcp(server)
    try:
        await raw.send(request)
        return await raw.read_http_response(timeout)
    finally:
        await raw.aclose()
