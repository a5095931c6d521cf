"""Desk queries, written once over a :class:`Tx` (the booking rules are in bookings.py).

Every mutation runs in one transaction that first locks the workstation row
(``FOR UPDATE`` on PostgreSQL; SQLite's write transaction is already exclusive),
checks the rule, writes, logs to ``workstation_logs`` and returns the
:class:`Change` it made, which the caller announces after commit.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from tidings.apps.desks import organisation
from tidings.apps.desks.db import Row, Tx
from tidings.apps.desks.errors import DeskError
from tidings.apps.desks.models import WorkstationCreate
from tidings.bus.base import DeskChangeEvent as Change
from tidings.store.base import now_ms


def not_found(desk_id: int) -> DeskError:
    """The 404 of a missing workstation."""
    return DeskError(404, "WORKSTATION_NOT_FOUND", f"no workstation {desk_id}")


_SELECT = """
SELECT w.id, w.name, w.workstation_id, w.department_id, d.name AS department,
       d.color AS department_color, w.employee_id,
       e.name AS employee, w.x_position, w.y_position, w.width, w.height, w.status,
       w.equipment, w.notes, w.floor_id, w.floor_number, w.building, w.occupied_by,
       COALESCE((SELECT oe.name FROM employees oe WHERE oe.user_id = w.occupied_by
                 ORDER BY oe.id LIMIT 1), u.username) AS occupant_name,
       w.occupied_at, w.created_at, w.updated_at
FROM workstations w
LEFT JOIN departments d ON d.id = w.department_id
LEFT JOIN employees e ON e.id = w.employee_id
LEFT JOIN users u ON u.id = w.occupied_by"""

_LOCK = """SELECT id, status, floor_id, floor_number, building, department_id, occupied_by,
                  workstation_id FROM workstations WHERE id = $1"""

_LOG = """
INSERT INTO workstation_logs (workstation_id, user_id, action, detail, created_at)
VALUES ($1, $2, $3, $4, $5)"""


class WorkstationFilter(msgspec.Struct, frozen=True):
    """Conditions of a workstation list; ``None`` means "any"."""

    status: str | None = None
    floor_id: int | None = None
    department_id: int | None = None
    building: str | None = None
    search: str | None = None

    def where(self, first: int = 1) -> tuple[str, list[Any]]:
        """A ``WHERE`` clause (or ``""``) with placeholders from ``$first`` on."""
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("w.status", self.status), ("w.floor_id", self.floor_id),
                              ("w.department_id", self.department_id),
                              ("w.building", self.building)):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${first + len(args) - 1}")
        if self.search:
            escaped = self.search.lower().replace("\\", "\\\\").replace("%", "\\%")
            args.append("%" + escaped.replace("_", "\\_") + "%")
            clauses.append(f"lower(w.name) LIKE ${first + len(args) - 1} ESCAPE '\\'")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def list_workstations(tx: Tx, where: WorkstationFilter, limit: int,
                            offset: int) -> tuple[list[Row], int]:
    """One page of workstations in id order, and how many match in all."""
    clause, args = where.where()
    n = len(args)
    rows = await tx.fetch(f"{_SELECT}{clause} ORDER BY w.id LIMIT ${n + 1} OFFSET ${n + 2}",
                          *args, limit, offset)
    total = await tx.fetchval(f"SELECT count(*) AS n FROM workstations w{clause}", *args)  # noqa: S608
    return rows, int(total)


async def get_workstation(tx: Tx, desk_id: int) -> Row | None:
    """One workstation with its department and employee names."""
    return await tx.fetchrow(f"{_SELECT} WHERE w.id = $1", desk_id)


async def lock_desk(tx: Tx, desk_id: int) -> Row:
    """The workstation's row, locked for this transaction (404 if there is none)."""
    row = await tx.fetchrow(_LOCK + tx.lock_clause, desk_id)
    if row is None:
        raise not_found(desk_id)
    return row


async def _check_links(tx: Tx, department_id: int | None, employee_id: int | None) -> None:
    if department_id is not None and await tx.fetchrow(
            "SELECT id FROM departments WHERE id = $1", department_id) is None:
        raise DeskError(422, "INVALID_BODY", f"no department {department_id}")
    if employee_id is not None and await tx.fetchrow(
            "SELECT id FROM employees WHERE id = $1", employee_id) is None:
        raise DeskError(422, "INVALID_BODY", f"no employee {employee_id}")


async def log(tx: Tx, desk_id: int, user_id: int | None, action: str, detail: str = "") -> None:
    """Append one entry to ``workstation_logs``."""
    await tx.fetch(_LOG, desk_id, user_id, action, detail, now_ms())


async def _claim_id(tx: Tx, workstation_id: str, desk_id: int | None = None) -> None:
    """409 if another desk has this business id."""
    row = await tx.fetchrow("SELECT id FROM workstations WHERE workstation_id = $1",
                            workstation_id)
    if row is not None and row["id"] != desk_id:
        raise DeskError(409, "WORKSTATION_ID_TAKEN",
                        f"workstation_id {workstation_id!r} is desk {row['id']}'s: "
                        "send another workstation_id")


