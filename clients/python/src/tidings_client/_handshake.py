"""Opening a connection: connect, then the authentication exchange."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from tidings_client._errors import AuthError, ConnectionLostError, TidingsError
from tidings_client._transport import Connector, Transport, TransportClosed
from tidings_client.protocol.codec import ProtocolError, decode_server_frame, encode_client_frame
from tidings_client.protocol.codes import TERMINAL_CLOSE_CODES, ErrorCode, MsgType
from tidings_client.protocol.messages import AuthPayload, AuthResponsePayload, ErrorPayload


async def open_session(connector: Connector, url: str, *, seq: int, token: str,
                       device_id: str | None, binary: bool, step_timeout: float,
                       close_timeout: float) -> tuple[Transport, AuthResponsePayload]:
    """Connect to ``url`` and authenticate, each step within ``step_timeout`` seconds.

    Return the open transport and the successful ``MsgAuthRsp``; on any failure
    the transport is closed and a :class:`TidingsError` raised (see
    :func:`authenticate`; :class:`ConnectionLostError` for connect failures and
    timeouts).
    """
    try:
        async with asyncio.timeout(step_timeout):
            transport = await connector(url)
    except Exception as exc:
        raise ConnectionLostError(f"cannot connect to {url}: {exc!r}") from exc
    try:
        async with asyncio.timeout(step_timeout):
            rsp = await authenticate(transport, seq=seq, token=token, device_id=device_id,
                                     binary=binary)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(close_timeout):
                await transport.close()
        if isinstance(exc, TimeoutError):
            raise ConnectionLostError("no authentication response in time") from exc
        raise
    return transport, rsp


async def authenticate(transport: Transport, *, seq: int, token: str, device_id: str | None,
                       binary: bool) -> AuthResponsePayload:
    """Send ``MsgAuth`` and wait for the ``MsgAuthRsp`` with the same ``seq``.

    Return the successful response. Raise :class:`AuthError` if the token is
    refused (a failed response or close code 4401), :class:`TidingsError` for a
    ``MsgError`` answer, :class:`ConnectionLostError` if the connection closes
    first or the answer is malformed. Frames with another seq are skipped.
    """
    frame = encode_client_frame(MsgType.AUTH, seq,
                                AuthPayload(token=token, device_id=device_id), binary=binary)
    try:
        await transport.send(frame)
        while True:
            data = await transport.recv()
            try:
                type_, rseq, body = decode_server_frame(data)
                if rseq != seq:
                    continue
                if type_ == MsgType.ERROR:
                    error = msgspec.convert(body, ErrorPayload)
                    raise TidingsError(error.code, error.message)
                if type_ != MsgType.AUTH_RSP:
                    continue
                rsp = msgspec.convert(body, AuthResponsePayload)
            except (ProtocolError, msgspec.MsgspecError) as exc:
                raise ConnectionLostError(f"bad authentication response: {exc}") from None
            if not rsp.success:
                if rsp.error.startswith((ErrorCode.TOO_MANY_CONNECTIONS,
                                         ErrorCode.INTERNAL_ERROR)):
                    # Not the token's fault: a dead connection of ours may still be
                    # counted until the server's idle timeout, or the node cannot reach
                    # its cluster registry right now (a partition). Retry with backoff:
                    # giving up here left a device offline for good.
                    raise ConnectionLostError(rsp.error)
                raise AuthError(rsp.error or "authentication failed")
            return rsp
    except TransportClosed as closed:
        if closed.code in TERMINAL_CLOSE_CODES:
            raise AuthError(closed.reason or "authentication failed") from None
        raise ConnectionLostError(
            f"closed during authentication: {closed.code} {closed.reason}".rstrip()) from None
