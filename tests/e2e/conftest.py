"""Fixtures: a real node per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.support.server import RunningServer
from tests.support.wire import Wire

ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def server_factory(store_url: str) -> AsyncIterator[ServerFactory]:
    """Start nodes with custom settings on the test's database; stop them after."""
    started: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        node = await RunningServer(store_url, **overrides).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    """A node with default settings."""
    return await server_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # limit=0: the default pool of 100 would stall the 101st WebSocket.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


@pytest.fixture
async def connect(server: RunningServer, http: aiohttp.ClientSession
                  ) -> Callable[..., Awaitable[Wire]]:
    """Open an authenticated raw connection: ``await connect(token, device_id=…)``."""

    async def open_(token: str, device_id: str | None = None, *, binary: bool = True,
                    backlog: bool = True) -> Wire:
        if backlog:
            return await Wire.ready(http, server.ws_url, token, device_id, binary=binary)
        wire = await Wire.open(http, server.ws_url, binary=binary)
        await wire.auth(token, device_id)
        return wire

    return open_
