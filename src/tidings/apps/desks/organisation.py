"""The desk map's organisation — buildings, floors, departments, employees — read and
written over a :class:`Tx`, and where a desk's seed columns (``floor_number`` +
``building``) put it. Each write returns the :class:`Change` list the caller
announces after commit, exactly as the desk writes in repository.py do.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tidings.apps.desks.db import DeskDbError, Row, Tx
from tidings.apps.desks.errors import DeskError
from tidings.apps.desks.models import BuildingName, FloorNumber, Name
from tidings.bus.base import DeskChangeEvent as Change
from tidings.store.base import now_ms

Color = Annotated[str, msgspec.Meta(pattern=r"\A#[0-9a-fA-F]{6}\Z")]
Email = Annotated[str, msgspec.Meta(max_length=200, pattern=r"\A[^\x00\s]+@[^\x00\s]+\Z")]
Plan = Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
Ref = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
BigRef = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
FloorName = Annotated[str, msgspec.Meta(max_length=100, pattern=r"\A[^\x00]*\Z")]


class BuildingBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST``/``PUT /api/v1/org/buildings``."""

    name: BuildingName | msgspec.UnsetType = msgspec.UNSET


class FloorBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST``/``PUT /api/v1/org/floors`` (``building`` is the read-only name)."""

    building_id: Ref | msgspec.UnsetType = msgspec.UNSET
    floor_number: FloorNumber | msgspec.UnsetType = msgspec.UNSET
    name: FloorName | msgspec.UnsetType = msgspec.UNSET
    width: Plan | msgspec.UnsetType = msgspec.UNSET
    height: Plan | msgspec.UnsetType = msgspec.UNSET


class DepartmentBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST``/``PUT /api/v1/org/departments``."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    color: Color | msgspec.UnsetType = msgspec.UNSET


class EmployeeBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST``/``PUT /api/v1/org/employees`` (``null`` clears a link or the email)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    department_id: Ref | msgspec.UnsetType | None = msgspec.UNSET
    user_id: BigRef | msgspec.UnsetType | None = msgspec.UNSET


Body = BuildingBody | FloorBody | DepartmentBody | EmployeeBody


class Kind(msgspec.Struct, frozen=True):
    """One organisation table: how its rows read, which columns a body writes, which
    are required on create, and what a new row gets by default."""

    table: str
    noun: str
    select: str
    columns: tuple[tuple[str, str], ...]  # (body field, column)
    required: tuple[str, ...]
    defaults: tuple[tuple[str, Any], ...] = ()
    timestamps: bool = False


BUILDINGS = Kind("buildings", "building", "SELECT b.id, b.name FROM buildings b",
                 (("name", "name"),), ("name",))
FLOORS = Kind("floors", "floor",
              "SELECT f.id, f.building_id, b.name AS building, f.number AS floor_number, "
              "f.name, f.width, f.height FROM floors f JOIN buildings b ON b.id = f.building_id",
              (("building_id", "building_id"), ("floor_number", "number"), ("name", "name"),
               ("width", "width"), ("height", "height")), ("building_id", "floor_number"))
DEPARTMENTS = Kind("departments", "department",
                   "SELECT d.id, d.name, d.color FROM departments d",
                   (("name", "name"), ("color", "color")), ("name",),
                   (("color", "#94a3b8"),), timestamps=True)
EMPLOYEES = Kind("employees", "employee",
                 "SELECT e.id, e.name, e.email, e.department_id, e.user_id FROM employees e",
                 (("name", "name"), ("email", "email"), ("department_id", "department_id"),
                  ("user_id", "user_id")), ("name",), timestamps=True)
KINDS = {k.table: k for k in (BUILDINGS, FLOORS, DEPARTMENTS, EMPLOYEES)}
_ALIAS = {"buildings": "b", "floors": "f", "departments": "d", "employees": "e"}


def org_json(kind: Kind, row: Row) -> dict[str, Any]:
    """The API shape of an organisation row."""
    if kind is FLOORS:
        return {**row, "width": float(row["width"]), "height": float(row["height"])}
    return dict(row)


async def list_rows(tx: Tx, kind: Kind, building_id: int | None = None) -> list[Row]:
    """Every row of ``kind`` in id order (floors: of one building if given)."""
    alias = _ALIAS[kind.table]
    if kind is FLOORS and building_id is not None:
        return await tx.fetch(f"{kind.select} WHERE f.building_id = $1 ORDER BY f.id",
                              building_id)
    return await tx.fetch(f"{kind.select} ORDER BY {alias}.id")


async def get_row(tx: Tx, kind: Kind, row_id: int) -> Row:
    """One row, or 404."""
    row = await tx.fetchrow(f"{kind.select} WHERE {_ALIAS[kind.table]}.id = $1", row_id)
    if row is None:
        raise DeskError(404, kind.noun.upper() + "_NOT_FOUND", f"no {kind.noun} {row_id}")
    return row


async def _check_refs(tx: Tx, values: dict[str, Any]) -> None:
    for column, table, noun in (("building_id", "buildings", "building"),
                                ("department_id", "departments", "department"),
                                ("user_id", "users", "user")):
        ref = values.get(column)
        if ref is not None and await tx.fetchrow(
                f"SELECT id FROM {table} WHERE id = $1", ref) is None:  # noqa: S608
            raise DeskError(422, "INVALID_BODY", f"no {noun} {ref}")


async def _write(tx: Tx, kind: Kind, sql: str, *args: Any) -> Row | None:
    try:
        return await tx.fetchrow(sql, *args)
    except DeskDbError as exc:  # a unique name or (building, number) taken
        raise DeskError(409, kind.noun.upper() + "_EXISTS",
                        f"that {kind.noun} exists already ({exc})") from None


async def create(tx: Tx, kind: Kind, body: Body) -> tuple[int, list[Change]]:
    """Insert a row; 422 if a required field is missing or a reference is unknown."""
    given = msgspec.structs.asdict(body)
    missing = [f for f in kind.required if given.get(f, msgspec.UNSET) is msgspec.UNSET]
    if missing:
        raise DeskError(422, "INVALID_BODY", f"missing required field {missing[0]!r}")
    values = dict(kind.defaults)
    values.update({col: given[field] for field, col in kind.columns
                   if given.get(field, msgspec.UNSET) is not msgspec.UNSET})
    await _check_refs(tx, values)
    now = now_ms()
    if kind.timestamps:
        values.update(created_at=now, updated_at=now)
    elif kind is BUILDINGS:
        values["created_at"] = now
    names = list(values)  # fixed column names from Kind, never from the request
    marks = ", ".join(f"${i + 1}" for i in range(len(names)))
    row = await _write(tx, kind, f"INSERT INTO {kind.table} ({', '.join(names)}) "  # noqa: S608
                       f"VALUES ({marks}) RETURNING id", *values.values())
    assert row is not None
    new_id = int(row["id"])
    return new_id, [change_of(kind, "INSERT", new_id, values)]


async def update(tx: Tx, kind: Kind, row_id: int, body: Body) -> list[Change]:
    """Change the fields given; desks showing a renamed building or renumbered floor
    follow (their seed columns ``floor_number``/``building`` are kept in step)."""
    given = msgspec.structs.asdict(body)
    values = {col: given[field] for field, col in kind.columns
              if given.get(field, msgspec.UNSET) is not msgspec.UNSET}
    if not values:
        raise DeskError(422, "INVALID_BODY", "nothing to change")
    before = await get_row(tx, kind, row_id)
    await _check_refs(tx, values)
    if kind.timestamps:
        values["updated_at"] = now_ms()
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(values))
    await _write(tx, kind, f"UPDATE {kind.table} SET {sets} WHERE id = $1",  # noqa: S608
                 row_id, *values.values())
    changes = [change_of(kind, "UPDATE", row_id, {**before, **values})]
    if kind in (BUILDINGS, FLOORS):
        changes += await _restamp_desks(tx, kind, row_id)
    return changes


async def delete(tx: Tx, kind: Kind, row_id: int) -> list[Change]:
    """Delete a row. A building with floors and a floor with desks are refused (409);
    a department's or employee's desks and employees just lose the link."""
    before = await get_row(tx, kind, row_id)
    blocked = {"buildings": ("SELECT count(*) FROM floors WHERE building_id = $1", "floors"),
               "floors": ("SELECT count(*) FROM workstations WHERE floor_id = $1", "desks")}
    if kind.table in blocked:
        sql, what = blocked[kind.table]
        count = int(await tx.fetchval(sql, row_id))
        if count:
            raise DeskError(409, kind.noun.upper() + "_IN_USE",
                            f"{kind.noun} {row_id} still has {count} {what}: move or "
                            "delete them first")
    linked: list[Row] = []
    if kind in (DEPARTMENTS, EMPLOYEES):
        column = "department_id" if kind is DEPARTMENTS else "employee_id"
        linked = await tx.fetch("SELECT id, floor_id, department_id FROM workstations "  # noqa: S608
                                f"WHERE {column} = $1", row_id)
    await tx.fetch(f"DELETE FROM {kind.table} WHERE id = $1", row_id)  # noqa: S608
    changes = [change_of(kind, "DELETE", row_id, before, old=True)]
    return changes + [Change("UPDATE", r["id"], floor_id=r["floor_id"],
                             department_id=None if kind is DEPARTMENTS else r["department_id"],
                             old_floor_id=r["floor_id"], old_department_id=r["department_id"])
                      for r in linked]


def change_of(kind: Kind, op: str, row_id: int, values: dict[str, Any],
              old: bool = False) -> Change:
    """The change event of an organisation row (rooms: see events.rooms_of)."""
    if kind is FLOORS:
        return Change(op, row_id, table=kind.table, floor_id=None if old else row_id,
                      old_floor_id=row_id if old or op == "UPDATE" else None)
    if kind is DEPARTMENTS:
        return Change(op, row_id, table=kind.table, department_id=row_id)
    if kind is EMPLOYEES:
        dept = values.get("department_id")
        return Change(op, row_id, table=kind.table, department_id=None if old else dept,
                      old_department_id=dept if old else None)
    return Change(op, row_id, table=kind.table)


async def _restamp_desks(tx: Tx, kind: Kind, row_id: int) -> list[Change]:
    where = "f.id = $1" if kind is FLOORS else "f.building_id = $1"
    floors = await tx.fetch(f"SELECT f.id, f.number, b.name FROM floors f "  # noqa: S608
                            f"JOIN buildings b ON b.id = f.building_id WHERE {where}", row_id)
    changes: list[Change] = []
    for floor in floors:
        desks = await tx.fetch("SELECT id, floor_id, department_id FROM workstations "
                               "WHERE floor_id = $1 AND (floor_number IS DISTINCT FROM $2 "
                               "OR building IS DISTINCT FROM $3)",
                               floor["id"], floor["number"], floor["name"])
        if desks:
            await tx.fetch("UPDATE workstations SET floor_number = $2, building = $3, "
                           "updated_at = $4 WHERE floor_id = $1",
                           floor["id"], floor["number"], floor["name"], now_ms())
        changes += [Change("UPDATE", d["id"], floor_id=d["floor_id"],
                           department_id=d["department_id"], old_floor_id=d["floor_id"],
                           old_department_id=d["department_id"]) for d in desks]
    return changes


async def all_floors(tx: Tx) -> list[int]:
    """Every floor (the rooms a building's, floor's or department's change goes to)."""
    return [int(r["id"]) for r in await tx.fetch("SELECT id FROM floors ORDER BY id")]


async def floors_showing(tx: Tx, table: str, row_id: int) -> list[int]:
    """Floors whose map shows a department's or employee's desks."""
    column = {"departments": "department_id", "employees": "employee_id"}.get(table)
    if column is None:
        return []
    return [int(r["floor_id"]) for r in await tx.fetch(
        f"SELECT DISTINCT floor_id FROM workstations WHERE {column} = $1 "  # noqa: S608
        "AND floor_id IS NOT NULL ORDER BY floor_id", row_id)]


async def locate(tx: Tx, floor_id: int | None, floor_number: int | None,
                 building: str | None) -> tuple[int | None, int | None, str | None,
                                                list[Change]]:
    """Where a desk goes: ``(floor_id, floor_number, building)`` and the changes of
    any building or floor created for it.

    ``floor_id`` wins (``floor_number``/``building`` given with it must agree);
    otherwise ``building`` + ``floor_number`` find or create the building and its
    floor (the building may be left out when there is exactly one); ``building``
    alone records the building (created if new) with no floor.
    """
    if floor_id is not None:
        row = await tx.fetchrow("SELECT f.number, b.name FROM floors f JOIN buildings b "
                                "ON b.id = f.building_id WHERE f.id = $1", floor_id)
        if row is None:
            raise DeskError(422, "INVALID_BODY", f"no floor {floor_id}")
        if (floor_number is not None and floor_number != row["number"]) or \
                (building is not None and building != row["name"]):
            raise DeskError(422, "INVALID_BODY", f"floor {floor_id} is floor {row['number']} "
                            f"of {row['name']!r}: floor_number/building disagree")
        return floor_id, row["number"], row["name"], []
    if floor_number is None and building is None:
        return None, None, None, []
    changes: list[Change] = []
    if building is None:
        only = await tx.fetch("SELECT id, name FROM buildings ORDER BY id LIMIT 2")
        if len(only) != 1:
            raise DeskError(422, "INVALID_BODY", "building is required with floor_number "
                            "(there is not exactly one building)")
        building_id, building = int(only[0]["id"]), str(only[0]["name"])
    else:
        found = await tx.fetchrow("SELECT id FROM buildings WHERE name = $1", building)
        if found is None:
            building_id, made = await create(tx, BUILDINGS, BuildingBody(name=building))
            changes += made
        else:
            building_id = int(found["id"])
    if floor_number is None:
        return None, None, building, changes
    floor = await tx.fetchrow("SELECT id FROM floors WHERE building_id = $1 AND number = $2",
                              building_id, floor_number)
    if floor is None:
        new_floor, made = await create(tx, FLOORS, FloorBody(
            building_id=building_id, floor_number=floor_number,
            name=f"{building} {floor_number}F"))
        return new_floor, floor_number, building, changes + made
    return int(floor["id"]), floor_number, building, changes
