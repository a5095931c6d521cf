"""Real-time desk events: the seed's JSON message (§5.1: ``type, data, timestamp,
messageId``) and the rooms it goes to — by floor and by department (an organisation
row that every map lists goes to every floor)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tidings.apps.desks.models import iso
from tidings.bus.base import DeskChangeEvent

WORKSTATION_EVENTS = {"INSERT": "workstation_created", "UPDATE": "workstation_update",
                      "DELETE": "workstation_deleted"}
TABLE_EVENTS = {"employees": "employee_update", "departments": "department_update",
                "buildings": "building_update", "floors": "floor_update"}
ACTIONS = {"INSERT": "created", "UPDATE": "updated", "DELETE": "deleted"}


def floor_room(floor_id: int) -> str:
    """The room of one floor's map."""
    return f"floor:{floor_id}"


def department_room(department_id: int) -> str:
    """The room of one department's desks."""
    return f"dept:{department_id}"


def rooms_of(change: DeskChangeEvent, floors: list[int] | None = None) -> list[str]:
    """Every room that showed the row before the change or shows it after (and
    ``floors``: the floor maps an organisation row shows on)."""
    rooms: list[str] = []
    for floor in (change.floor_id, change.old_floor_id, *(floors or ())):
        if floor is not None and floor_room(floor) not in rooms:
            rooms.append(floor_room(floor))
    for dept in (change.department_id, change.old_department_id):
        if dept is not None and department_room(dept) not in rooms:
            rooms.append(department_room(dept))
    return rooms


def event_type(change: DeskChangeEvent) -> str:
    """``workstation_update`` and friends, for the seed's ``type`` field."""
    if change.table == "workstations":
        return WORKSTATION_EVENTS.get(change.op, "workstation_update")
    return TABLE_EVENTS.get(change.table, f"{change.table}_update")


def message(type_: str, data: Any) -> dict[str, Any]:
    """One message in the seed's format."""
    return {"type": type_, "data": data, "timestamp": iso(int(time.time() * 1000)),
            "messageId": f"msg_{uuid.uuid4().hex}"}
