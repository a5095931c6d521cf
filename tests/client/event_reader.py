"""Reading a client's event stream in tests, with timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tidings.client import Client, Event, ReconnectPolicy

FAST_RECONNECT = ReconnectPolicy(initial_interval=0.05, max_interval=0.2)


class EventReader:
    """Reads a client's events with timeouts, without ever cancelling the iterator."""

    def __init__(self, client: Client) -> None:
        self._it = aiter(client.events())
        self._next: asyncio.Future[Event] | None = None
        self.seen: list[Event] = []

    async def _get(self, timeout: float) -> Event:
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._it))
        done, _ = await asyncio.wait({self._next}, timeout=max(timeout, 0))
        if not done:
            raise TimeoutError
        future, self._next = self._next, None
        event = future.result()  # StopAsyncIteration at the end of the stream
        self.seen.append(event)
        return event

    async def until(self, predicate: Callable[[Event], bool], timeout: float = 3.0) -> list[Event]:
        """Read until an event matches ``predicate``; return the events read by this call."""
        deadline = asyncio.get_running_loop().time() + timeout
        got: list[Event] = []
        while True:
            got.append(await self._get(deadline - asyncio.get_running_loop().time()))
            if predicate(got[-1]):
                return got

    async def rest(self, timeout: float = 3.0) -> list[Event]:
        """Read until the stream ends."""
        deadline = asyncio.get_running_loop().time() + timeout
        got: list[Event] = []
        try:
            while True:
                got.append(await self._get(deadline - asyncio.get_running_loop().time()))
        except StopAsyncIteration:
            return got

    async def quiet(self, wait: float = 0.1) -> list[Event]:
        """Read whatever arrives within ``wait`` seconds."""
        deadline = asyncio.get_running_loop().time() + wait
        got: list[Event] = []
        try:
            while True:
                got.append(await self._get(deadline - asyncio.get_running_loop().time()))
        except (TimeoutError, StopAsyncIteration):
            return got

    def cancel(self) -> None:
        if self._next is not None:
            self._next.cancel()
