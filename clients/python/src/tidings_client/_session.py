"""The client's connection loop (mixed into :class:`~tidings_client.Client`): serve one
authenticated connection (restore state, keep it alive, read and dispatch its frames),
then reconnect with backoff when it drops, until closed or stopped for good."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from tidings_client._channels import Channels
from tidings_client._errors import AuthError, ClientClosedError, ConnectionLostError, TidingsError
from tidings_client._events import Disconnected, EventStream, Reconnected
from tidings_client._reconnect import ReconnectPolicy
from tidings_client._requests import PendingRequests
from tidings_client._transport import ABNORMAL_CLOSURE, Transport, TransportClosed
from tidings_client.protocol.codec import ProtocolError, decode_server_frame
from tidings_client.protocol.codes import TERMINAL_CLOSE_CODES, CloseCode, MsgType
from tidings_client.protocol.messages import AckPayload, Payload, PresencePayload, PresenceStatus

log = logging.getLogger("tidings_client")


class ConnectionLoop:
    """The connection half of :class:`~tidings_client.Client` (mixed into it)."""

    _auto_ack: bool
    _channels: Channels
    _closing: bool
    _connected: asyncio.Event
    _events: EventStream
    _gen: int
    _pending: PendingRequests
    _ping_interval: float | None
    _ping_timeout: float
    _policy: ReconnectPolicy
    _presence: PresenceStatus | None
    _seqs: itertools.count[int]
    _transport: Transport | None
    _get_token: Any
    _token_refused: bool

    if TYPE_CHECKING:
        async def _refresh_loop(self) -> tuple[int, str]: ...

        async def ping(self) -> float: ...

        async def _open(self) -> Transport: ...

        def _shutdown(self, error: TidingsError) -> None: ...

        def _discard(self, transport: Transport) -> None: ...

        async def _close_quietly(self, transport: Transport) -> None: ...

        async def _send_raw(self, transport: Transport, type_: int, seq: int,
                            payload: Payload | None) -> bool: ...

        async def _send_subscribe(self, transport: Transport, channel: str) -> None: ...

    async def _run(self, transport: Transport) -> None:
        """Serve connections one after another until closed or stopped for good."""
        try:
            while True:
                code, reason = await self._serve(transport)
                if self._closing:
                    return
                self._events.put(Disconnected(code, reason))
                if code in TERMINAL_CLOSE_CODES:
                    raise AuthError(reason or "authentication revoked")
                if code == CloseCode.TOKEN_EXPIRED:
                    if self._get_token is None:
                        raise AuthError("token expired (close 4402); give get_token to renew")
                    self._token_refused = True  # the reconnect asks get_token first
                transport = await self._reconnect()
        except TidingsError as exc:
            self._shutdown(exc)
        except Exception as exc:  # a bug: stop rather than hang callers forever
            log.exception("tidings client stopped")
            self._shutdown(ConnectionLostError(f"client failed: {exc!r}"))

    async def _reconnect(self) -> Transport:
        attempts = 0
        for delay in self._policy.delays():
            await asyncio.sleep(delay)
            attempts += 1
            try:
                transport = await self._open()
            except AuthError:
                raise
            except TidingsError as exc:
                log.info("reconnect attempt %d failed: %s", attempts, exc)
                if self._closing:  # close()'s cancel can be lost in a timeout race (3.11)
                    raise ClientClosedError() from None
                continue
            if self._closing:
                await self._close_quietly(transport)
                raise ClientClosedError()
            self._events.put(Reconnected(attempts))
            return transport
        raise ConnectionLostError(f"gave up reconnecting after {attempts} attempts")

    async def _serve(self, transport: Transport) -> tuple[int, str]:
        """Run one authenticated connection; return its close code and reason."""
        self._gen += 1
        tasks = [asyncio.create_task(self._read_loop(transport))]
        try:
            await self._flush(transport)
            self._transport = transport
            self._connected.set()
            if self._ping_interval:
                tasks.append(asyncio.create_task(self._keepalive(self._ping_interval)))
            if self._get_token is not None:
                tasks.append(asyncio.create_task(self._refresh_loop()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return (tasks[0] if tasks[0] in done else done.pop()).result()
        finally:
            self._transport = None
            self._connected.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._discard(transport)
            self._pending.fail(ConnectionLostError("connection lost"), everything=False)

    async def _flush(self, transport: Transport) -> None:
        """Restore presence, then (re-)send every request not yet sent on this connection."""
        if self._presence is not None:
            await self._send_raw(transport, MsgType.PRESENCE, next(self._seqs),
                                 PresencePayload(status=self._presence))
        for channel in self._channels.channels():
            await self._send_subscribe(transport, channel)
        while unsent := self._pending.unsent(self._gen):
            for seq, pending in unsent:
                pending.gen = self._gen
                await self._send_raw(transport, pending.type, seq, pending.payload)

    async def _keepalive(self, interval: float) -> tuple[int, str]:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.ping(), self._ping_timeout)
            except (TimeoutError, ConnectionLostError, ClientClosedError):
                return ABNORMAL_CLOSURE, "no pong within ping_timeout"
            except TidingsError as exc:
                # An error answer (WS_RATE_LIMITED from a busy sender) is still an answer:
                # the server is there, so the connection stays.
                log.debug("ping answered with %s", exc)

    async def _read_loop(self, transport: Transport) -> tuple[int, str]:
        while True:
            try:
                data = await transport.recv()
            except TransportClosed as closed:
                return closed.code, closed.reason
            try:
                type_, seq, body = decode_server_frame(data)
                await self._dispatch(transport, type_, seq, body)
            except (ProtocolError, msgspec.MsgspecError) as exc:
                log.warning("ignoring malformed server frame: %s", exc)

    async def _dispatch(self, transport: Transport, type_: int, seq: int,
                        body: dict[str, Any]) -> None:
        if self._pending.resolve(type_, seq, body) or self._channels.handle(type_, seq, body):
            return
        if type_ == MsgType.ERROR:
            log.warning("server error for seq %d: %s", seq, body)
            return
        if type_ == MsgType.SYNC_RSP and seq:
            return  # the page of a sync() nobody waits for any more: not part of the stream
        last = self._events.put_push(type_, body)
        if last and self._auto_ack:  # cumulative: every id up to `last` is queued or seen
            await self._send_raw(transport, MsgType.ACK, next(self._seqs),
                                 AckPayload(message_id=last, status="delivered"))