async def create_workstation(tx: Tx, body: WorkstationCreate,
                             user_id: int | None) -> list[Change]:
    """Insert a workstation (and the building/floor its seed columns name, if new);
    the desk's change comes first."""
    await _check_links(tx, body.department_id, body.employee_id)
    floor_id, number, building, made = await organisation.locate(
        tx, body.floor_id, body.floor_number, body.building)
    workstation_id = body.workstation_id or body.name
    await _claim_id(tx, workstation_id)
    now = now_ms()
    desk_id = await tx.fetchval(
        """INSERT INTO workstations (name, department_id, employee_id, x_position, y_position,
               width, height, status, equipment, notes, floor_id, floor_number, building,
               created_at, updated_at, workstation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)
           RETURNING id""",
        body.name, body.department_id, body.employee_id, body.x_position, body.y_position,
        body.width, body.height, body.status, json.dumps(body.equipment, ensure_ascii=False),
        body.notes, floor_id, number, building, now, workstation_id)
    await log(tx, desk_id, user_id, "create", body.name)
    return [Change("INSERT", desk_id, floor_id=floor_id, department_id=body.department_id,
                   workstation_id=workstation_id), *made]


_UPDATABLE = ("name", "workstation_id", "x_position", "y_position", "width", "height", "floor_id",
              "department_id", "employee_id", "status", "equipment", "notes")


async def update_workstation(tx: Tx, desk_id: int, changes: dict[str, Any],
                             user_id: int | None) -> list[Change]:
    """Apply ``changes`` (column → value). A desk with a live booking keeps its
    booking status: setting ``available`` by hand would orphan the booking."""
    before = await lock_desk(tx, desk_id)
    if "status" in changes and before["status"] in ("occupied", "reserved") \
            and changes["status"] != before["status"]:
        raise DeskError(409, "WORKSTATION_BOOKED",
                        f"workstation {desk_id} is {before['status']}: release it or cancel "
                        "its reservations first")
    await _check_links(tx, changes.get("department_id"), changes.get("employee_id"))
    if "workstation_id" in changes:
        await _claim_id(tx, changes["workstation_id"], desk_id)
    made: list[Change] = []
    if "floor_id" in changes or "floor_number" in changes or "building" in changes:
        if "floor_id" in changes:  # an explicit floor (or 0: none) wins
            where = (changes["floor_id"], changes.get("floor_number"), changes.get("building"))
        else:  # the seed's columns: what is not given stays as it was
            where = (None, changes.get("floor_number", before["floor_number"]),
                     changes.get("building", before["building"]))
        (changes["floor_id"], changes["floor_number"], changes["building"],
         made) = await organisation.locate(tx, *where)
    changes["updated_at"] = now_ms()
    # Column names come from the fixed tuple above, never from the request.
    names = [c for c in (*_UPDATABLE, "floor_number", "building", "updated_at") if c in changes]
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(names))
    await tx.fetch(f"UPDATE workstations SET {sets} WHERE id = $1", desk_id,  # noqa: S608
                   *(changes[c] for c in names))
    await log(tx, desk_id, user_id, "update",
              json.dumps({c: changes[c] for c in names if c != "updated_at"}, sort_keys=True))
    return [Change("UPDATE", desk_id, floor_id=changes.get("floor_id", before["floor_id"]),
                   department_id=changes.get("department_id", before["department_id"]),
                   old_floor_id=before["floor_id"], old_department_id=before["department_id"],
                   workstation_id=changes.get("workstation_id", before["workstation_id"])),
            *made]


async def delete_workstation(tx: Tx, desk_id: int, user_id: int | None) -> Change:
    """Delete a workstation (its bookings go with it; its log stays)."""
    before = await lock_desk(tx, desk_id)
    await tx.fetch("DELETE FROM workstations WHERE id = $1", desk_id)
    await log(tx, desk_id, user_id, "delete")
    return Change("DELETE", desk_id, old_floor_id=before["floor_id"],
                  old_department_id=before["department_id"],
                  workstation_id=before["workstation_id"])


def same_rooms(op: str, row: Row) -> Change:
    """A change that stays in the desk's floor and department rooms."""
    return Change(op, row["id"], floor_id=row["floor_id"], department_id=row["department_id"],
                  old_floor_id=row["floor_id"], old_department_id=row["department_id"])


