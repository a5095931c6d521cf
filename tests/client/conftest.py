"""Fixtures for the client tests: a real node (on each store backend), a fault-injecting
proxy in front of it, and client factories.

``server_factory`` and ``http`` are the real-node fixtures of
``tests/e2e/conftest.py``, re-exported here; ``server`` is that of e2e too,
except that ``@pytest.mark.server_settings(name=value, …)`` starts it with
those settings (e.g. a small ``sync_page_size``).

Every test here runs under a deadline (:data:`TEST_DEADLINE`): a client call
that never completes (a reply never matched, a chat never re-sent) fails its
test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.event_reader import FAST_RECONNECT, EventReader
from tests.client.tap import Tap
from tests.e2e.conftest import ServerFactory, http, server_factory  # noqa: F401  (the real node)
from tests.support.proxy import Proxy
from tests.support.server import RunningServer
from tidings.client import Client

TEST_DEADLINE = 15.0
"""Seconds a test body may take (the slowest takes ~1.5 s)."""

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server_settings(**settings): start the test's `server` with these settings")


def _with_deadline(test: Callable[..., Coroutine[Any, Any, None]]
                   ) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(test)  # keeps the signature, so fixtures are still found
    async def bounded(*args: Any, **kwargs: Any) -> None:
        deadline = asyncio.timeout(TEST_DEADLINE)
        try:
            async with deadline:
                await test(*args, **kwargs)
        except TimeoutError:
            if deadline.expired():
                raise AssertionError(f"{test.__name__} still waiting after {TEST_DEADLINE} s: "
                                     "something it awaited never happened") from None
            raise

    return bounded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every async test of this directory under :data:`TEST_DEADLINE`."""
    for item in items:
        if (isinstance(item, pytest.Function) and _HERE in item.path.parents
                and inspect.iscoroutinefunction(item.obj)):
            item.obj = _with_deadline(item.obj)


@pytest.fixture
async def server(server_factory: ServerFactory,  # noqa: F811  (the fixture imported above)
                 request: pytest.FixtureRequest) -> RunningServer:
    """A real node, with default settings unless the test is marked ``server_settings``."""
    marker = request.node.get_closest_marker("server_settings")
    return await server_factory(**(marker.kwargs if marker else {}))


@pytest.fixture
async def proxy(server: RunningServer) -> AsyncIterator[Proxy]:
    """A TCP proxy in front of ``server``: point clients at ``proxy.ws_url``."""
    running = await Proxy(server.node.settings.host, server.node.port).start()
    yield running
    await running.aclose()


@pytest.fixture
async def make_client(server: RunningServer) -> AsyncIterator[Callable[..., Client]]:
    """``make_client(token, url=…, tap=…, **options)``: a client of ``server`` (or of
    ``url``) with fast reconnects, no keepalive and short timeouts; closed at teardown."""
    made: list[Client] = []

    def make(token: str, *, url: str | None = None, tap: Tap | None = None,
             **kwargs: Any) -> Client:
        kwargs = {"reconnect": FAST_RECONNECT, "ping_interval": None, "connect_timeout": 3.0,
                  "close_timeout": 1.0, **kwargs}
        if tap is not None:
            kwargs["connector"] = tap.connect
        client = Client(url or server.ws_url, token, **kwargs)
        made.append(client)
        return client

    yield make
    await asyncio.wait_for(asyncio.gather(*(c.close() for c in made)), 10)


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
