"""What the desk API reads and writes: request bodies (validated by msgspec) and the
JSON shapes of workstations, bookings and log entries."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import msgspec

from tidings.plain_errors import in_words

Status = Literal["available", "occupied", "reserved", "maintenance", "disabled"]
STATUSES: tuple[str, ...] = ("available", "occupied", "reserved", "maintenance", "disabled")
# Statuses an operator may set by PUT; occupied/reserved come from bookings only.
MANUAL_STATUSES = ("available", "maintenance", "disabled")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\A[^\x00]*\Z")]
Text = Annotated[str, msgspec.Meta(max_length=10_000, pattern=r"\A[^\x00]*\Z")]
Coordinate = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
Size = Annotated[float, msgspec.Meta(gt=0, le=100_000)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Equipment = Annotated[list[Annotated[str, msgspec.Meta(max_length=100,
                                                       pattern=r"\A[^\x00]*\Z")]],
                      msgspec.Meta(max_length=100)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)]  # up to year 9999


BusinessId = Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                         pattern=r"\A[^\x00]*\Z")]
FloorNumber = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]
BuildingName = Annotated[str, msgspec.Meta(min_length=1, max_length=50,
                                           pattern=r"\A[^\x00]*\Z")]
# Seed §7.2.1 stores equipment as TEXT holding a JSON list (seed: "设备清单, JSON字符串").
EquipmentText = Annotated[str, msgspec.Meta(max_length=10_000)]
LinkOrClear = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


def equipment_list(value: list[str] | str | None) -> list[str]:
    """Equipment as a list: given as one, or as the seed's JSON string holding one
    (``'["monitor", "dock"]'``; an empty string or ``null`` is no equipment)."""
    if isinstance(value, list):
        return value
    if value is None or not value.strip():
        return []
    try:
        return msgspec.json.decode(value, type=Equipment)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError("equipment must be a list of strings or a JSON string holding "
                         f"one, such as '[\"monitor\"]' ({in_words(exc, Equipment)})") from None


class WorkstationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/workstations``: the seed §7.2.1 columns, plus ``floor_id``
    and the §5.3.1 ``workstation_id`` (default: ``name``). ``floor_number`` and
    ``building`` find, or create, the building and its floor."""

    name: Name
    x_position: Coordinate
    y_position: Coordinate
    workstation_id: BusinessId | None = None
    floor_id: Id | None = None
    floor_number: FloorNumber | None = None
    building: BuildingName | None = None
    department_id: Id | None = None
    employee_id: Id | None = None
    width: Size = 120.0
    height: Size = 80.0
    status: Literal["available", "maintenance", "disabled"] = "available"
    equipment: Equipment | EquipmentText | None = msgspec.field(default_factory=list)
    notes: Text | None = ""

    def __post_init__(self) -> None:
        self.equipment = equipment_list(self.equipment)
        if self.notes is None:  # the seed's column is nullable
            self.notes = ""


class WorkstationUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of ``PUT /api/workstations/{id}``: only the fields given change.

    ``department_id``/``employee_id``/``floor_id`` of ``0`` clear the link;
    ``floor_number``/``building`` move the desk like on create.
    """

    name: Name | msgspec.UnsetType = msgspec.UNSET
    workstation_id: BusinessId | msgspec.UnsetType = msgspec.UNSET
    x_position: Coordinate | msgspec.UnsetType = msgspec.UNSET
    y_position: Coordinate | msgspec.UnsetType = msgspec.UNSET
    width: Size | msgspec.UnsetType = msgspec.UNSET
    height: Size | msgspec.UnsetType = msgspec.UNSET
    floor_id: LinkOrClear | msgspec.UnsetType | None = msgspec.UNSET
    floor_number: FloorNumber | msgspec.UnsetType | None = msgspec.UNSET
    building: BuildingName | msgspec.UnsetType | None = msgspec.UNSET
    department_id: LinkOrClear | msgspec.UnsetType | None = msgspec.UNSET
    employee_id: LinkOrClear | msgspec.UnsetType | None = msgspec.UNSET
    status: Literal["available", "maintenance", "disabled"] | msgspec.UnsetType = msgspec.UNSET
    equipment: Equipment | EquipmentText | msgspec.UnsetType | None = msgspec.UNSET
    notes: Text | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        if self.equipment is not msgspec.UNSET:
            self.equipment = equipment_list(self.equipment)

    def changes(self) -> dict[str, Any]:
        """Column → new value for every field given (``floor_number``/``building``
        are resolved to a floor by the repository)."""
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is msgspec.UNSET:
                continue
            if name == "equipment":
                value = json.dumps(value, ensure_ascii=False)
            elif name in ("floor_id", "department_id", "employee_id") and not value:
                value = None
            elif name == "notes" and value is None:
                value = ""
            out[name] = value
        return out


class OccupyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/workstations/{id}/occupy`` (may be empty)."""

    until: Millis | None = None


class ReserveRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/workstations/{id}/reserve``: a time range in ms since the epoch."""

    start: Millis
    end: Millis


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC with a ``Z`` (the seed's format)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)  # integers: no float rounding of the millisecond
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def workstation_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a ``workstations`` row (joined names included when present)."""
    try:
        equipment = json.loads(row["equipment"] or "[]")
    except ValueError:  # written by another program: show it as it is
        equipment = [row["equipment"]]
    return {
        "id": row["id"], "name": row["name"], "workstation_id": row.get("workstation_id"),
        "department_id": row["department_id"], "department": row.get("department"),
        "department_color": row.get("department_color"),
        "employee_id": row["employee_id"], "employee": row.get("employee"),
        "x_position": float(row["x_position"]), "y_position": float(row["y_position"]),
        "width": float(row["width"]), "height": float(row["height"]),
        "status": row["status"], "equipment": equipment, "notes": row["notes"],
        "floor_id": row["floor_id"], "floor_number": row["floor_number"],
        "building": row["building"],
        "occupied_by": row["occupied_by"], "occupant_name": row.get("occupant_name"),
        "occupied_at": iso(row["occupied_at"]),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
    }


def booking_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a ``workstation_occupancy`` row."""
    return {
        "id": row["id"], "workstation_id": row.get("workstation_id"), "user_id": row["user_id"],
        "start_time": iso(row["start_time"]), "end_time": iso(row["end_time"]),
        "reservation_type": row["reservation_type"], "status": row["status"],
    }


def log_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a ``workstation_logs`` row."""
    return {"id": row["id"], "workstation_id": row.get("workstation_id"),
            "user_id": row["user_id"], "action": row["action"], "detail": row["detail"],
            "created_at": iso(row["created_at"])}
