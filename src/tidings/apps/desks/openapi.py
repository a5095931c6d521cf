"""The desk map's routes as the OpenAPI document shows them: the JSON shapes its
handlers answer (``models.workstation_json`` and friends; ``tests/api`` checks real
answers against these) and one :class:`Operation` per route of routes.py and org.py.

The seed's paths (``/api/workstations``, ``/api/desks``, ``/api/map``,
``/api/database/sync``, ``/api/metrics``) stay unversioned, as seed 000 names them;
what Tidings adds is under ``/api/v1``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tidings.api.openapi import Operation, Param
from tidings.apps.desks.models import (
    OccupyRequest,
    ReserveRequest,
    Status,
    WorkstationCreate,
    WorkstationUpdate,
)
from tidings.apps.desks.organisation import (
    KINDS,
    BuildingBody,
    DepartmentBody,
    EmployeeBody,
    FloorBody,
)


class Workstation(msgspec.Struct):
    """A desk (seed 000 §7.2.1 columns plus joined names); times ISO 8601 UTC."""

    id: int
    name: str
    workstation_id: str | None
    department_id: int | None
    department: str | None
    department_color: str | None
    employee_id: int | None
    employee: str | None
    x_position: float
    y_position: float
    width: float
    height: float
    status: Status
    equipment: list[str]
    notes: str
    floor_id: int | None
    floor_number: int | None
    building: str | None
    occupied_by: int | None
    occupant_name: str | None
    occupied_at: str | None
    created_at: str | None
    updated_at: str | None


class Booking(msgspec.Struct):
    """An occupation or a reservation of a desk."""

    id: int
    workstation_id: int | None
    user_id: int
    start_time: str | None
    end_time: str | None
    reservation_type: str
    status: str


class WorkstationDetail(Workstation):
    """A desk with its active bookings."""

    bookings: list[Booking]


class Reserved(Workstation):
    """The desk after a reservation, and the reservation."""

    booking: Booking


class LogEntry(msgspec.Struct):
    """One line of a desk's history."""

    id: int
    workstation_id: int | None
    user_id: int | None
    action: str
    detail: Any
    created_at: str | None


class WorkstationPage(msgspec.Struct):
    """A page of desks."""

    workstations: list[Workstation]
    total: int
    page: int
    limit: int


class DeskStats(msgspec.Struct):
    """Counts by status, department and floor; occupancy of desks in service."""

    total: int
    by_status: dict[str, int]
    occupancy_rate: float
    by_department: list[dict[str, Any]]
    by_floor: list[dict[str, Any]]


class DepartmentDesks(msgspec.Struct):
    """Every desk of a department (all without ``dept``)."""

    department_id: int | None
    workstations: list[Workstation]
    total: int
    truncated: bool


class FloorMap(DepartmentDesks):
    """The frame of the map (buildings, floors, departments) and its desks."""

    buildings: list[dict[str, Any]]
    floors: list[dict[str, Any]]
    departments: list[dict[str, Any]]
    floor_id: int | None


class Deleted(msgspec.Struct):
    """The id of the row deleted."""

    deleted: int


class Synced(msgspec.Struct):
    """What ``POST /api/database/sync`` changed."""

    synced: bool
    changed: list[int]
    by_user: int
    duration_ms: float


class Logs(msgspec.Struct):
    """Newest first."""

    logs: list[LogEntry]


class DeskUser(msgspec.Struct):
    """The caller, and whether they may manage the desk map."""

    user_id: int
    username: str | None
    desk_admin: bool


class Building(msgspec.Struct):
    """A building."""

    id: int
    name: str


class Floor(msgspec.Struct):
    """A floor of a building; ``width``/``height`` of its plan."""

    id: int
    building_id: int
    building: str
    floor_number: int
    name: str | None
    width: float
    height: float


class Department(msgspec.Struct):
    """A department and its colour on the map."""

    id: int
    name: str
    color: str


class Employee(msgspec.Struct):
    """An employee, optionally a Tidings user."""

    id: int
    name: str
    email: str | None
    department_id: int | None
    user_id: int | None


_ROWS = {"buildings": (Building, BuildingBody), "floors": (Floor, FloorBody),
         "departments": (Department, DepartmentBody), "employees": (Employee, EmployeeBody)}

_TAG, _ORG = "desks", "desk organisation"
_SEED = {"x-tidings-path": "unversioned: seed 000 names this path"}
_DESK = r"/api/workstations/{id:[0-9]{1,9}}"
_FILTERS = (
    Param("status", Status, "only desks with this status"),
    Param("floor_id", int, "only this floor"),
    Param("dept", str, "a department's name or id (also `department_id`)"),
    Param("department_id", str, "the same as `dept`"),
    Param("building", str, "a building's name"),
    Param("q", str, "search names, ids and notes (up to 100 characters)"),
)
_DEPT = {404: ("DEPARTMENT_NOT_FOUND",)}
_NOT_FOUND = {404: ("WORKSTATION_NOT_FOUND",)}
_ADMIN = {403: ("DESK_ADMIN_REQUIRED",)}


def _desk(method: str, path: str, op_id: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, op_id, summary, _TAG, extensions=_SEED, **kw)


