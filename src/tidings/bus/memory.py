"""The in-process bus: one node, events handed over directly."""

from __future__ import annotations

from tidings.bus.base import Bus, Event, GapHandler, Handler


class MemoryBus(Bus):
    """Delivers each event to the local handler synchronously, in publish order."""

    ordered = True

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler, on_gap: GapHandler | None = None) -> None:
        """Remember the handler."""
        self._handler = handler

    async def publish(self, event: Event) -> None:
        """Call the handler now (no copy, no encoding)."""
        if self._handler is not None:
            self._handler(event)

    async def publish_many(self, events: list[Event]) -> None:
        """Call the handler for each event now, in order (one await for a whole batch)."""
        handler = self._handler
        if handler is not None:
            for event in events:
                handler(event)

    async def close(self) -> None:
        """Forget the handler."""
        self._handler = None
