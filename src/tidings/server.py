"""A Tidings node: store, bus, hub, chat service, gateway and HTTP API on one port."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from aiohttp import web

from tidings.api.errors import MAX_BODY_BYTES, errors_middleware
from tidings.api.routes import SERVICE, STARTED, add_routes
from tidings.auth import Authenticator
from tidings.bus import open_bus
from tidings.config import Settings
from tidings.gateway.websocket import Gateway
from tidings.hub.chat import ChatService
from tidings.hub.hub import Hub
from tidings.metrics import Metrics
from tidings.protocol.codes import CloseCode
from tidings.store import open_store

log = logging.getLogger(__name__)


class Server:
    """One node. ``await start()`` binds and serves; ``await stop()`` shuts down cleanly."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = open_store(settings.database_url)
        self.bus = open_bus(settings.bus_url)
        self.hub = Hub(self.metrics)
        self.service = ChatService(settings, self.store, self.bus, self.hub,
                                   Authenticator(self.store, settings), self.metrics)
        self.gateway = Gateway(self.service)
        self.app = self._make_app()
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[errors_middleware],
                              client_max_size=self.settings.max_body_bytes)
        app[SERVICE] = self.service
        app[MAX_BODY_BYTES] = self.settings.max_body_bytes
        app[STARTED] = time.monotonic()
        app.router.add_get("/ws", self.gateway.handle)
        add_routes(app)
        if self.settings.test_endpoints:
            from tidings.gateway.echo import add_test_routes

            add_test_routes(app, self.settings)
        return app

    @property
    def url(self) -> str:
        """Base HTTP URL of this node."""
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Migrate the store, start the bus and the commit log, and listen."""
        applied = await self.store.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        await self.bus.start(self.hub.on_event)
        self.service.log.start()
        self.gateway.start()
        # keepalive_timeout also bounds a request that never completes its headers
        # (slowloris): aiohttp's default would hold such a socket for an hour.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0,
                                     keepalive_timeout=self.settings.auth_timeout)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        log.info("Tidings listening on %s (store %s, bus %s)", self.url,
                 self.settings.database_url.split("@")[-1], self.settings.bus_url)

    async def stop(self) -> None:
        """Tell clients to reconnect elsewhere (1001), flush the log and close."""
        conns = list(self.gateway.connections)
        for conn in conns:
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        if conns:
            log.info("closing %d connections", len(conns))
            await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in conns],
                               timeout=self.settings.write_timeout)
        await self.gateway.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.service.close()
        await self.bus.close()
        await self.store.close()
        log.info("Tidings stopped")
