"""``tidings desks demo``: a building whose floors look like an office, so the map has
something to show: meeting rooms and a kitchen behind a wall along the top, then one
zone per department (three across, two deep) of desks in back-to-back pairs of rows,
with aisles between the zones. The walls, rooms and aisles are the floor's layout
(:mod:`tidings.apps.desks.layouts`)."""

from __future__ import annotations

import json
from typing import Any

from tidings.apps.desks.db import DeskDb, Tx
from tidings.apps.desks.layouts import save_layout
from tidings.store.base import now_ms

DEPARTMENTS = (("Engineering", "#3b82f6"), ("Design", "#a855f7"), ("Marketing", "#f97316"),
               ("Sales", "#22c55e"), ("Finance", "#eab308"), ("HR", "#ef4444"))
_EQUIPMENT: tuple[list[str], ...] = (["monitor", "dock"], ["monitor", "monitor", "dock"],
                                     ["monitor"], [])
# Plan geometry, in the floor's units.
DESK_W, DESK_H, GAP = 100.0, 64.0, 4.0  # a desk, and the gap beside it in a row
ACROSS = 4  # desks in a row of a zone
MARGIN, AISLE, PAIR_AISLE, LABEL = 80.0, 100.0, 50.0, 32.0
ROOMS_DEPTH = 190.0  # the band of rooms along the top wall
ZONES_ACROSS = 3
_ROOMS = (("Meeting room Atlas", 0.18), ("Meeting room Borneo", 0.18), ("Kitchen", 0.24),
          ("Boardroom", 0.22), ("Phone booths", 0.18))


class DemoExists(Exception):
    """The building is there already; loading twice would duplicate desks."""


def _desk_spot(slot: int) -> tuple[float, float]:
    """A desk's offset in its zone: rows of ACROSS, rows back to back in pairs."""
    row, col = divmod(slot, ACROSS)
    pair, side = divmod(row, 2)
    return col * (DESK_W + GAP), LABEL + pair * (2 * DESK_H + PAIR_AISLE) + side * DESK_H


