"""The organisation API (/api/v1/org/*), desk-admin roles, the seed's columns on
create/update, the new row fields and the event data — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.desks.conftest import DeskNode, make_desk_node, settle
from tests.e2e.conftest import ServerFactory
from tests.support.server import RunningServer
from tidings.config import load_settings


async def _history(desks: DeskNode, channel: str, want: int,
                   match: Any = None) -> list[dict[str, Any]]:
    """The channel's stored desk events once ``want`` of them match (wait for delivery)."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while True:
            status, body = await desks.call("GET", f"/api/v1/channels/{channel}/history")
            assert status == 200, body
            found = [p["data"] for p in body["publications"]]
            if match is not None:
                found = [m for m in found if match(m)]
            if len(found) >= want:
                return found
            await asyncio.sleep(0.1)


async def test_organisation_crud(server: RunningServer) -> None:
    desks = await make_desk_node(server, load=False)
    status, hq = await desks.call("POST", "/api/v1/org/buildings", json={"name": "HQ"})
    assert status == 201 and hq == {"id": hq["id"], "name": "HQ"}
    status, floor = await desks.call("POST", "/api/v1/org/floors", json={
        "building_id": hq["id"], "floor_number": 2, "name": "Second", "width": 900,
        "height": 500})
    assert status == 201, floor
    assert floor == {"id": floor["id"], "building_id": hq["id"], "building": "HQ",
                     "floor_number": 2, "name": "Second", "width": 900.0, "height": 500.0}
    status, dept = await desks.call("POST", "/api/v1/org/departments",
                                    json={"name": "Engineering", "color": "#3b82f6"})
    assert status == 201 and dept["color"] == "#3b82f6"
    status, ann = await desks.call("POST", "/api/v1/org/employees", json={
        "name": "Ann", "email": "ann@example.com", "department_id": dept["id"],
        "user_id": desks.user_ids[0]})
    assert status == 201 and ann["user_id"] == desks.user_ids[0], ann

    assert (await desks.call("GET", "/api/v1/org/buildings"))[1] == {"buildings": [hq]}
    status, listed = await desks.call("GET", f"/api/v1/org/floors?building_id={hq['id']}")
    assert listed == {"floors": [floor]}
    assert (await desks.call("GET", "/api/v1/org/floors?building_id=999"))[1] == {"floors": []}
    assert (await desks.call("GET", f"/api/v1/org/employees/{ann['id']}"))[1] == ann
    status, renamed = await desks.call("PUT", f"/api/v1/org/departments/{dept['id']}",
                                       json={"color": "#000000"})
    assert status == 200 and renamed == {**dept, "color": "#000000"}
    status, moved = await desks.call("PUT", f"/api/v1/org/employees/{ann['id']}",
                                     json={"department_id": None, "email": None})
    assert status == 200 and moved["department_id"] is None and moved["email"] is None

    # Refusals: unknown ids, clashes, blocked deletes, bad bodies.
    for path in ("buildings/999", "floors/999", "departments/999", "employees/999"):
        status, error = await desks.call("GET", "/api/v1/org/" + path)
        assert status == 404 and error["error"]["code"].endswith("_NOT_FOUND"), error
    status, error = await desks.call("POST", "/api/v1/org/departments",
                                     json={"name": "Engineering"})
    assert (status, error["error"]["code"]) == (409, "DEPARTMENT_EXISTS")
    status, error = await desks.call("POST", "/api/v1/org/floors",
                                     json={"building_id": hq["id"], "floor_number": 2})
    assert (status, error["error"]["code"]) == (409, "FLOOR_EXISTS")
    status, error = await desks.call("DELETE", f"/api/v1/org/buildings/{hq['id']}")
    assert (status, error["error"]["code"]) == (409, "BUILDING_IN_USE")
    for body, words in (({"name": "x", "color": "red"}, "color"),
                        ({"color": "#ffffff"}, "name")):
        status, error = await desks.call("POST", "/api/v1/org/departments", json=body)
        assert status == 422 and words in error["error"]["message"], error
    status, error = await desks.call("POST", "/api/v1/org/floors", json={"floor_number": 1})
    assert status == 422 and "building_id" in error["error"]["message"]
    status, error = await desks.call("POST", "/api/v1/org/floors",
                                     json={"building_id": 999, "floor_number": 1})
    assert status == 422 and "no building 999" in error["error"]["message"]
    status, error = await desks.call("PUT", f"/api/v1/org/buildings/{hq['id']}", json={})
    assert status == 422 and "nothing to change" in error["error"]["message"]

    status, desk = await desks.call("POST", "/api/workstations", json={
        "name": "E-1", "x_position": 1, "y_position": 1, "floor_id": floor["id"],
        "department_id": dept["id"]})
    assert status == 201, desk
    status, error = await desks.call("DELETE", f"/api/v1/org/floors/{floor['id']}")
    assert (status, error["error"]["code"]) == (409, "FLOOR_IN_USE")
    assert (await desks.call("DELETE", f"/api/v1/org/departments/{dept['id']}"))[0] == 200
    status, unlinked = await desks.call("GET", f"/api/workstations/{desk['id']}")
    assert unlinked["department_id"] is None and unlinked["department_color"] is None
    assert (await desks.call("DELETE", f"/api/workstations/{desk['id']}"))[0] == 200
    assert (await desks.call("DELETE", f"/api/v1/org/floors/{floor['id']}"))[1] == \
        {"deleted": floor["id"]}
    assert (await desks.call("DELETE", f"/api/v1/org/buildings/{hq['id']}"))[0] == 200
    assert (await desks.call("DELETE", f"/api/v1/org/employees/{ann['id']}"))[0] == 200
    assert (await desks.call("GET", "/api/v1/org/employees"))[1] == {"employees": []}


