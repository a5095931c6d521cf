"""Requests waiting for the server's reply with the same seq (chats, syncs, pings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from tidings_client._errors import TidingsError
from tidings_client.protocol.codes import ErrorCode, MsgType
from tidings_client.protocol.messages import ErrorPayload, Payload

T = TypeVar("T")

REPLY_TYPE = {MsgType.CHAT: MsgType.CHAT_ACK, MsgType.SYNC_REQ: MsgType.SYNC_RSP,
              MsgType.PING: MsgType.PONG, MsgType.PUBLISH: MsgType.PUBLISH_ACK,
              MsgType.RPC: MsgType.RPC_RSP, MsgType.REFRESH: MsgType.REFRESH_RSP}
"""The server frame type that answers each request type."""


@dataclass(eq=False)
class Pending(Generic[T]):
    """One request. ``resend``: send it again on the next connection (chats, syncs)
    rather than failing it when the connection drops (pings). ``gen``: the
    connection it was last sent on (-1: not sent yet)."""

    type: MsgType
    payload: Payload | None
    parse: Callable[[dict[str, Any]], T]
    future: asyncio.Future[T]
    resend: bool
    gen: int = -1


class PendingRequests:
    """The requests in flight, by seq, in the order they were made."""

    def __init__(self) -> None:
        """Start empty."""
        self._items: dict[int, Pending[Any]] = {}

    def add(self, seq: int, pending: Pending[Any]) -> None:
        """Track ``pending`` until its reply with ``seq`` arrives."""
        self._items[seq] = pending

    def discard(self, seq: int) -> None:
        """Stop tracking ``seq`` (answered, cancelled or failed)."""
        self._items.pop(seq, None)

    def resolve(self, type_: int, seq: int, body: dict[str, Any]) -> bool:
        """Complete the request ``seq`` answers, if any; return whether one was.

        ``MsgError`` fails it with a :class:`TidingsError`; the matching reply
        type completes it with the parsed payload. Other frames are not replies.
        """
        pending = self._items.get(seq) if seq else None
        if pending is None or pending.future.done():
            return False
        if type_ == MsgType.ERROR:
            try:
                error = msgspec.convert(body, ErrorPayload)
                pending.future.set_exception(TidingsError(error.code, error.message))
            except msgspec.MsgspecError:
                pending.future.set_exception(
                    TidingsError(ErrorCode.INVALID_PAYLOAD, f"bad error payload: {body!r}"))
            return True
        if type_ != REPLY_TYPE[pending.type]:
            return False
        try:
            pending.future.set_result(pending.parse(body))
        except msgspec.MsgspecError as exc:
            pending.future.set_exception(
                TidingsError(ErrorCode.INVALID_PAYLOAD, f"bad reply: {exc}"))
        return True

    def unsent(self, gen: int) -> list[tuple[int, Pending[Any]]]:
        """Re-sendable requests still waiting and not yet sent on connection ``gen``."""
        return [(seq, p) for seq, p in self._items.items()
                if p.resend and p.gen != gen and not p.future.done()]

    def fail(self, error: TidingsError, *, everything: bool) -> None:
        """Fail waiting requests with ``error``: every one, or only those not re-sent."""
        for pending in self._items.values():
            if (everything or not pending.resend) and not pending.future.done():
                pending.future.set_exception(error)
