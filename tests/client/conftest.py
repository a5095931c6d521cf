"""Fixtures for the client tests: an in-process fake server and client factories.

``server`` (a real node, on each store backend) is re-exported from
``tests/e2e/conftest.py`` for test_client_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.client.event_reader import FAST_RECONNECT, EventReader
from tests.client.fake_server import FakeServer
from tests.e2e.conftest import server, server_factory  # noqa: F401  (the real node)
from tidings.client import Client


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    fake_server = FakeServer(page_size=2)
    for user_id in (1, 2, 3):
        fake_server.new_user(user_id)
    yield fake_server
    await fake_server.aclose()


@pytest.fixture
async def make_client(fake: FakeServer) -> AsyncIterator[Callable[..., Client]]:
    """Build clients wired to ``fake`` (fast reconnect, no keepalive); closed at teardown."""
    made: list[Client] = []

    def make(user_id: int, **kwargs: Any) -> Client:
        kwargs = {"connector": fake.connect, "reconnect": FAST_RECONNECT,
                  "ping_interval": None, **kwargs}
        client = Client("ws://fake/ws", kwargs.pop("token", f"token-{user_id}"), **kwargs)
        made.append(client)
        return client

    yield make
    await asyncio.gather(*(c.close() for c in made))


@pytest.fixture
def reader() -> Iterator[Callable[[Client], EventReader]]:
    """``reader(client)`` -> an :class:`EventReader` on that client's events."""
    made: list[EventReader] = []

    def make(client: Client) -> EventReader:
        made.append(EventReader(client))
        return made[-1]

    yield make
    for r in made:
        r.cancel()