async def test_seed_columns_make_the_building_and_floor(server: RunningServer) -> None:
    desks = await make_desk_node(server, load=False)
    status, dept = await desks.call("POST", "/api/v1/org/departments",
                                    json={"name": "Design", "color": "#a855f7"})
    body = {"name": "D-1", "department_id": dept["id"], "x_position": 10, "y_position": 20,
            "equipment": '["monitor", "dock"]', "floor_number": 3, "building": "Annex",
            "notes": None}
    status, desk = await desks.call("POST", "/api/workstations", json=body)
    assert status == 201, desk
    assert (desk["workstation_id"], desk["floor_number"], desk["building"]) == ("D-1", 3, "Annex")
    assert desk["equipment"] == ["monitor", "dock"] and desk["notes"] == ""
    assert desk["department_color"] == "#a855f7" and desk["occupant_name"] is None
    floors = (await desks.call("GET", "/api/v1/org/floors"))[1]["floors"]
    assert [(f["id"], f["floor_number"], f["building"]) for f in floors] == \
        [(desk["floor_id"], 3, "Annex")]

    # The same building and floor are found again, not duplicated; the id must be free.
    status, error = await desks.call("POST", "/api/workstations", json=body)
    assert (status, error["error"]["code"]) == (409, "WORKSTATION_ID_TAKEN")
    status, twin = await desks.call("POST", "/api/workstations",
                                    json={**body, "workstation_id": "D-1b", "equipment": []})
    assert status == 201 and twin["floor_id"] == desk["floor_id"], twin
    for bad in ({"equipment": "monitor"}, {"equipment": '{"a": 1}'},
                {"floor_id": desk["floor_id"], "floor_number": 4}):
        status, error = await desks.call("POST", "/api/workstations",
                                         json={**body, "workstation_id": "x", **bad})
        assert status == 422, (bad, error)
    status, only = await desks.call("POST", "/api/workstations", json={
        **body, "workstation_id": "y", "building": None, "floor_number": 1, "equipment": None})
    assert status == 201 and only["building"] == "Annex"  # the only building
    assert only["equipment"] == []
    status, cleared = await desks.call("PUT", f"/api/workstations/{only['id']}",
                                       json={"floor_id": None, "equipment": None})
    assert (cleared["floor_id"], cleared["floor_number"], cleared["building"],
            cleared["equipment"]) == (None, None, None, [])

    # PUT takes the seed's columns too; what is left out stays.
    status, moved = await desks.call("PUT", f"/api/workstations/{desk['id']}",
                                     json={"floor_number": 5, "equipment": '["lamp"]'})
    assert status == 200, moved
    assert (moved["floor_number"], moved["building"], moved["equipment"]) == (5, "Annex", ["lamp"])
    assert moved["floor_id"] != desk["floor_id"]
    status, moved = await desks.call("PUT", f"/api/workstations/{desk['id']}",
                                     json={"workstation_id": "DESIGN-1", "building": "Main"})
    assert (moved["workstation_id"], moved["floor_number"], moved["building"]) == \
        ("DESIGN-1", 5, "Main")
    status, error = await desks.call("PUT", f"/api/workstations/{twin['id']}",
                                     json={"workstation_id": "DESIGN-1"})
    assert (status, error["error"]["code"]) == (409, "WORKSTATION_ID_TAKEN")

    # Renaming a building or renumbering a floor keeps the desks' seed columns true.
    main = next(b for b in (await desks.call("GET", "/api/v1/org/buildings"))[1]["buildings"]
                if b["name"] == "Main")
    await desks.call("PUT", f"/api/v1/org/buildings/{main['id']}", json={"name": "Tower"})
    await desks.call("PUT", f"/api/v1/org/floors/{moved['floor_id']}", json={"floor_number": 9})
    status, after = await desks.call("GET", f"/api/workstations/{desk['id']}")
    assert (after["floor_number"], after["building"]) == (9, "Tower")

    # occupant_name: the employee linked to the occupant's user, else the user name.
    await desks.call("POST", f"/api/workstations/{twin['id']}/occupy")
    status, taken = await desks.call("GET", f"/api/workstations/{twin['id']}")
    assert taken["occupant_name"].startswith("quick"), taken
    await desks.call("POST", "/api/v1/org/employees",
                     json={"name": "Dana", "user_id": desks.user_ids[0]})
    status, taken = await desks.call("GET", f"/api/workstations/{twin['id']}")
    assert taken["occupant_name"] == "Dana"


