"""``tidings desks demo``: a building with floors, departments, employees and a few
hundred desks, laid out on a grid, so the map has something to show."""

from __future__ import annotations

import json
from typing import Any

from tidings.apps.desks.db import DeskDb
from tidings.store.base import now_ms

DEPARTMENTS = (("Engineering", "#3b82f6"), ("Design", "#a855f7"), ("Marketing", "#f97316"),
               ("Sales", "#22c55e"), ("Finance", "#eab308"), ("HR", "#ef4444"))
_COLUMNS = 10
_EQUIPMENT: tuple[list[str], ...] = (["monitor", "dock"], ["monitor", "monitor", "dock"],
                                     ["monitor"], [])


class DemoExists(Exception):
    """The building is there already; loading twice would duplicate desks."""


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
        departments: list[tuple[int, str]] = []
        for name, color in DEPARTMENTS:
            await tx.fetch("INSERT INTO departments (name, color, created_at, updated_at) "
                           "VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING",
                           name, color, now)
            departments.append((int(await tx.fetchval(
                "SELECT id FROM departments WHERE name = $1", name)), name))
        employees: dict[int, list[int]] = {}
        for dept_id, dept_name in departments:
            employees[dept_id] = [int(await tx.fetchval(
                "INSERT INTO employees (name, email, department_id, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $4) RETURNING id",
                f"{dept_name} Person {i + 1}", f"{dept_name.lower()}{i + 1}@example.com",
                dept_id, now)) for i in range(employees_per_department)]
        counters = {dept_id: 0 for dept_id, _ in departments}
        desks = 0
        for number in range(1, floors + 1):
            floor_id = await tx.fetchval(
                "INSERT INTO floors (building_id, number, name, width, height) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id", building_id, number,
                f"{building} {number}F", 40 + _COLUMNS * 140.0,
                40 + (desks_per_floor // _COLUMNS + 1) * 110.0)
            for slot in range(desks_per_floor):
                # Each floor is split in department zones of consecutive desks.
                dept_id, dept_name = departments[(slot * len(departments)) // desks_per_floor]
                counters[dept_id] += 1
                staff = employees[dept_id]
                owner = staff[counters[dept_id] - 1] if counters[dept_id] <= len(staff) else None
                await tx.fetch(
                    """INSERT INTO workstations (name, department_id, employee_id, x_position,
                           y_position, width, height, status, equipment, notes, floor_id,
                           floor_number, building, created_at, updated_at)
                       VALUES ($1, $2, $3, $4, $5, 120, 80, $6, $7, '', $8, $9, $10, $11, $11)""",
                    f"{dept_name}-{counters[dept_id]:03d}", dept_id, owner,
                    20 + (slot % _COLUMNS) * 140.0, 20 + (slot // _COLUMNS) * 110.0,
                    "maintenance" if slot % 37 == 36 else "available",
                    json.dumps(_EQUIPMENT[slot % len(_EQUIPMENT)]), floor_id, number,
                    building, now)
                desks += 1
    return {"building_id": building_id, "floors": floors, "departments": len(departments),
            "employees": sum(len(v) for v in employees.values()), "workstations": desks}