async def sync(tx: Tx) -> list[Change]:
    """Close bookings that have ended and bring every desk's status in line with its
    bookings (``POST /api/database/sync``). Returns the desks whose status changed."""
    now = now_ms()
    await tx.fetch("""UPDATE workstation_occupancy SET status = 'completed', updated_at = $1
                      WHERE status = 'active' AND end_time IS NOT NULL AND end_time <= $1""", now)
    rows = await tx.fetch(
        """SELECT w.id, w.status, w.occupied_by, w.occupied_at, w.floor_id, w.department_id,
                  (SELECT o.user_id FROM workstation_occupancy o
                   WHERE o.workstation_id = w.id AND o.status = 'active'
                     AND o.reservation_type <> 'scheduled' AND o.start_time <= $1
                   ORDER BY o.start_time DESC LIMIT 1) AS occupant,
                  (SELECT count(*) FROM workstation_occupancy o
                   WHERE o.workstation_id = w.id AND o.status = 'active'
                     AND o.reservation_type = 'scheduled') AS reservations
           FROM workstations w WHERE w.status IN ('available', 'occupied', 'reserved')
           ORDER BY w.id""", now)
    changes: list[Change] = []
    for row in rows:
        if row["occupant"] is not None:
            status, occupant = "occupied", row["occupant"]
        else:
            status, occupant = ("reserved" if row["reservations"] else "available"), None
        if status == row["status"] and occupant == row["occupied_by"]:
            continue
        occupied_at = None if occupant is None else \
            (row["occupied_at"] if occupant == row["occupied_by"] else now)
        await tx.fetch("""UPDATE workstations SET status = $2, occupied_by = $3,
                          occupied_at = $4, updated_at = $5 WHERE id = $1""",
                       row["id"], status, occupant, occupied_at, now)
        await log(tx, row["id"], None, "sync", f"{row['status']} -> {status}")
        changes.append(same_rooms("UPDATE", row))
    return changes


async def logs(tx: Tx, desk_id: int, limit: int) -> list[Row]:
    """The newest ``limit`` log entries of a desk, newest first."""
    return await tx.fetch("""SELECT id, workstation_id, user_id, action, detail, created_at
                             FROM workstation_logs WHERE workstation_id = $1
                             ORDER BY id DESC LIMIT $2""", desk_id, limit)


# "{where}" takes WorkstationFilter.where(): fixed fragments, values bound as parameters.
_STATS_BY_STATUS = "SELECT w.status, count(*) AS n FROM workstations w{where} GROUP BY w.status"
_STATS_BY_DEPARTMENT = """
SELECT w.department_id AS id, d.name, count(*) AS total,
       sum(CASE WHEN w.status = 'occupied' THEN 1 ELSE 0 END) AS occupied
FROM workstations w LEFT JOIN departments d ON d.id = w.department_id{where}
GROUP BY w.department_id, d.name ORDER BY w.department_id"""
_STATS_BY_FLOOR = """
SELECT w.floor_id AS id, w.building, w.floor_number AS number, count(*) AS total,
       sum(CASE WHEN w.status = 'occupied' THEN 1 ELSE 0 END) AS occupied
FROM workstations w{where}
GROUP BY w.floor_id, w.building, w.floor_number ORDER BY w.floor_id"""


async def stats(tx: Tx, where: WorkstationFilter) -> dict[str, Any]:
    """Counts by status, by department and by floor, and the occupancy rate."""
    clause, args = where.where()
    by_status = {s: 0 for s in ("available", "occupied", "reserved", "maintenance", "disabled")}
    for row in await tx.fetch(_STATS_BY_STATUS.replace("{where}", clause), *args):
        by_status[row["status"]] = int(row["n"])
    total = sum(by_status.values())
    in_service = total - by_status["maintenance"] - by_status["disabled"]
    departments = await tx.fetch(_STATS_BY_DEPARTMENT.replace("{where}", clause), *args)
    floors = await tx.fetch(_STATS_BY_FLOOR.replace("{where}", clause), *args)
    return {
        "total": total, "by_status": by_status,
        "occupancy_rate": round(by_status["occupied"] / in_service, 4) if in_service else 0.0,
        "by_department": [{k: (int(v) if k in ("total", "occupied") else v)
                           for k, v in r.items()} for r in departments],
        "by_floor": [{k: (int(v) if k in ("total", "occupied") else v)
                      for k, v in r.items()} for r in floors],
    }


async def find_department(tx: Tx, ref: str) -> int | None:
    """A department's id from its name or its id (``?dept=Engineering`` or ``?dept=3``)."""
    row = await tx.fetchrow("SELECT id FROM departments WHERE name = $1", ref)
    if row is None and ref.isascii() and ref.isdigit() and len(ref) < 10:
        row = await tx.fetchrow("SELECT id FROM departments WHERE id = $1", int(ref))
    return None if row is None else int(row["id"])


async def layout(tx: Tx) -> dict[str, list[Row]]:
    """Buildings, floors and departments: the frame of the map."""
    return {
        "buildings": await tx.fetch("SELECT id, name FROM buildings ORDER BY id"),
        "floors": await tx.fetch("SELECT id, building_id, number, number AS floor_number, "
                                 "name, width, height "
                                 "FROM floors ORDER BY building_id, number"),
        "departments": await tx.fetch("SELECT id, name, color FROM departments ORDER BY id"),
    }


async def row_of(tx: Tx, table: str, row_id: int) -> Row | None:
    """An organisation row for a change event (``None`` once deleted)."""
    kind = organisation.KINDS.get(table)
    if kind is None:
        return None
    try:
        return organisation.org_json(kind, await organisation.get_row(tx, kind, row_id))
    except DeskError:
        return None
