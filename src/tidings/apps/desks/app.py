"""The desk map app (seed 000) on a node: database, change feed, cache, Socket.IO
rooms and the REST routes, wired into the node's aiohttp app and bus.

A change reaches clients by one path per backend. On PostgreSQL the tables'
triggers NOTIFY and every node LISTENs, so REST writes, other nodes' writes and
raw SQL all arrive the same way. On SQLite there are no triggers: the node that
made the change publishes a :class:`DeskChangeEvent` on the bus. Either way each
node reads the changed row and emits it to its own clients in the rooms concerned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tidings.apps.desks import organisation, repository
from tidings.apps.desks.cache import DeskCache
from tidings.apps.desks.db import DeskDb, open_desk_db
from tidings.apps.desks.events import ACTIONS, event_type, message, rooms_of
from tidings.apps.desks.feed import ChangeFeed
from tidings.apps.desks.models import workstation_json
from tidings.apps.desks.monitoring import DeskMonitor
from tidings.apps.desks.occupancy import Occupancy
from tidings.apps.desks.sockets import DeskSockets
from tidings.auth import Authenticator
from tidings.bus.base import Bus, DeskChangeEvent, Event
from tidings.channels.broker import Broker, BrokerError
from tidings.config import Settings
from tidings.metrics import Metrics
from tidings.store.channels import NewPublication, PublishResult

log = logging.getLogger(__name__)

_QUEUE_LIMIT = 10_000
MAX_BATCH = 256  # changes delivered together (one read of their rows)


class DeskApp:
    """Everything the desk map needs on one node."""

    def __init__(self, settings: Settings, bus: Bus, auth: Authenticator,
                 metrics: Metrics, broker: Broker | None = None) -> None:
        self.settings = settings
        self.broker = broker
        #: Told the changes this node commits, once each.
        self.told: list[Callable[[list[DeskChangeEvent]], Awaitable[None]]] = []
        self.bus = bus
        self.auth = auth
        self.db: DeskDb = open_desk_db(settings.database_url)
        self.monitor = DeskMonitor(metrics.registry)
        self.cache = DeskCache(settings.cache_url, settings.cache_ttl) \
            if settings.cache_url else None
        self.sockets = DeskSockets(auth, settings.allowed_origins + settings.cors_origins,
                                   self.find_department,
                                   self.monitor)
        self.sockets.serve_occupancy(Occupancy(self))  # §2.2.2 over Socket.IO
        self.feed = ChangeFeed(settings.database_url, self.on_change, self._on_gap) \
            if self.db.dialect == "postgres" else None
        self._changes: asyncio.Queue[DeskChangeEvent] = asyncio.Queue(_QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None
        self.emitted = 0
        self._busy = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, app: web.Application) -> None:
        """Add the routes, the Socket.IO endpoint and the timing middleware."""
        from tidings.apps.desks import layouts
        from tidings.apps.desks.routes import add_routes

        app.middlewares.append(self.monitor.middleware())
        self.sockets.attach(app)
        add_routes(app, self)
        layouts.add_routes(app, self.db)

    async def start(self) -> None:
        """Start delivering changes (and LISTEN on PostgreSQL)."""
        self._worker = asyncio.create_task(self._deliver(), name="desks-deliver")
        if self.feed is not None:
            await self.feed.start()

    async def close(self) -> None:
        """Stop listening, disconnect Socket.IO clients, close connections (once)."""
        if self._closed:
            return
        self._closed = True
        if self.feed is not None:
            await self.feed.close()
        with contextlib.suppress(Exception):
            await self.sockets.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.cache is not None:
            await self.cache.close()
        await self.db.close()

    # writes

    async def announce(self, changes: list[DeskChangeEvent]) -> None:
        """After a commit: make caches stale now (so the writer reads its own write),
        and on SQLite tell every node through the bus (PostgreSQL's triggers do it)."""
        if not changes:
            return
        for tell in self.told:  # e.g. the webhook recorder (webhooks/events.py)
            await tell(changes)
        if self.cache is not None:
            await self.cache.invalidate()
        if self.feed is None:
            for change in changes:
                await self.bus.publish(msgspec.structs.replace(change, key=uuid.uuid4().hex))

    # delivery

    def on_bus_event(self, event: Event) -> None:
        """The node's bus handler hands desk events here."""
        if isinstance(event, DeskChangeEvent):
            self.on_change(event)

    def on_change(self, change: DeskChangeEvent) -> None:
        """Queue a change for delivery, in arrival order."""
        try:
            self._changes.put_nowait(change)
        except asyncio.QueueFull:  # clients resynchronise from REST; never block the feed
            log.error("desk change queue full: dropped %s %s %d", change.table, change.op,
                      change.id)

    @property
    def pending(self) -> int:
        """Changes received and not yet delivered."""
        return self._changes.qsize() + self._busy

    def _on_gap(self) -> None:
        log.warning("desk change feed reconnected: changes in between were not announced")
        if self.cache is not None:
            asyncio.get_running_loop().create_task(self.cache.invalidate())

    async def _deliver(self) -> None:
        while True:
            # Everything queued goes together: one read of all the rows (one trip to
            # the database's thread), then each event in order. On a busy node a trip
            # per change was what held desk events back (docs/benchmarks.md, Socket.IO).
            batch = [await self._changes.get()]
            while len(batch) < MAX_BATCH and not self._changes.empty():
                batch.append(self._changes.get_nowait())
            self._busy = len(batch)
            try:
                await self._deliver_batch(batch)
            except Exception:
                log.exception("could not deliver desk changes %s", batch)
            finally:
                self._busy = 0

    async def _deliver_batch(self, changes: list[DeskChangeEvent]) -> None:
        if self.cache is not None:
            await self.cache.invalidate()
        routed = [(change, rooms_of(change, await self._org_floors(change)))
                  for change in changes]
        routed = [(change, rooms) for change, rooms in routed if rooms]
        rows = await self._rows([change for change, _ in routed])
        for (change, rooms), found in zip(routed, rows, strict=True):
            type_ = event_type(change)
            body = message(type_, self._data(change, found))
            await self.sockets.emit(type_, body, rooms)
            self._publish(change, type_, body, rooms)
            self.monitor.events.labels(type_).inc()
            self.emitted += 1

    def _publish(self, change: DeskChangeEvent, type_: str, body: dict[str, Any],
                 rooms: list[str]) -> None:
        """The same event on the native ``/ws`` protocol: a publication in channel
        ``desks:<room>`` (``desks:floor:1``, ``desks:dept:2``). Every node does this
        for every change; the change's key makes the store keep one of them.

        Not awaited: the broker commits in submission order, in batches, so a burst
        of changes (a bulk ``UPDATE``) does not wait one commit per desk.
        """
        if self.broker is None:
            return
        for room in rooms:
            channel = "desks:" + room
            try:
                retention = self.broker.namespace(channel).retention
                data = self.broker.encode_data(body)
            except BrokerError as exc:  # namespace removed by the operator, or too large
                log.warning("desk event not published to %s: %s", channel, exc.message)
                continue
            future = self.broker.submit(NewPublication(
                channel, type_, data, 0, "desks", retention, change.key or None))
            future.add_done_callback(self._published)

    def _published(self, future: asyncio.Future[PublishResult]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.warning("desk event not published: %s", future.exception())
        elif future.result().duplicate:
            # Another node stored it first and told its own subscribers; tell ours.
            task = asyncio.get_running_loop().create_task(self._deliver_stored(future.result()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver_stored(self, result: PublishResult) -> None:
        """Push an already stored publication to this node's subscribers (the router
        drops offsets a subscriber has had, so a copy from the bus is harmless)."""
        assert self.broker is not None
        try:
            page = await self.broker.store.read_channel(result.channel, result.offset - 1, 1, 0)
        except Exception as exc:
            log.warning("desk event not delivered to %s: %s", result.channel, exc)
            return
        for publication in page.publications:
            if publication.offset == result.offset:
                self.broker.router.deliver(publication)

    async def _org_floors(self, change: DeskChangeEvent) -> list[int]:
        """The floor maps an organisation row shows on; none for a desk.

        Buildings, floors and departments go to every floor: each map's pickers and
        filters list all of them, and they change rarely. An employee goes to the
        floors with their desks (a deleted one's row is gone: its departments only).
        """
        if change.table == "workstations":
            return []
        async with self.db.transaction(write=False) as tx:
            if change.table in ("buildings", "floors", "departments"):
                return await organisation.all_floors(tx)
            if change.op == "DELETE":
                return []
            return await organisation.floors_showing(tx, change.table, change.id)

    async def _rows(self, changes: list[DeskChangeEvent]) -> list[dict[str, Any] | None]:
        """The changed rows as the REST API shows them, read in one transaction (None:
        deleted, or gone again before we read it)."""
        if all(change.op == "DELETE" for change in changes):
            return [None] * len(changes)
        found: list[dict[str, Any] | None] = []
        async with self.db.transaction(write=False) as tx:
            for change in changes:
                if change.op == "DELETE":
                    found.append(None)
                elif change.table == "workstations":
                    row = await repository.get_workstation(tx, change.id)
                    found.append(None if row is None else workstation_json(row))
                else:
                    found.append(await repository.row_of(tx, change.table, change.id))
        return found

    @staticmethod
    def _data(change: DeskChangeEvent, found: dict[str, Any] | None) -> dict[str, Any]:
        """An event's ``data``: the row (just its id once deleted). A desk's also
        carries seed §5.1's ``workstationId`` and ``status``; an organisation row's
        carries ``action`` (created, updated, deleted)."""
        desk = change.table == "workstations"
        if found is None:
            found = {"id": change.id, "deleted": True}
            if desk:
                found.update(floor_id=change.old_floor_id,
                             department_id=change.old_department_id,
                             workstation_id=change.workstation_id, status="deleted")
        if desk:
            return {**found, "workstationId": found["workstation_id"],
                    "status": found["status"]}
        action = "deleted" if found.get("deleted") else ACTIONS.get(change.op, "updated")
        return {"action": action, **found}

    async def find_department(self, ref: str) -> int | None:
        """A department id from its name or id."""
        async with self.db.transaction(write=False) as tx:
            return await repository.find_department(tx, ref)
