"""Helpers shared by the client behaviour tests: client/reader factories' types, event
filters and bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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
