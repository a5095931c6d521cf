"""The desk map's REST API (seed 000 §7.2.1 and §5.1), under ``/api``.

Every route but ``/api/metrics`` needs ``Authorization: Bearer <token>``. Errors
are the core's JSON ``{"error": {"code", "message"}}``; docs/desks.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import describe
from tidings.api.routes import SERVICE, authenticated, int_param
from tidings.apps.desks import bookings, repository
from tidings.apps.desks.app import DeskApp
from tidings.apps.desks.errors import DeskError
from tidings.apps.desks.models import (
    STATUSES,
    OccupyRequest,
    ReserveRequest,
    WorkstationCreate,
    WorkstationUpdate,
    booking_json,
    log_json,
    workstation_json,
)
from tidings.apps.desks.openapi import DESK_ROUTES
from tidings.apps.desks.repository import WorkstationFilter
from tidings.apps.desks.roles import require_desk_admin

DESKS: web.AppKey[DeskApp] = web.AppKey("desks", DeskApp)
MAX_PAGE = 500
MAX_LIST = 5000  # /api/desks and /api/map answer a whole department or building


def _desks(request: web.Request) -> DeskApp:
    return request.app[DESKS]


def _desk_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route's pattern admits digits only


async def _filter(request: web.Request, app: DeskApp) -> WorkstationFilter:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, "BAD_PARAMETER", f"status must be one of {', '.join(STATUSES)}")
    search = request.query.get("q")
    building = request.query.get("building")
    for name, value in (("q", search), ("building", building)):
        if value is not None and (len(value) > 100 or "\x00" in value):
            raise ApiError(400, "BAD_PARAMETER", f"{name} must be at most 100 characters")
    return WorkstationFilter(status=status, floor_id=int_param(request, "floor_id", low=1,
                                                               high=2**31 - 1),
                             department_id=await _department(request, app),
                             building=building or None, search=search or None)


async def _department(request: web.Request, app: DeskApp) -> int | None:
    ref = request.query.get("dept", request.query.get("department_id"))
    if ref is None or ref == "":
        return None
    if len(ref) > 100 or "\x00" in ref:
        raise ApiError(400, "BAD_PARAMETER", "dept must be a department name or id")
    found = await app.find_department(ref)
    if found is None:
        raise ApiError(404, "DEPARTMENT_NOT_FOUND", f"no department {ref!r}")
    return found


async def _cached(app: DeskApp, kind: str, params: dict[str, Any],
                  load: Callable[[], Awaitable[Any]]) -> web.Response:
    """Answer from the cache when there is one, else from ``load()``."""
    app.monitor.count("queries")

    async def body() -> bytes:
        return msgspec.json.encode(await load())

    if app.cache is None:
        data = await body()
    else:
        hits = app.cache.hits
        data = await app.cache.get_or_load(app.cache.digest(kind, params), body)
        app.monitor.cache.labels("hit" if app.cache.hits > hits else "miss").inc()
    return web.Response(body=data, content_type="application/json")


async def list_workstations(request: web.Request) -> web.Response:
    """``GET /api/workstations?status=&floor_id=&dept=&building=&q=&page=&limit=``."""
    await authenticated(request)
    app = _desks(request)
    where = await _filter(request, app)
    page = int_param(request, "page", 1, low=1, high=1_000_000) or 1
    limit = int_param(request, "limit", 100, low=1, high=MAX_PAGE) or 100

    async def load() -> dict[str, Any]:
        async with app.db.transaction(write=False) as tx:
            rows, total = await repository.list_workstations(tx, where, limit, (page - 1) * limit)
        return {"workstations": [workstation_json(r) for r in rows], "total": total,
                "page": page, "limit": limit}

    return await _cached(app, "list", {**msgspec.structs.asdict(where), "page": page,
                                       "limit": limit}, load)


async def workstation_stats(request: web.Request) -> web.Response:
    """``GET /api/workstations/stats`` (same filters as the list)."""
    await authenticated(request)
    app = _desks(request)
    where = await _filter(request, app)

    async def load() -> dict[str, Any]:
        async with app.db.transaction(write=False) as tx:
            return await repository.stats(tx, where)

    return await _cached(app, "stats", msgspec.structs.asdict(where), load)


async def get_workstation(request: web.Request) -> web.Response:
    """``GET /api/workstations/{id}`` with its active bookings."""
    await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    app.monitor.count("queries")
    async with app.db.transaction(write=False) as tx:
        row = await repository.get_workstation(tx, desk_id)
        if row is None:
            raise repository.not_found(desk_id)
        booked = await bookings.bookings(tx, desk_id)
    return json_response({**workstation_json(row),
                          "bookings": [booking_json(b) for b in booked]})


async def _respond(app: DeskApp, desk_id: int, changes: list[Any], status: int = 200,
                   extra: dict[str, Any] | None = None) -> web.Response:
    await app.announce(changes)
    async with app.db.transaction(write=False) as tx:
        row = await repository.get_workstation(tx, desk_id)
    if row is None:
        raise repository.not_found(desk_id)
    return json_response({**workstation_json(row), **(extra or {})}, status=status)


async def create_workstation(request: web.Request) -> web.Response:
    """``POST /api/workstations`` → 201 and the workstation (desk admins only)."""
    app = _desks(request)
    me = await require_desk_admin(request, app.settings)
    body = await read_json(request, WorkstationCreate)
    async with app.db.transaction() as tx:
        changes = await repository.create_workstation(tx, body, me.user_id)
    app.monitor.count("status_updates")
    return await _respond(app, changes[0].id, changes, status=201)


async def update_workstation(request: web.Request) -> web.Response:
    """``PUT /api/workstations/{id}``: change the fields given (desk admins only)."""
    app, desk_id = _desks(request), _desk_id(request)
    me = await require_desk_admin(request, app.settings)
    changes = (await read_json(request, WorkstationUpdate)).changes()
    if not changes:
        raise ApiError(422, "INVALID_BODY", "nothing to change")
    async with app.db.transaction() as tx:
        made = await repository.update_workstation(tx, desk_id, changes, me.user_id)
    app.monitor.count("status_updates")
    return await _respond(app, desk_id, made)


async def delete_workstation(request: web.Request) -> web.Response:
    """``DELETE /api/workstations/{id}`` → ``{"deleted": id}`` (desk admins only)."""
    app, desk_id = _desks(request), _desk_id(request)
    me = await require_desk_admin(request, app.settings)
    async with app.db.transaction() as tx:
        change = await repository.delete_workstation(tx, desk_id, me.user_id)
    app.monitor.count("status_updates")
    await app.announce([change])
    return json_response({"deleted": desk_id})


async def occupy(request: web.Request) -> web.Response:
    """``POST /api/workstations/{id}/occupy {until?}``: 409 if taken."""
    me = await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    body = await read_json(request, OccupyRequest) if request.can_read_body \
        else OccupyRequest()
    async with app.db.transaction() as tx:
        change = await bookings.occupy(tx, desk_id, me.user_id, body.until)
    app.monitor.count("bookings")
    return await _respond(app, desk_id, [change])


async def release(request: web.Request) -> web.Response:
    """``POST /api/workstations/{id}/release``: only the occupant may."""
    me = await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    async with app.db.transaction() as tx:
        change = await bookings.release(tx, desk_id, me.user_id)
    app.monitor.count("bookings")
    return await _respond(app, desk_id, [change])


async def reserve(request: web.Request) -> web.Response:
    """``POST /api/workstations/{id}/reserve {start, end}`` → 201 and the booking."""
    me = await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    body = await read_json(request, ReserveRequest)
    async with app.db.transaction() as tx:
        change, booking = await bookings.reserve(tx, desk_id, me.user_id, body.start, body.end)
    app.monitor.count("bookings")
    return await _respond(app, desk_id, [change], status=201,
                          extra={"booking": booking_json(booking)})


async def cancel_reservation(request: web.Request) -> web.Response:
    """``DELETE /api/workstations/{id}/reservations/{booking}``: the booker only."""
    me = await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    booking_id = int(request.match_info["booking"])
    async with app.db.transaction() as tx:
        change = await bookings.cancel_reservation(tx, desk_id, booking_id, me.user_id)
    app.monitor.count("bookings")
    return await _respond(app, desk_id, [change])


async def workstation_logs(request: web.Request) -> web.Response:
    """``GET /api/workstations/{id}/logs?limit=``: newest first."""
    await authenticated(request)
    app, desk_id = _desks(request), _desk_id(request)
    limit = int_param(request, "limit", 50, low=1, high=MAX_PAGE) or 50
    async with app.db.transaction(write=False) as tx:
        rows = await repository.logs(tx, desk_id, limit)
    return json_response({"logs": [log_json(r) for r in rows]})


async def desks_of_department(request: web.Request) -> web.Response:
    """``GET /api/desks?dept=Engineering``: every desk of a department (all without dept)."""
    await authenticated(request)
    app = _desks(request)
    department = await _department(request, app)

    async def load() -> dict[str, Any]:
        async with app.db.transaction(write=False) as tx:
            rows, total = await repository.list_workstations(
                tx, WorkstationFilter(department_id=department), MAX_LIST, 0)
        return {"department_id": department, "workstations": [workstation_json(r) for r in rows],
                "total": total, "truncated": total > len(rows)}

    return await _cached(app, "desks", {"dept": department}, load)


async def floor_map(request: web.Request) -> web.Response:
    """``GET /api/map?dept=&floor_id=``: buildings, floors, departments and desks."""
    await authenticated(request)
    app = _desks(request)
    department = await _department(request, app)
    floor = int_param(request, "floor_id", low=1, high=2**31 - 1)

    async def load() -> dict[str, Any]:
        async with app.db.transaction(write=False) as tx:
            frame = await repository.layout(tx)
            rows, total = await repository.list_workstations(
                tx, WorkstationFilter(department_id=department, floor_id=floor), MAX_LIST, 0)
        return {**frame, "department_id": department, "floor_id": floor,
                "workstations": [workstation_json(r) for r in rows], "total": total,
                "truncated": total > len(rows)}

    return await _cached(app, "map", {"dept": department, "floor": floor}, load)


async def database_sync(request: web.Request) -> web.Response:
    """``POST /api/database/sync``: end finished bookings, realign desk statuses."""
    me = await authenticated(request)
    app = _desks(request)
    started = time.monotonic()
    async with app.db.transaction() as tx:
        changes = await repository.sync(tx)
    await app.announce(changes)
    if app.cache is not None and not changes:
        await app.cache.invalidate()  # sync also means "drop what the cache holds"
    return json_response({"synced": True, "changed": [c.id for c in changes],
                          "by_user": me.user_id,
                          "duration_ms": round(1000 * (time.monotonic() - started), 3)})


async def metrics_json(request: web.Request) -> web.Response:
    """``GET /api/metrics``: seed §6.6's panel as JSON."""
    app = _desks(request)
    service = request.app[SERVICE]
    cache: dict[str, Any] = {"enabled": app.cache is not None}
    if app.cache is not None:
        lookups = app.cache.hits + app.cache.misses
        cache.update(hits=app.cache.hits, misses=app.cache.misses, errors=app.cache.errors,
                     hit_rate=round(app.cache.hits / lookups, 4) if lookups else 0.0)
    feed = "bus" if app.feed is None else ("listening" if app.feed.connected else "reconnecting")
    return json_response(app.monitor.snapshot(
        websocket=sum(1 for _ in service.hub.all_connections()),
        socketio=app.sockets.connected, pool=app.db.pool_stats(), cache=cache,
        status={"change_feed": feed,
                "cache": "disabled" if app.cache is None else
                         ("ok" if app.cache.healthy else "error")}))