async def test_events_carry_the_seed_fields_and_org_actions(server: RunningServer) -> None:
    desks = await make_desk_node(server, load=False)
    _, dept = await desks.call("POST", "/api/v1/org/departments", json={"name": "Ops"})
    _, desk = await desks.call("POST", "/api/workstations", json={
        "name": "O-1", "x_position": 1, "y_position": 1, "department_id": dept["id"],
        "floor_number": 1, "building": "HQ"})
    floor = f"desks:floor:{desk['floor_id']}"
    room = f"desks:dept:{dept['id']}"
    [created] = await _history(desks, floor, 1, lambda m: m["type"] == "workstation_created")
    assert created["data"]["workstationId"] == "O-1"
    assert created["data"]["status"] == "available" and created["data"]["name"] == "O-1"
    await desks.call("PUT", f"/api/v1/org/departments/{dept['id']}", json={"color": "#123456"})
    _, ann = await desks.call("POST", "/api/v1/org/employees",
                              json={"name": "Ann", "department_id": dept["id"]})
    # (Its "created" may reach the floor too: department events go to every floor, and on
    # PostgreSQL the trigger's event is delivered once the floor exists.)
    [updated] = await _history(desks, floor, 1, lambda m: m["type"] == "department_update"
                               and m["data"]["action"] == "updated")
    assert updated["data"] == {"action": "updated", "id": dept["id"], "name": "Ops",
                               "color": "#123456"}
    [hired] = await _history(desks, room, 1, lambda m: m["type"] == "employee_update")
    assert hired["data"]["action"] == "created" and hired["data"]["id"] == ann["id"]
    await desks.call("PUT", f"/api/v1/org/floors/{desk['floor_id']}", json={"width": 2000})
    [resized] = await _history(desks, floor, 1, lambda m: m["type"] == "floor_update"
                               and m["data"]["action"] == "updated")
    assert resized["data"]["width"] == 2000.0
    await desks.call("DELETE", f"/api/workstations/{desk['id']}")
    [gone] = await _history(desks, floor, 1, lambda m: m["type"] == "workstation_deleted")
    assert gone["data"]["workstationId"] == "O-1" and gone["data"]["status"] == "deleted"
    await desks.call("DELETE", f"/api/v1/org/employees/{ann['id']}")
    [fired] = await _history(desks, room, 1, lambda m: m["type"] == "employee_update"
                             and m["data"]["action"] == "deleted")
    assert fired["data"] == {"action": "deleted", "id": ann["id"], "deleted": True}
    await settle(desks.node)


