"""Helpers shared by the client behaviour tests: client/reader factories' types, event
filters and bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from tests.client.event_reader import EventReader
from tests.support.server import RunningServer
from tidings.auth.tokens import hash_token
from tidings.client import (
    ChatMessage,
    Client,
    Event,
    PresenceChange,
)
from tidings.store.base import now_ms

MakeClient = Callable[..., Client]
MakeReader = Callable[[Client], EventReader]

DROPPED = "dropped by test"  # the reason RunningServer.drop_connections gives


def is_chat(event: Event) -> bool:
    return isinstance(event, ChatMessage)


def chats(events: list[Event]) -> list[ChatMessage]:
    return [e for e in events if isinstance(e, ChatMessage)]


def has_content(content: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, ChatMessage) and e.content == content


def is_a(cls: type) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, cls)


def without_presence(events: list[Event]) -> list[Event]:
    """The real server also pushes each user's own presence to them: set those aside."""
    return [e for e in events if not isinstance(e, PresenceChange)]


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 3.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


class LoopLag:
    """The longest this event loop has been late to wake a sleeper: see :func:`loop_lag`."""

    def __init__(self) -> None:
        self.worst = 0.0


@contextlib.asynccontextmanager
async def loop_lag(tick: float = 0.005) -> AsyncIterator[LoopLag]:
    """Measure how late the event loop runs while the block does.

    A test that bounds a wall-clock gap from above adds ``worst`` to its margin: on a busy
    machine the process can be descheduled, or a garbage collection can hold the loop, for
    longer than any fixed margin, and that delays the client's timers as much as the probe's.
    """
    lag = LoopLag()

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + tick
            await asyncio.sleep(tick)
            lag.worst = max(lag.worst, loop.time() - due)

    watcher = asyncio.create_task(watch())
    try:
        yield lag
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def cursor_is(server: RunningServer, user_id: int, device_id: str | None,
                    message_id: int) -> bool:
    assert device_id
    return await server.node.store.get_cursor(user_id, device_id) == message_id


async def revoke(server: RunningServer, token: str) -> None:
    """Revoke ``token`` in the node's store: the next authentication with it fails."""
    row = await server.node.store.get_token(hash_token(token))
    assert row is not None
    assert await server.node.store.revoke_token(row.id, now_ms())


async def two_users(server: RunningServer) -> tuple[tuple[int, str], tuple[int, str]]:
    return await server.quick_user(), await server.quick_user()
