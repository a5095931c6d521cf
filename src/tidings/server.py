"""A Tidings node: store, bus, hub, chat service, gateway and HTTP API on one port."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any

import msgspec
from aiohttp import web

from tidings import __version__, logs
from tidings.api import asyncapi, audit, jwt_routes, openapi, users
from tidings.api.cluster import add_cluster_routes
from tidings.api.cors import add_cors
from tidings.api.errors import (
    BODY_TIMEOUT,
    MAX_BODY_BYTES,
    errors_middleware,
    quiet_parser_errors,
)
from tidings.api.ratelimit import RATE_LIMITER, HttpRateLimiter
from tidings.api.routes import SERVICE, STARTED, add_routes
from tidings.api.tokens import add_token_routes
from tidings.apps.desks.app import DeskApp
from tidings.apps.editing.app import EditingApp
from tidings.apps.sidestore import UserMirror, apps_database_url
from tidings.auth import Authenticator
from tidings.auth.revocation import Revocations
from tidings.bus import open_bus
from tidings.channels.broker import Broker
from tidings.channels.routes import add_channel_routes
from tidings.cluster import open_registry
from tidings.cluster.membership import Membership
from tidings.config import Settings, masked
from tidings.control import channels as control_channels
from tidings.control import routes as control_routes
from tidings.control import users as control_users
from tidings.control.cluster import ClusterControl
from tidings.control.node import LocalNode
from tidings.gateway.caps import ConnectionCaps
from tidings.gateway.connection import Connection
from tidings.gateway.websocket import Gateway
from tidings.hooks.connect import SocketIoConnectHook
from tidings.hub.chat import ChatService
from tidings.hub.credentials import CredentialRefresh
from tidings.hub.hub import Hub
from tidings.hub.rpc import RpcCalls
from tidings.metrics import Metrics, pool_waiting, serve_metrics
from tidings.protocol.codes import MsgType
from tidings.security import add_security_headers, tls_context
from tidings.shutdown import drain
from tidings.store import open_store
from tidings.store.outbox import Outbox
from tidings.store.redis import RedisStore
from tidings.store.retention import RetentionJob
from tidings.web import admin, desk_map_app, pages
from tidings.web.traffic import TrafficMonitor
from tidings.webhooks import routes as webhook_routes
from tidings.webhooks.delivery import WebhookSender
from tidings.webhooks.events import EventRecorder, wanted

log = logging.getLogger(__name__)


class Server:
    """One node. ``await start()`` binds and serves; ``await stop()`` shuts down cleanly."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.store = open_store(settings.database_url)
        self.bus = open_bus(settings.bus_url, node_id=self.node_id, metrics=self.metrics)
        self.hub = Hub(self.metrics)
        if not self.bus.ordered:
            self.hub.enable_gap_fill(self.store, page_size=settings.sync_page_size,
                                     gap_timeout=1.0)
        self.registry = open_registry(settings.bus_url, node_id=self.node_id,
                                      address=f"{settings.host}:{settings.port}",
                                      node_timeout=settings.node_timeout)
        self.service = ChatService(settings, self.store, self.bus, self.hub,
                                   Authenticator(self.store, settings), self.metrics,
                                   registry=self.registry)
        self.membership = Membership(self.registry, self.hub, self.service.presence.went_offline,
                                     self.metrics, interval=settings.heartbeat_interval,
                                     node_timeout=settings.node_timeout,
                                     refresh=self.store.refresh)
        self.gateway = Gateway(self.service)
        self.broker = Broker(self.service)
        self.hub.listeners.append(self.broker.on_event)
        self.rpc = RpcCalls(self.service)
        self.credentials = CredentialRefresh(self.service)
        self.gateway.handlers.update({MsgType.SUBSCRIBE: self.broker.ws_subscribe,
                                      MsgType.UNSUBSCRIBE: self.broker.ws_unsubscribe,
                                      MsgType.PUBLISH: self.broker.ws_publish,
                                      MsgType.RPC: self.rpc.ws_rpc,
                                      MsgType.REFRESH: self.credentials.ws_refresh})
        self.gateway.on_disconnect.extend([self.broker.disconnected, self.rpc.disconnected])
        if settings.access_log:
            self.gateway.on_disconnect.append(self._ws_closed)
        self.revocations = Revocations(self.hub, self.store, self.bus)
        self.hub.listeners.append(self.revocations.on_event)
        self.retention = RetentionJob(self.store, settings.stream_retention,
                                      settings.stream_trim_interval) \
            if isinstance(self.store, RedisStore) and settings.stream_retention > 0 else None
        self.editing: EditingApp | None = None
        self.desks: DeskApp | None = None
        self.user_mirror: UserMirror | None = None
        apps_url = apps_database_url(settings)  # the apps need SQL tables
        if apps_url:
            apps_settings = msgspec.structs.replace(settings, database_url=apps_url)
            if apps_url != settings.database_url:  # beside a Redis store
                self.user_mirror = UserMirror(self.store, apps_url)
                self.service.auth.on_verified.append(self.user_mirror.on_verified)
            self.editing = EditingApp(apps_settings, self.bus, self.service.auth)
            if self.user_mirror is not None:
                self.editing.workspaces.ensure_user = self.user_mirror.ensure
            self.hub.listeners.append(self.editing.on_bus_event)
            self.revocations.listeners.append(self.editing.sockets.close_tokens)
            self.desks = DeskApp(apps_settings, self.bus, self.service.auth, self.metrics,
                                 self.broker)
            self.hub.listeners.append(self.desks.on_bus_event)
            if self.service.hooks.enabled("connect"):
                self.desks.sockets.connect_hook = SocketIoConnectHook(
                    self.service.hooks, self.store, self.service.auth)
            self.revocations.listeners.append(self.desks.sockets.close_tokens)
        self.control = self._control()
        self.webhooks = self._webhooks()
        self.tls = tls_context(settings)  # before anything listens: a bad file stops here
        self.caps = ConnectionCaps(settings.max_connections, settings.max_connections_per_ip,
                                   settings.trusted_proxies, self.metrics.registry)
        if self.desks is not None:
            self.desks.monitor.caps = self.caps
        self.traffic = TrafficMonitor(self.metrics)
        self._sample_metrics()
        self._metrics_runner: web.AppRunner | None = None
        self.app = self._make_app()
        self._runner: web.AppRunner | None = None
        self.listening = False  # a node that never listened has nothing to drain
        self.config_source = "settings given in code"  # `tidings serve` names its sources
        self.port = settings.port

    def _control(self) -> ClusterControl:
        """The server API's node side: every transport's connections, asked cluster-wide
        over the bus (control/cluster.py)."""
        node = LocalNode(self.hub, self.broker)
        if self.editing is not None:
            node.transports.append(self.editing.sockets)
        if self.desks is not None:
            node.transports.append(self.desks.sockets)
        control = ClusterControl(node, self.bus, self.registry)
        self.hub.listeners.append(control.on_event)
        return control

    def _webhooks(self) -> WebhookSender | None:
        """Record and send webhooks if ``webhook_url`` is set (docs/integration.md)."""
        if not self.settings.webhook_url:
            return None
        if not isinstance(self.store, Outbox):
            raise ValueError("webhook_url needs a SQLite or PostgreSQL store: the Redis "
                             "store keeps no webhook outbox")
        events = wanted(self.settings.webhook_events)
        self.store.outbox_events = events  # the store's own transactions record these
        sender = WebhookSender(self.store, self.settings, self.node_id)
        recorder = EventRecorder(self.store, events)

        async def presence(user_id: int, status: str) -> None:
            await recorder.presence(user_id, status)
            sender.notify()

        self.service.presence.listeners.append(presence)
        if self.editing is not None:
            self.editing.service.told.append(recorder.editing)
        if self.desks is not None:
            self.desks.told.append(recorder.desks)
        return sender

    def _make_app(self) -> web.Application:
        quiet_parser_errors()
        middlewares: list[Any] = [errors_middleware]
        if self.settings.access_log or self.settings.log_format == "json":  # request ids
            middlewares.insert(0, logs.request_middleware(access=self.settings.access_log))
        app = web.Application(middlewares=middlewares,
                              client_max_size=self.settings.max_body_bytes)
        app[SERVICE] = self.service
        app[MAX_BODY_BYTES] = self.settings.max_body_bytes
        app[BODY_TIMEOUT] = self.settings.idle_timeout
        app[STARTED] = time.monotonic()
        add_security_headers(app, tls=self.tls is not None)
        app.middlewares.append(self.caps.middleware())  # before any socket is upgraded
        add_cors(app, self.settings.cors_origins)
        app.router.add_get("/ws", self.gateway.handle)
        openapi.describe(app, [asyncapi.WEBSOCKET])
        add_routes(app)
        jwt_routes.add_routes(app)
        app[RATE_LIMITER] = HttpRateLimiter(self.settings.http_rate_limit,
                                            self.settings.http_rate_burst)
        add_channel_routes(app, self.broker)
        add_token_routes(app, self.revocations)
        if self.editing is not None:
            self.editing.attach(app)
        if self.desks is not None:
            self.desks.attach(app)
        users.add_routes(app)
        admin.add_routes(app, self.settings, self.traffic)
        pages.add_routes(app)
        desk_map_app.add_routes(app)
        add_cluster_routes(app)
        openapi.add_routes(app)
        asyncapi.add_routes(app)
        webhook_routes.add_routes(app)
        audit.add_routes(app, self.settings.admin_users)
        control_routes.add_routes(app, self.control)
        control_users.add_routes(app)
        control_channels.add_routes(app)
        if self.webhooks is not None:
            app[webhook_routes.WAKE].append(self.webhooks.notify)
        if self.settings.test_endpoints:
            from tidings.gateway.echo import add_test_routes

            add_test_routes(app, self.settings)
        return app

    @property
    def url(self) -> str:
        """Base HTTP URL of this node."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Migrate the store, start the bus and the commit log, and listen."""
        applied = await self.store.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        await self.bus.start(self.hub.on_event, self.hub.on_gap)
        if self.hub.gap_fill is not None:
            await self.hub.gap_fill.start()
        if self.user_mirror is not None:
            await self.user_mirror.migrate()
        if self.retention is not None:
            self.retention.start()
        if self.editing is not None:
            await self.editing.start()
        if self.desks is not None:
            await self.desks.start()
        self.service.log.start()
        self.broker.start()
        self.revocations.start()
        self.gateway.start()
        self.traffic.start()
        if self.webhooks is not None:
            self.webhooks.start()
        # keepalive_timeout also bounds a request that never completes its headers
        # (slowloris): aiohttp's default would hold such a socket for an hour.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0,
                                     keepalive_timeout=self.settings.auth_timeout)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.settings.workers > 1:  # siblings of `serve --workers N` share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.registry.address = f"{self.settings.host}:{self.port}"
        try:
            await self.membership.start()
        except Exception as exc:  # e.g. Redis unreachable: a clear message, no traceback
            sock.close()
            where = self.settings.bus_url.split("@")[-1]  # no password in the message
            raise OSError(f"cluster registry at {where}: {exc}") from exc
        site = web.SockSite(self._runner, sock, backlog=1024, ssl_context=self.tls)
        if self.settings.metrics_port:
            try:
                self._metrics_runner = await serve_metrics(
                    self.metrics, self.settings.metrics_host, self.settings.metrics_port)
            except OSError:
                sock.close()
                raise
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host,
                     self.settings.metrics_port)
        await site.start()
        self.listening = True
        log.info("Tidings listening on %s (version %s, pid %d, store %s, bus %s, config %s)",
                 self.url, __version__, os.getpid(), masked("", self.settings.database_url),
                 masked("", self.settings.bus_url), self.config_source)
        self.app[admin.NODE_URL].append(self.url)
        log.info("open %s/ (dashboard) or %s/demo/chat", self.url, self.url)

    def _sample_metrics(self) -> None:
        """Connections per transport and database waiters, read at each scrape."""
        transports = self.metrics.transport_connections.sources
        transports["ws"] = lambda: len(self.gateway.connections)
        waiting = self.metrics.db_waiting.sources
        if self.settings.database_url.startswith("postgres"):  # asyncpg's pool
            waiting["store"] = lambda: pool_waiting(getattr(self.store, "_pool", None))
        if self.editing is not None:
            peers = self.editing.sockets.peers
            transports["editing"] = lambda: sum(len(p) for p in peers.values())
        if self.desks is not None:
            desks = self.desks
            transports["socketio"] = lambda: desks.sockets.connected
            waiting["desks"] = lambda: pool_waiting(getattr(desks.db, "_pool", None))

    async def _ws_closed(self, conn: Connection) -> None:
        logs.ws_closed(conn, asyncio.get_running_loop().time())

    async def stop(self) -> None:
        """Drain within ``shutdown_timeout`` (see :mod:`tidings.shutdown`: stop listening,
        flush the log and outboxes, close connections with 1001), then release all."""
        # Keep a few seconds of shutdown_timeout for releasing the runner, bus and store.
        total = self.settings.shutdown_timeout
        if self.listening:
            await drain(self._runner, self.gateway, [self.service.close, self.broker.close],
                        total - min(3.0, total / 4))
        await self.gateway.stop()
        if self.webhooks is not None:
            await self.webhooks.close()
        if self.desks is not None:
            await self.desks.close()
        await self.traffic.stop()
        if self.editing is not None:
            await self.editing.close()
        if self.user_mirror is not None:
            await self.user_mirror.close()
        if self.retention is not None:
            await self.retention.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self.revocations.close()
        await self.control.close()
        await self.broker.close()
        await self.rpc.close()
        await self.membership.close()
        await self.service.close()
        if self.hub.gap_fill is not None:
            await self.hub.gap_fill.close()
        await self.bus.close()
        await self.store.close()
        log.info("Tidings stopped")