def _zone_size(desks: int) -> tuple[float, float]:
    rows = max(1, -(-desks // ACROSS))
    return ACROSS * (DESK_W + GAP) - GAP, _desk_spot((rows - 1) * ACROSS)[1] + DESK_H


def plan_floor(per_zone: list[int]) -> tuple[float, float, list[tuple[float, float]],
                                             list[dict[str, Any]]]:
    """The floor's size, each zone's top-left corner and the layout's shapes, for zones
    holding ``per_zone`` desks each."""
    zone_w, zone_h = _zone_size(max(per_zone, default=1))
    zone_rows = -(-max(1, len(per_zone)) // ZONES_ACROSS)
    width = 2 * MARGIN + ZONES_ACROSS * zone_w + (ZONES_ACROSS - 1) * AISLE
    top = MARGIN / 2 + ROOMS_DEPTH + AISLE / 2
    height = top + zone_rows * zone_h + (zone_rows - 1) * AISLE + MARGIN
    corners = [(MARGIN + (k % ZONES_ACROSS) * (zone_w + AISLE),
                top + (k // ZONES_ACROSS) * (zone_h + AISLE)) for k in range(len(per_zone))]
    shapes: list[dict[str, Any]] = []
    x, inner = MARGIN / 2, width - MARGIN
    for name, share in _ROOMS:
        w = inner * share
        shapes.append({"kind": "room", "x": x, "y": MARGIN / 2, "width": w - 8,
                       "height": ROOMS_DEPTH, "label": name})
        x += w
    # The wall in front of the rooms, with a door gap in front of each.
    wall_y = MARGIN / 2 + ROOMS_DEPTH
    x = MARGIN / 2
    for _, share in _ROOMS:
        w = inner * share
        shapes.append({"kind": "wall", "x": x, "y": wall_y, "width": w * 0.6, "height": 8})
        shapes.append({"kind": "wall", "x": x + w * 0.6 + 70, "y": wall_y,
                       "width": max(1.0, w * 0.4 - 78), "height": 8})
        x += w
    # The aisles: between the zone rows and between the zone columns.
    for r in range(1, zone_rows):
        shapes.append({"kind": "aisle", "x": MARGIN / 2, "width": inner, "height": AISLE - 30,
                       "y": top + r * zone_h + (r - 1) * AISLE + 15})
    for c in range(1, ZONES_ACROSS):
        shapes.append({"kind": "aisle", "y": top - 20, "width": AISLE - 40,
                       "height": height - top - MARGIN / 2 + 20,
                       "x": MARGIN + c * zone_w + (c - 1) * AISLE + 20})
    return width, height, corners, shapes


async def _departments(tx: Tx, now: int) -> list[tuple[int, str]]:
    found = []
    for name, color in DEPARTMENTS:
        await tx.fetch("INSERT INTO departments (name, color, created_at, updated_at) "
                       "VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING", name, color, now)
        found.append((int(await tx.fetchval("SELECT id FROM departments WHERE name = $1", name)),
                      name))
    return found


async def load_demo(db: DeskDb, *, building: str = "HQ", floors: int = 3,
                    desks_per_floor: int = 100, employees_per_department: int = 5
                    ) -> dict[str, Any]:
    """Create the demo data in one transaction; return what was created."""
    now = now_ms()
    async with db.transaction() as tx:
        if await tx.fetchrow("SELECT id FROM buildings WHERE name = $1", building) is not None:
            raise DemoExists(f"building {building!r} exists already")
        building_id = await tx.fetchval(
            "INSERT INTO buildings (name, created_at) VALUES ($1, $2) RETURNING id", building, now)
        departments = await _departments(tx, now)
        employees: dict[int, list[int]] = {}
        for dept_id, dept_name in departments:
            employees[dept_id] = [int(await tx.fetchval(
                "INSERT INTO employees (name, email, department_id, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $4) RETURNING id",
                f"{dept_name} Person {i + 1}", f"{dept_name.lower()}{i + 1}@example.com",
                dept_id, now)) for i in range(employees_per_department)]
        counters = {dept_id: 0 for dept_id, _ in departments}
        # Desks of a floor split evenly between the departments, the first ones one more.
        share, extra = divmod(desks_per_floor, len(departments))
        per_zone = [share + (1 if k < extra else 0) for k in range(len(departments))]
        width, height, corners, shapes = plan_floor(per_zone)
        desks = 0
        for number in range(1, floors + 1):
            floor_id = int(await tx.fetchval(
                "INSERT INTO floors (building_id, number, name, width, height) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id", building_id, number,
                f"{building} {number}F", width, height))
            await save_layout(tx, floor_id, shapes)
            for k, (dept_id, dept_name) in enumerate(departments):
                for slot in range(per_zone[k]):
                    counters[dept_id] += 1
                    staff = employees[dept_id]
                    owner = staff[counters[dept_id] - 1] if counters[dept_id] <= len(staff) \
                        else None
                    dx, dy = _desk_spot(slot)
                    await tx.fetch(
                        """INSERT INTO workstations (name, department_id, employee_id,
                               x_position, y_position, width, height, status, equipment, notes,
                               floor_id, floor_number, building, created_at, updated_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $11, $12, $13,
                                   $13)""",
                        f"{dept_name}-{counters[dept_id]:03d}", dept_id, owner,
                        corners[k][0] + dx, corners[k][1] + dy, DESK_W, DESK_H,
                        "maintenance" if desks % 37 == 36 else "available",
                        json.dumps(_EQUIPMENT[desks % len(_EQUIPMENT)]), floor_id, number,
                        building, now)
                    desks += 1
    return {"building_id": building_id, "floors": floors, "departments": len(departments),
            "employees": sum(len(v) for v in employees.values()), "workstations": desks}
