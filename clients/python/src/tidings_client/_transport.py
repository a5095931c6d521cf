"""The connection under the client: a three-method interface and its aiohttp implementation.

The client only ever calls :meth:`Transport.send`, :meth:`Transport.recv` and
:meth:`Transport.close`, so tests (or another WebSocket library) can replace the
socket by passing a :data:`Connector` to :class:`~tidings_client.Client`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

ABNORMAL_CLOSURE = 1006
"""Close code reported when the connection ended without a close frame."""


class TransportClosed(Exception):
    """The connection is closed, with the WebSocket close ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class Transport(Protocol):
    """One WebSocket connection, already open."""

    async def send(self, data: bytes | str) -> None:
        """Send one message: ``bytes`` as a binary frame, ``str`` as a text frame.

        Raise :class:`TransportClosed` if the connection is closed.
        """
        ...

    async def recv(self) -> bytes | str:
        """Return the next data message; raise :class:`TransportClosed` once closed."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent); a pending :meth:`recv` then raises."""
        ...


Connector = Callable[[str], Awaitable[Transport]]
"""Opens a :class:`Transport` to a ``ws://`` or ``wss://`` URL."""


class AiohttpTransport:
    """A :class:`Transport` over :meth:`aiohttp.ClientSession.ws_connect`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse,
                 session: aiohttp.ClientSession | None = None) -> None:
        """Wrap an open ``ws``; ``session``, if given, is closed with it."""
        self._ws = ws
        self._owned_session = session

    @classmethod
    async def connect(cls, url: str, *, session: aiohttp.ClientSession | None = None,
                      close_timeout: float = 5.0, **ws_options: Any) -> AiohttpTransport:
        """Open a WebSocket to ``url``.

        Without ``session`` a private one is created and closed with the
        connection. ``ws_options`` go to ``ws_connect`` (e.g. ``ssl``, ``headers``).
        Protocol-level pings are the client's job, so aiohttp's heartbeat stays off.
        """
        owned = session is None
        sess = aiohttp.ClientSession() if session is None else session
        try:
            ws = await sess.ws_connect(
                url, timeout=aiohttp.ClientWSTimeout(ws_close=close_timeout), **ws_options)
        except BaseException:
            if owned:
                await sess.close()
            raise
        return cls(ws, sess if owned else None)

    async def send(self, data: bytes | str) -> None:
        """Send one frame; raise :class:`TransportClosed` if the socket is closed."""
        if self._ws.closed:
            raise TransportClosed(self._ws.close_code or ABNORMAL_CLOSURE, "closed")
        try:
            if isinstance(data, str):
                await self._ws.send_str(data)
            else:
                await self._ws.send_bytes(data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise TransportClosed(self._ws.close_code or ABNORMAL_CLOSURE, str(exc)) from exc

    async def recv(self) -> bytes | str:
        """Return the next binary or text message; raise :class:`TransportClosed` at the end."""
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type is aiohttp.WSMsgType.TEXT:
                return str(msg.data)
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            if msg.type is aiohttp.WSMsgType.CLOSE and msg.data:
                # The code the server sent: aiohttp's close_code turns into 1006 when the
                # server drops TCP before our close reply is written (as a draining node may).
                raise TransportClosed(int(msg.data), str(msg.extra or ""))
            reason = str(msg.data) if msg.type is aiohttp.WSMsgType.ERROR else ""
            raise TransportClosed(self._ws.close_code or ABNORMAL_CLOSURE, reason)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once), wait for the answer, and release the session."""
        try:
            await self._ws.close(code=code, message=reason.encode())
        finally:
            if self._owned_session is not None:
                await self._owned_session.close()
