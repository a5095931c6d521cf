"""Fixtures: real nodes on SQLite and PostgreSQL, users with tokens, a workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.editing.client import Api
from tests.support.server import RunningServer

NodeFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def node_factory(store_url: str) -> AsyncIterator[NodeFactory]:
    """Start nodes on the test's database; stop every one still running after."""
    started: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        node = await RunningServer(store_url, **overrides).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        if node.http is not None and not node.http.closed:
            await node.stop()


@pytest.fixture
async def node(node_factory: NodeFactory) -> RunningServer:
    return await node_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def users(node: RunningServer, http: aiohttp.ClientSession
          ) -> Callable[[int], Awaitable[list[Api]]]:
    """``await users(n)``: n users with tokens on ``node``."""

    async def make(n: int) -> list[Api]:
        out = []
        for _ in range(n):
            user_id, token = await node.quick_user()
            out.append(Api(http, node.http_url, token, user_id))
        return out

    return make


@pytest.fixture
async def team(users: Callable[[int], Awaitable[list[Api]]]) -> tuple[int, list[Api]]:
    """A workspace owned by the first of four users; the others are editors."""
    people = await users(4)
    workspace_id = await people[0].workspace("team")
    for member in people[1:]:
        await people[0].add_member(workspace_id, member.user_id)
    return workspace_id, people
