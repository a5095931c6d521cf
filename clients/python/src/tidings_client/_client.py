"""The client: one logical session per device that outlives its WebSocket connections."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

from tidings_client._channels import ChannelMethods, Channels
from tidings_client._credentials import CredentialMethods, TokenGetter
from tidings_client._errors import AuthError, ClientClosedError, ConnectionLostError, TidingsError
from tidings_client._events import (
    ChatAck,
    ChatMessage,
    Event,
    EventStream,
    parse_chat_ack,
    parse_sync_page,
)
from tidings_client._handshake import open_session
from tidings_client._reconnect import ReconnectPolicy
from tidings_client._requests import Pending, PendingRequests
from tidings_client._session import ConnectionLoop
from tidings_client._transport import (
    AiohttpTransport,
    Connector,
    Transport,
    TransportClosed,
)
from tidings_client.protocol.codec import encode_client_frame
from tidings_client.protocol.codes import MsgType
from tidings_client.protocol.messages import (
    AckPayload,
    ChatPayload,
    ChatType,
    Payload,
    PresencePayload,
    PresenceStatus,
    RpcPayload,
    SyncRequestPayload,
)

log = logging.getLogger("tidings_client")

T = TypeVar("T")


class Client(ConnectionLoop, ChannelMethods, CredentialMethods):
    """An async client for one device of one user.

    Use it as ``async with Client(url, token) as c:`` or call :meth:`connect`
    and :meth:`close`. The client authenticates, keeps the connection alive
    with pings, and reconnects with backoff (``reconnect``) when it drops,
    re-authenticating with the same ``device_id`` (the one given, or the one the
    server assigned on first connect) so the server resumes this device's stream.

    Chats in flight survive reconnects: they are re-sent with their original seq,
    which the server de-duplicates. Seqs come from one counter per client object,
    started at the current time in microseconds so that a later client for the
    same device never reuses a seq of an earlier one.

    ``binary`` picks MessagePack framing (default) or JSON text framing. With
    ``auto_ack`` each chat message is acknowledged as delivered as soon as it is
    queued for :meth:`events`. ``ping_interval`` None disables keepalive pings;
    a ping unanswered within ``ping_timeout`` seconds counts as a dead connection.
    ``connector`` replaces the aiohttp WebSocket (see :class:`Transport`).

    ``get_token`` (an async callable returning a token) is called for the first token
    when ``token`` is empty, for a new one on reconnects once the last one expired, and
    ``refresh_margin`` seconds before the connection's credential expires, to renew it
    in-band (``Refresh``) without reconnecting (see ``_credentials.py``).
    """

    def __init__(self, url: str, token: str = "", *, device_id: str | None = None,
                 binary: bool = True, auto_ack: bool = True,
                 ping_interval: float | None = 30.0, ping_timeout: float = 10.0,
                 reconnect: ReconnectPolicy | None = None, connect_timeout: float = 10.0,
                 close_timeout: float = 5.0, connector: Connector | None = None,
                 get_token: TokenGetter | None = None, refresh_margin: float = 30.0) -> None:
        """Configure the client; nothing is opened until :meth:`connect`."""
        if not token and get_token is None:
            raise ValueError("give a token or a get_token callback")
        self.url = url
        self.token = token
        self._get_token = get_token
        self._refresh_margin = refresh_margin
        self._expires_at: int | None = None
        self._token_refused = False
        self._device_id = device_id
        self._user_id: int | None = None
        self._binary = binary
        self._auto_ack = auto_ack
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._policy = reconnect if reconnect is not None else ReconnectPolicy()
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._connector: Connector = connector or AiohttpTransport.connect
        self._seqs = itertools.count(time.time_ns() // 1000)
        self._pending = PendingRequests()
        self._events = EventStream()
        self._channels = Channels(self._events)
        self._presence: PresenceStatus | None = None
        self._transport: Transport | None = None
        self._gen = 0
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._failure: TidingsError | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def device_id(self) -> str | None:
        """This device's id: the one given, else the server's once connected."""
        return self._device_id

    @property
    def user_id(self) -> int | None:
        """The authenticated user's id, None before the first successful auth."""
        return self._user_id

    @property
    def connected(self) -> bool:
        """True while an authenticated connection is up."""
        return self._transport is not None

    async def __aenter__(self) -> Client:
        """Connect; see :meth:`connect`."""
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close; see :meth:`close`."""
        await self.close()

    async def connect(self) -> None:
        """Open the connection and authenticate, then run in the background.

        Raise :class:`AuthError` if the token is refused (the client is then
        closed), :class:`ConnectionLostError` if the server cannot be reached
        (no retry on this first attempt; call again to retry).
        """
        if self._closed:
            raise ClientClosedError()
        if self._runner is not None:
            return
        try:
            transport = await self._open()
        except AuthError as exc:
            self._shutdown(exc)
            raise
        if self._closing:  # close() ran while we were connecting: leave nothing open
            await self._close_quietly(transport)
            raise ClientClosedError()
        self._runner = asyncio.create_task(self._run(transport))

    async def close(self) -> None:
        """Close the connection and stop; pending calls raise :class:`ClientClosedError`.

        Events already queued can still be read from :meth:`events`, which then ends.
        """
        self._closing = True
        transport = self._transport
        if transport is not None:
            await self._close_quietly(transport)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._shutdown(ClientClosedError())
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def send_chat(self, to: int, content: str,
                        type: ChatType = "text") -> ChatAck:
        """Send a chat to user ``to`` and wait until the server has stored it.

        Survives reconnects (the chat is re-sent with the same seq and stored
        once). Raise :class:`TidingsError` if the server refuses it (e.g.
        ``WS_USER_NOT_FOUND``), :class:`AuthError` / :class:`ClientClosedError` /
        :class:`ConnectionLostError` if the client stops before the answer.
        """
        payload = ChatPayload(to=to, type=type, content=content)
        return await self._request(MsgType.CHAT, payload, parse_chat_ack, resend=True)

    async def sync(self, last_message_id: int = 0,
                   last_sync_time: int = 0) -> tuple[list[ChatMessage], bool]:
        """Fetch one page of messages after ``last_message_id``: ``(messages, has_more)``.

        The page is returned to the caller only: it is neither put on
        :meth:`events` nor acknowledged.
        """
        payload = SyncRequestPayload(last_message_id=last_message_id,
                                     last_sync_time=last_sync_time)
        return await self._request(MsgType.SYNC_REQ, payload, parse_sync_page, resend=True)

    async def ack(self, message_id: int,
                  status: Literal["delivered", "read"] = "delivered") -> None:
        """Acknowledge a message: ``delivered`` confirms every id up to ``message_id``
        for this device; ``read`` marks that one message read.

        Waits for a connection if there is none; raise :class:`ConnectionLostError`
        if it drops while sending.
        """
        await self._send(MsgType.ACK, AckPayload(message_id=message_id, status=status))

    async def set_presence(self, status: PresenceStatus) -> None:
        """Set this user's presence (online/away/offline); it is set again after
        every reconnect, so a connection dropping meanwhile is not an error."""
        self._presence = status
        with contextlib.suppress(ConnectionLostError):  # _flush re-sends it anyway
            await self._send(MsgType.PRESENCE, PresencePayload(status=status))

    async def rpc(self, method: str, data: Any = None) -> Any:
        """Call ``method`` of the application's backend through the server (``Rpc``) and
        return the ``data`` of its answer. Raise :class:`TidingsError` with
        ``WS_REFUSED_BY_BACKEND`` (the backend's message) or ``WS_BACKEND_UNAVAILABLE``;
        :class:`ConnectionLostError` if the connection drops first (not re-sent: a call
        may not be safe to repeat)."""
        return await self._request(MsgType.RPC, RpcPayload(method=method, data=data),
                                   lambda body: body.get("data"), resend=False)

    async def ping(self) -> float:
        """Ping the server and return the round-trip time in seconds."""
        start = time.monotonic()
        await self._request(MsgType.PING, None, lambda _: None, resend=False)
        return time.monotonic() - start

    async def events(self) -> AsyncIterator[Event]:
        """Yield events in arrival order until the client closes or stops for good.

        Each chat message is yielded exactly once, in increasing id order.
        Meant for one consumer; events queue up (unbounded) until read.
        """
        async for event in self._events:
            yield event

    def _check_open(self) -> None:
        if self._failure is not None:
            raise ClientClosedError(f"client stopped: {self._failure}") from self._failure
        if self._closed or self._closing:
            raise ClientClosedError()
        if self._runner is None:
            raise ClientClosedError("client is not connected: call connect() first")

    async def _request(self, type_: MsgType, payload: Payload | None,
                       parse: Callable[[dict[str, Any]], T], *, resend: bool) -> T:
        self._check_open()
        if not resend:
            await self._wait_connected()
        seq = next(self._seqs)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        pending = Pending(type_, payload, parse, future, resend)
        self._pending.add(seq, pending)
        try:
            transport = self._transport
            if transport is not None:  # else re-sent by _flush on the next connection
                pending.gen = self._gen
                await self._send_raw(transport, type_, seq, payload)
            return await future
        finally:
            self._pending.discard(seq)

    async def _send(self, type_: MsgType, payload: Payload) -> None:
        self._check_open()
        transport = await self._wait_connected()
        if not await self._send_raw(transport, type_, next(self._seqs), payload):
            raise ConnectionLostError("connection dropped while sending")

    async def _wait_connected(self) -> Transport:
        while self._transport is None:
            if self._closed:
                raise ClientClosedError()
            await self._connected.wait()
        return self._transport

    async def _send_raw(self, transport: Transport, type_: int, seq: int,
                        payload: Payload | None) -> bool:
        try:
            await transport.send(encode_client_frame(type_, seq, payload, binary=self._binary))
        except TransportClosed:
            return False  # the reader sees the close and reconnects
        return True

    async def _open(self) -> Transport:
        """Connect and authenticate once; raise a :class:`TidingsError` on failure."""
        token = await self._token_for_connect()
        transport, rsp = await open_session(
            self._connector, self.url, seq=next(self._seqs), token=token,
            device_id=self._device_id, binary=self._binary, step_timeout=self._connect_timeout,
            close_timeout=self._close_timeout)
        self._user_id = rsp.user_id
        self._device_id = rsp.device_id or self._device_id
        self._expires_at = rsp.expires_at
        return transport

    def _shutdown(self, error: TidingsError) -> None:
        """Stop for good: fail every pending call with ``error``, end :meth:`events`."""
        if self._closed:
            return
        self._closed = True
        if not isinstance(error, ClientClosedError):
            self._failure = error
        self._pending.fail(error, everything=True)
        self._channels.fail_all(error)
        self._connected.set()  # wake _wait_connected, which then raises
        self._events.end()

    def _discard(self, transport: Transport) -> None:
        task = asyncio.create_task(self._close_quietly(transport))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_quietly(self, transport: Transport) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await transport.close()
        except Exception as exc:
            log.debug("error closing transport: %r", exc)