async def test_desk_admins_alone_manage(server_factory: ServerFactory) -> None:
    node = await server_factory(desk_admins=["boss"])
    desks = await make_desk_node(node, load=False)
    boss_id, boss = await node.new_user("boss")
    scoped, _ = await node.node.service.auth.issue(desks.user_ids[1], scopes=("admin",))
    desks.tokens += [boss, scoped]
    status, me = await desks.call("GET", "/api/v1/desks/me")
    assert status == 200 and me == {"user_id": desks.user_ids[0], "username": me["username"],
                                    "desk_admin": False}
    assert (await desks.call("GET", "/api/v1/desks/me", who=2))[1] == \
        {"user_id": boss_id, "username": "boss", "desk_admin": True}
    assert (await desks.call("GET", "/api/v1/desks/me", who=3))[1]["desk_admin"] is True

    desk = {"name": "B-1", "x_position": 1, "y_position": 1}
    for method, path, body in (("POST", "/api/workstations", desk),
                               ("POST", "/api/v1/org/buildings", {"name": "X"}),
                               ("POST", "/api/v1/org/departments", {"name": "X"})):
        status, error = await desks.call(method, path, json=body)
        assert (status, error["error"]["code"]) == (403, "DESK_ADMIN_REQUIRED"), error
    status, made = await desks.call("POST", "/api/workstations", who=2, json=desk)
    assert status == 201, made
    assert (await desks.call("PUT", f"/api/workstations/{made['id']}", who=3,
                             json={"notes": "by an admin token"}))[0] == 200
    for method, body in (("PUT", {"notes": "no"}), ("DELETE", None)):
        status, error = await desks.call(method, f"/api/workstations/{made['id']}", json=body)
        assert (status, error["error"]["code"]) == (403, "DESK_ADMIN_REQUIRED")
    # Everyone may still read, occupy, release and reserve.
    assert (await desks.call("GET", "/api/workstations"))[1]["total"] == 1
    assert (await desks.call("GET", "/api/v1/org/buildings"))[0] == 200
    assert (await desks.call("POST", f"/api/workstations/{made['id']}/occupy"))[0] == 200
    assert (await desks.call("POST", f"/api/workstations/{made['id']}/release"))[0] == 200
    status, _ = await desks.call("POST", f"/api/workstations/{made['id']}/reserve",
                                 json={"start": 4_000_000_000_000, "end": 4_000_003_600_000})
    assert status == 201
    assert node.http is not None
    async with node.http.get(desks.url + "/api/v1/desks/me") as r:
        assert r.status == 401


def test_desk_admins_is_a_comma_list_in_env_vars_and_flags() -> None:
    assert load_settings(environ={"TIDINGS_DESK_ADMINS": "boss, ann,"}).desk_admins == \
        ["boss", "ann"]
    assert load_settings(environ={}, overrides={"desk_admins": "a,b"}).desk_admins == ["a", "b"]
    assert load_settings(environ={}).desk_admins == []
