"""Collaborative editing (seed 002) on a node: database, service, sockets, routes and
the background job, wired into the node's aiohttp app and bus. See docs/editing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from tidings.apps.editing.db import EditingDb, open_editing_db
from tidings.apps.editing.service import EditingService
from tidings.apps.editing.sockets import EditingSockets
from tidings.apps.editing.workspaces import Workspaces
from tidings.auth import Authenticator
from tidings.bus.base import Bus, EditingEvent, Event
from tidings.config import Settings

log = logging.getLogger(__name__)


class EditingApp:
    """Everything collaborative editing needs on one node."""

    def __init__(self, settings: Settings, bus: Bus, auth: Authenticator) -> None:
        self.settings = settings
        self.auth = auth
        self.db: EditingDb = open_editing_db(settings.database_url)
        self.service = EditingService(self.db, bus, takeover_timeout=settings.takeover_timeout,
                                      session_ttl=settings.editing_session_ttl)
        self.workspaces = Workspaces(self.db)
        self.sockets = EditingSockets(self.service, auth, settings.allowed_origins,
                                      settings.write_timeout)
        self._sweeper: asyncio.Task[None] | None = None

    def attach(self, app: web.Application) -> None:
        """Add the HTTP routes and the WebSocket endpoint."""
        from tidings.apps.editing.routes import add_routes

        add_routes(app, self)

    def on_bus_event(self, event: Event) -> None:
        """The node's bus handler hands editing events here."""
        if isinstance(event, EditingEvent):
            self.sockets.on_event(event)

    async def start(self) -> None:
        """Start the background job (on every node: each transition is claimed by one)."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(),
                                                               name="editing-sweeper")

    async def _sweep(self) -> None:
        interval = max(0.05, self.settings.editing_sweep_interval)  # 0 would spin
        # Open sockets keep their sessions alive, refreshed well within the TTL.
        touch_every = max(interval, self.settings.editing_session_ttl / 3)
        last_touch = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                if loop.time() - last_touch >= touch_every:
                    await self.service.touch(self.sockets.session_ids())
                    last_touch = loop.time()
                expired, dropped = await self.service.cleanup_expired_requests()
                if expired or dropped:
                    log.info("editing: %d takeover requests expired, %d silent sessions "
                             "dropped", expired, dropped)
            except Exception:  # the database may be away for a while: try again later
                log.exception("editing sweep failed")

    async def close_sweeper(self) -> None:
        """Stop the background job."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def close(self) -> None:
        """Stop the job, close the sockets and the database connections."""
        await self.close_sweeper()
        await self.sockets.close()
        await self.db.close()
