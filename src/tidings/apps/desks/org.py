"""Managing the desk map's organisation over REST (Tidings' addition to seed 000,
hence under ``/api/v1``): buildings, floors, departments and employees, each with
list / get / create / update / delete, and ``GET /api/v1/desks/me``.

Reads need a token; writes need desk-admin rights (roles.py). Every write is
announced like a desk write, so clients get ``building_update``,
``floor_update``, ``department_update`` or ``employee_update`` (docs/desks.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from tidings.api.errors import json_response, read_json
from tidings.api.openapi import describe
from tidings.api.routes import authenticated, int_param
from tidings.apps.desks import organisation
from tidings.apps.desks.openapi import ORG_ROUTES
from tidings.apps.desks.organisation import (
    BuildingBody,
    DepartmentBody,
    EmployeeBody,
    FloorBody,
    Kind,
    org_json,
)
from tidings.apps.desks.roles import may_manage, require_desk_admin, username_of
from tidings.apps.desks.routes import DESKS
from tidings.bus.base import DeskChangeEvent

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BODIES: dict[str, type[BuildingBody | FloorBody | DepartmentBody | EmployeeBody]] = {
    "buildings": BuildingBody, "floors": FloorBody, "departments": DepartmentBody,
    "employees": EmployeeBody}


def _row_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route's pattern admits digits only


def _handlers(kind: Kind) -> dict[str, Handler]:
    """The five handlers of one organisation table."""
    body_type = _BODIES[kind.table]

    async def list_(request: web.Request) -> web.Response:
        await authenticated(request)
        building = int_param(request, "building_id", low=1, high=2**31 - 1) \
            if kind is organisation.FLOORS else None
        async with request.app[DESKS].db.transaction(write=False) as tx:
            rows = await organisation.list_rows(tx, kind, building)
        return json_response({kind.table: [org_json(kind, r) for r in rows]})

    async def get(request: web.Request) -> web.Response:
        await authenticated(request)
        async with request.app[DESKS].db.transaction(write=False) as tx:
            row = await organisation.get_row(tx, kind, _row_id(request))
        return json_response(org_json(kind, row))

    async def create(request: web.Request) -> web.Response:
        app = request.app[DESKS]
        await require_desk_admin(request, app.settings)
        body = await read_json(request, body_type)
        async with app.db.transaction() as tx:
            new_id, changes = await organisation.create(tx, kind, body)
        return await _answer(request, kind, new_id, changes, 201)

    async def update(request: web.Request) -> web.Response:
        app = request.app[DESKS]
        await require_desk_admin(request, app.settings)
        body = await read_json(request, body_type)
        async with app.db.transaction() as tx:
            changes = await organisation.update(tx, kind, _row_id(request), body)
        return await _answer(request, kind, _row_id(request), changes, 200)

    async def delete(request: web.Request) -> web.Response:
        app = request.app[DESKS]
        await require_desk_admin(request, app.settings)
        async with app.db.transaction() as tx:
            changes = await organisation.delete(tx, kind, _row_id(request))
        await app.announce(changes)
        return json_response({"deleted": _row_id(request)})

    return {"list": list_, "get": get, "create": create, "update": update, "delete": delete}


async def _answer(request: web.Request, kind: Kind, row_id: int,
                  changes: list[DeskChangeEvent], status: int) -> web.Response:
    app = request.app[DESKS]
    await app.announce(changes)
    async with app.db.transaction(write=False) as tx:
        row = await organisation.get_row(tx, kind, row_id)
    return json_response(org_json(kind, row), status=status)


async def me(request: web.Request) -> web.Response:
    """``GET /api/v1/desks/me`` → ``{user_id, username, desk_admin}``."""
    identity = await authenticated(request)
    username = await username_of(request, identity)
    return json_response({"user_id": identity.user_id, "username": username,
                          "desk_admin": may_manage(request.app[DESKS].settings, username,
                                                   identity)})


def add_org_routes(app: web.Application) -> None:
    """Register ``/api/v1/org/*`` and ``/api/v1/desks/me`` on ``app``."""
    describe(app, ORG_ROUTES)
    router = app.router
    for kind in organisation.KINDS.values():
        handlers = _handlers(kind)
        many = f"/api/v1/org/{kind.table}"
        one = many + "/{id:[0-9]{1,9}}"
        router.add_get(many, handlers["list"])
        router.add_post(many, handlers["create"])
        router.add_get(one, handlers["get"])
        router.add_put(one, handlers["update"])
        router.add_delete(one, handlers["delete"])
    router.add_get("/api/v1/desks/me", me)