@web.middleware
async def desk_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Turn a refused desk operation into the core's JSON error."""
    try:
        return await handler(request)
    except DeskError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def add_routes(app: web.Application, desks: DeskApp) -> None:
    """Register the desk routes on ``app``."""
    app[DESKS] = desks
    describe(app, DESK_ROUTES)
    app.middlewares.append(desk_errors)
    one = r"/api/workstations/{id:[0-9]{1,9}}"
    router = app.router
    router.add_get("/api/workstations", list_workstations)
    router.add_post("/api/workstations", create_workstation)
    router.add_get("/api/workstations/stats", workstation_stats)
    router.add_get(one, get_workstation)
    router.add_put(one, update_workstation)
    router.add_delete(one, delete_workstation)
    router.add_post(one + "/occupy", occupy)
    router.add_post(one + "/release", release)
    router.add_post(one + "/reserve", reserve)
    router.add_delete(one + "/reservations/{booking:[0-9]{1,18}}", cancel_reservation)
    router.add_get(one + "/logs", workstation_logs)
    router.add_get("/api/desks", desks_of_department)
    router.add_get("/api/map", floor_map)
    router.add_post("/api/database/sync", database_sync)
    router.add_get("/api/metrics", metrics_json)
    from tidings.apps.desks.org import add_org_routes  # org.py imports DESKS from here

    add_org_routes(app)