DESK_ROUTES = (
    _desk("GET", "/api/workstations", "listWorkstations", "List desks", answer=WorkstationPage,
          params=(*_FILTERS, Param("page", int, "from 1"), Param("limit", int, "1-500")),
          errors=_DEPT),
    _desk("POST", "/api/workstations", "createWorkstation", "Create a desk",
          auth="desk-admin", body=WorkstationCreate, answer=Workstation, status=201,
          errors={**_ADMIN, 409: ("WORKSTATION_ID_TAKEN",)}),
    _desk("GET", "/api/workstations/stats", "getWorkstationStats", "Desk statistics",
          answer=DeskStats, params=_FILTERS, errors=_DEPT),
    _desk("GET", _DESK, "getWorkstation", "A desk and its bookings", answer=WorkstationDetail,
          errors=_NOT_FOUND),
    _desk("PUT", _DESK, "updateWorkstation", "Change a desk", auth="desk-admin",
          body=WorkstationUpdate, answer=Workstation,
          errors={**_ADMIN, **_NOT_FOUND, 409: ("WORKSTATION_ID_TAKEN", "WORKSTATION_BOOKED")}),
    _desk("DELETE", _DESK, "deleteWorkstation", "Delete a desk", auth="desk-admin",
          answer=Deleted, errors={**_ADMIN, **_NOT_FOUND}),
    _desk("POST", _DESK + "/occupy", "occupyWorkstation", "Occupy a desk",
          body=OccupyRequest, body_required=False, answer=Workstation,
          errors={**_NOT_FOUND, 409: ("WORKSTATION_OCCUPIED", "WORKSTATION_UNAVAILABLE",
                                      "BOOKING_CONFLICT")}),
    _desk("POST", _DESK + "/release", "releaseWorkstation", "Release a desk you occupy",
          answer=Workstation, errors={**_NOT_FOUND, 403: ("NOT_OCCUPANT",),
                                      409: ("WORKSTATION_NOT_OCCUPIED",)}),
    _desk("POST", _DESK + "/reserve", "reserveWorkstation", "Reserve a desk",
          body=ReserveRequest, answer=Reserved, status=201,
          errors={**_NOT_FOUND, 409: ("BOOKING_CONFLICT", "WORKSTATION_UNAVAILABLE")}),
    _desk("DELETE", _DESK + "/reservations/{booking:[0-9]{1,18}}", "cancelReservation",
          "Cancel your reservation", answer=Workstation,
          errors={403: ("NOT_BOOKER",), 404: ("WORKSTATION_NOT_FOUND", "BOOKING_NOT_FOUND")}),
    _desk("GET", _DESK + "/logs", "getWorkstationLogs", "A desk's history", answer=Logs,
          params=(Param("limit", int, "1-500, default 50"),)),
    _desk("GET", "/api/desks", "getDepartmentDesks", "Every desk of a department",
          answer=DepartmentDesks, params=(Param("dept", str, "a department's name or id"),),
          errors=_DEPT),
    _desk("GET", "/api/map", "getFloorMap", "The map: buildings, floors, departments, desks",
          answer=FloorMap, params=(Param("dept", str, "a department's name or id"),
                                   Param("floor_id", int, "one floor")), errors=_DEPT),
    _desk("POST", "/api/database/sync", "syncDatabase",
          "End finished bookings and realign desk statuses", answer=Synced),
    _desk("GET", "/api/metrics", "getDeskMetrics", "The desk map's monitoring panel (JSON)",
          auth="none", answer=dict[str, Any]),
)


def _org(table: str) -> tuple[Operation, ...]:
    row, body = _ROWS[table]
    noun = KINDS[table].noun
    name = noun.capitalize()
    many, one = f"/api/v1/org/{table}", f"/api/v1/org/{table}/{{id:[0-9]{{1,9}}}}"
    missing = {404: (noun.upper() + "_NOT_FOUND",)}
    exists = {409: (noun.upper() + "_EXISTS",)}
    listing = msgspec.defstruct(f"{name}List", [(table, list[row])],  # type: ignore[valid-type]
                                module=__name__)
    params = (Param("building_id", int, "only this building's floors"),) \
        if table == "floors" else ()
    return (
        Operation("GET", many, f"list{name}s", f"List {table}", _ORG, answer=listing,
                  params=params),
        Operation("POST", many, f"create{name}", f"Create a {noun}", _ORG, auth="desk-admin",
                  body=body, answer=row, status=201, errors={**_ADMIN, **exists}),
        Operation("GET", one, f"get{name}", f"One {noun}", _ORG, answer=row, errors=missing),
        Operation("PUT", one, f"update{name}", f"Change a {noun}", _ORG, auth="desk-admin",
                  body=body, answer=row, errors={**_ADMIN, **missing, **exists}),
        Operation("DELETE", one, f"delete{name}", f"Delete a {noun}", _ORG, auth="desk-admin",
                  answer=Deleted, errors={**_ADMIN, **missing, 409: (noun.upper() + "_IN_USE",)}),
    )


ORG_ROUTES = (
    *(op for table in _ROWS for op in _org(table)),
    Operation("GET", "/api/v1/desks/me", "getDeskUser", "Who you are on the desk map", _ORG,
              answer=DeskUser),
)
