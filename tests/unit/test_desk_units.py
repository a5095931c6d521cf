"""Pure pieces of the desk app: rooms, message format, times, percentiles, filters."""

from __future__ import annotations

import re

from tidings.apps.desks.events import event_type, message, rooms_of
from tidings.apps.desks.models import WorkstationUpdate, iso, workstation_json
from tidings.apps.desks.monitoring import percentile
from tidings.apps.desks.repository import WorkstationFilter
from tidings.apps.desks.sockets import _origin_rule
from tidings.bus.base import DeskChangeEvent


def test_a_moved_desk_goes_to_old_and_new_rooms_once() -> None:
    change = DeskChangeEvent("UPDATE", 7, floor_id=2, department_id=3, old_floor_id=1,
                             old_department_id=3)
    assert rooms_of(change) == ["floor:2", "floor:1", "dept:3"]
    assert rooms_of(DeskChangeEvent("DELETE", 7, old_floor_id=1)) == ["floor:1"]
    assert rooms_of(DeskChangeEvent("UPDATE", 7)) == []


def test_event_types_follow_the_seed() -> None:
    assert [event_type(DeskChangeEvent(op, 1)) for op in ("INSERT", "UPDATE", "DELETE")] == \
        ["workstation_created", "workstation_update", "workstation_deleted"]
    assert event_type(DeskChangeEvent("UPDATE", 1, table="employees")) == "employee_update"
    assert event_type(DeskChangeEvent("DELETE", 1, table="departments")) == "department_update"


def test_message_has_the_seed_fields() -> None:
    one, two = message("workstation_update", {"id": 1}), message("workstation_update", {})
    assert list(one) == ["type", "data", "timestamp", "messageId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", one["timestamp"])
    assert one["messageId"] != two["messageId"]


def test_iso_times() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1735732800123) == "2025-01-01T12:00:00.123Z"
    assert iso(None) is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.95), percentile(values, 0.99)) == (95.0, 99.0)
    assert percentile([], 0.95) == 0.0
    assert percentile([3.0], 0.99) == 3.0


def test_filter_builds_bound_conditions_only() -> None:
    clause, args = WorkstationFilter(status="occupied", floor_id=2, search="a_b%").where()
    assert clause == (" WHERE w.status = $1 AND w.floor_id = $2"
                      " AND lower(w.name) LIKE $3 ESCAPE '\\'")
    assert args == ["occupied", 2, "%a\\_b\\%%"]
    assert WorkstationFilter().where() == ("", [])


def test_update_maps_zero_links_to_null_and_equipment_to_json() -> None:
    update = WorkstationUpdate(department_id=0, equipment=["monitor"], name="x")
    assert update.changes() == {"department_id": None, "equipment": '["monitor"]', "name": "x"}


def test_equipment_written_by_another_program_is_shown_as_is() -> None:
    row = {"id": 1, "name": "d", "department_id": None, "employee_id": None, "x_position": 1,
           "y_position": 2, "width": 3, "height": 4, "status": "available",
           "equipment": "not json", "notes": "", "floor_id": None, "floor_number": None,
           "building": None, "occupied_by": None, "occupied_at": None, "created_at": 0,
           "updated_at": 0}
    assert workstation_json(row)["equipment"] == ["not json"]


def test_socketio_origin_rule_matches_the_core() -> None:
    same = _origin_rule([])
    environ = {"HTTP_HOST": "127.0.0.1:8443"}
    assert same(None, environ) and same("http://127.0.0.1:8443", environ)
    assert not same("https://evil.example", environ)
    assert _origin_rule(["https://app.example"])("https://app.example", environ)
    assert _origin_rule(["*"])("https://evil.example", environ)
