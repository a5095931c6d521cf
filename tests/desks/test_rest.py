"""The desk REST API of seed 000 against a real node, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from tests.desks.conftest import DeskNode


async def test_every_desk_route_needs_a_token(desks: DeskNode) -> None:
    assert desks.node.http is not None
    for path in ("/api/workstations", "/api/workstations/1", "/api/workstations/stats",
                 "/api/desks?dept=Design", "/api/map"):
        async with desks.node.http.get(desks.url + path) as r:
            assert r.status == 401, path
            assert (await r.json())["error"]["code"] == "UNAUTHORIZED"


async def test_list_filters_and_pages(desks: DeskNode) -> None:
    status, body = await desks.call("GET", "/api/workstations?limit=5&page=2")
    assert status == 200
    assert body["total"] == 24 and body["page"] == 2 and body["limit"] == 5
    assert [w["id"] for w in body["workstations"]] == [6, 7, 8, 9, 10]

    status, body = await desks.call("GET", "/api/workstations?floor_id=2&dept=Design")
    assert status == 200 and body["total"] == 2
    assert {(w["floor_number"], w["department"]) for w in body["workstations"]} == {(2, "Design")}

    status, body = await desks.call("GET", "/api/workstations?q=engineering-00")
    assert status == 200 and body["total"] == 4
    status, body = await desks.call("GET", "/api/workstations?q=100%25")  # "%" is literal
    assert status == 200 and body["total"] == 0


async def test_bad_list_parameters_get_400_or_404(desks: DeskNode) -> None:
    for query, status_, code in (("status=sleeping", 400, "BAD_PARAMETER"),
                                 ("limit=0", 400, "BAD_PARAMETER"),
                                 ("limit=501", 400, "BAD_PARAMETER"),
                                 ("page=x", 400, "BAD_PARAMETER"),
                                 ("floor_id=-1", 400, "BAD_PARAMETER"),
                                 ("dept=Nowhere", 404, "DEPARTMENT_NOT_FOUND")):
        status, body = await desks.call("GET", "/api/workstations?" + query)
        assert (status, body["error"]["code"]) == (status_, code), query


async def test_create_read_update_delete(desks: DeskNode) -> None:
    status, created = await desks.call("POST", "/api/workstations", json={
        "name": "Design-new", "x_position": 10, "y_position": 20, "floor_id": 2,
        "department_id": 2, "equipment": ["monitor"], "notes": "<b>window</b>"})
    assert status == 201, created
    assert created["floor_number"] == 2 and created["building"] == "HQ"
    assert created["status"] == "available" and created["equipment"] == ["monitor"]
    desk = created["id"]

    status, got = await desks.call("GET", f"/api/workstations/{desk}")
    assert status == 200 and got["notes"] == "<b>window</b>" and got["bookings"] == []

    status, updated = await desks.call("PUT", f"/api/workstations/{desk}",
                                       json={"status": "maintenance", "floor_id": 1,
                                             "department_id": 0})
    assert status == 200, updated
    assert (updated["status"], updated["floor_id"], updated["department_id"]) == \
        ("maintenance", 1, None)

    status, body = await desks.call("DELETE", f"/api/workstations/{desk}")
    assert (status, body) == (200, {"deleted": desk})
    status, body = await desks.call("GET", f"/api/workstations/{desk}")
    assert (status, body["error"]["code"]) == (404, "WORKSTATION_NOT_FOUND")

    status, body = await desks.call("GET", f"/api/workstations/{desk}/logs")
    assert status == 200
    assert [e["action"] for e in body["logs"]] == ["delete", "update", "create"]


async def test_invalid_bodies_are_refused_with_codes(desks: DeskNode) -> None:
    cases = [
        ("POST", "/api/workstations", {"name": "x"}, 422, "INVALID_BODY"),
        ("POST", "/api/workstations", {"name": "x", "x_position": -1, "y_position": 0}, 422,
         "INVALID_BODY"),
        ("POST", "/api/workstations", {"name": "x", "x_position": 1, "y_position": 1,
                                       "floor_id": 999}, 422, "INVALID_BODY"),
        ("POST", "/api/workstations", {"name": "x", "x_position": 1, "y_position": 1,
                                       "status": "occupied"}, 422, "INVALID_BODY"),
        ("POST", "/api/workstations", {"name": "x", "x_position": 1, "y_position": 1,
                                       "extra": 1}, 422, "INVALID_BODY"),
        ("PUT", "/api/workstations/1", {}, 422, "INVALID_BODY"),
        ("PUT", "/api/workstations/1", {"department_id": 999}, 422, "INVALID_BODY"),
        ("PUT", "/api/workstations/999", {"name": "y"}, 404, "WORKSTATION_NOT_FOUND"),
        ("POST", "/api/workstations/1/reserve", {"start": 5}, 422, "INVALID_BODY"),
    ]
    for method, path, body, status_, code in cases:
        status, answer = await desks.call(method, path, json=body)
        assert (status, answer["error"]["code"]) == (status_, code), (path, body, answer)
    assert desks.node.http is not None
    async with desks.node.http.post(desks.url + "/api/workstations", data=b"{not json",
                                    headers=desks.headers()) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "BAD_JSON"
    async with desks.node.http.get(desks.url + "/api/workstations/abc",
                                   headers=desks.headers()) as r:
        assert r.status == 404


async def test_occupy_release_rules(desks: DeskNode) -> None:
    status, desk = await desks.call("POST", "/api/workstations/3/occupy")
    assert status == 200 and desk["status"] == "occupied"
    assert desk["occupied_by"] == desks.user_ids[0]

    status, body = await desks.call("POST", "/api/workstations/3/occupy", who=1)
    assert (status, body["error"]["code"]) == (409, "WORKSTATION_OCCUPIED")
    status, body = await desks.call("POST", "/api/workstations/3/release", who=1)
    assert (status, body["error"]["code"]) == (403, "NOT_OCCUPANT")
    status, body = await desks.call("PUT", "/api/workstations/3", json={"status": "available"})
    assert (status, body["error"]["code"]) == (409, "WORKSTATION_BOOKED")

    status, desk = await desks.call("POST", "/api/workstations/3/release")
    assert status == 200 and desk["status"] == "available" and desk["occupied_by"] is None
    status, body = await desks.call("POST", "/api/workstations/3/release")
    assert (status, body["error"]["code"]) == (409, "WORKSTATION_NOT_OCCUPIED")

    await desks.call("PUT", "/api/workstations/3", json={"status": "maintenance"})
    status, body = await desks.call("POST", "/api/workstations/3/occupy")
    assert (status, body["error"]["code"]) == (409, "WORKSTATION_UNAVAILABLE")
    status, body = await desks.call("POST", "/api/workstations/999/occupy")
    assert (status, body["error"]["code"]) == (404, "WORKSTATION_NOT_FOUND")

    status, body = await desks.call("GET", "/api/workstations/3/logs")
    assert [e["action"] for e in body["logs"]][:3] == ["update", "release", "occupy"]


async def test_reservations_never_overlap(desks: DeskNode) -> None:
    hour = 3_600_000
    start = int(time.time() * 1000) + hour
    status, first = await desks.call("POST", "/api/workstations/4/reserve",
                                     json={"start": start, "end": start + 2 * hour})
    assert status == 201, first
    assert first["status"] == "reserved" and first["booking"]["reservation_type"] == "scheduled"

    for s, e in ((start + hour, start + 3 * hour), (start - hour, start + 1),
                 (start, start + 2 * hour), (start - hour, start + 5 * hour)):
        status, body = await desks.call("POST", "/api/workstations/4/reserve", who=1,
                                        json={"start": s, "end": e})
        assert (status, body["error"]["code"]) == (409, "BOOKING_CONFLICT"), (s, e)
    # Touching ranges do not overlap: [start+2h, start+3h) follows [start, start+2h).
    status, second = await desks.call("POST", "/api/workstations/4/reserve", who=1,
                                      json={"start": start + 2 * hour, "end": start + 3 * hour})
    assert status == 201, second
    # Occupying from now with no end would run into the reservations.
    status, body = await desks.call("POST", "/api/workstations/4/occupy")
    assert (status, body["error"]["code"]) == (409, "BOOKING_CONFLICT")
    status, body = await desks.call("POST", "/api/workstations/4/occupy",
                                    json={"until": start - 1})
    assert status == 200 and body["status"] == "occupied"

    status, got = await desks.call("GET", "/api/workstations/4")
    assert [b["reservation_type"] for b in got["bookings"]] == ["temporary", "scheduled",
                                                                "scheduled"]
    booking = first["booking"]["id"]
    status, body = await desks.call("DELETE", f"/api/workstations/4/reservations/{booking}",
                                    who=1)
    assert (status, body["error"]["code"]) == (403, "NOT_BOOKER")
    status, body = await desks.call("DELETE", f"/api/workstations/4/reservations/{booking}")
    assert status == 200
    status, body = await desks.call("DELETE", f"/api/workstations/4/reservations/{booking}")
    assert (status, body["error"]["code"]) == (404, "BOOKING_NOT_FOUND")


async def test_reservation_times_are_checked(desks: DeskNode) -> None:
    now = int(time.time() * 1000)
    for start, end in ((now + 10_000, now + 5_000), (now - 20_000, now - 10_000),
                       (now, now + 31 * 86_400_000)):
        status, body = await desks.call("POST", "/api/workstations/5/reserve",
                                        json={"start": start, "end": end})
        assert (status, body["error"]["code"]) == (422, "INVALID_BODY"), (start, end)
    status, body = await desks.call("POST", "/api/workstations/5/occupy", json={"until": now})
    assert (status, body["error"]["code"]) == (422, "INVALID_BODY")


async def test_stats_desks_and_map(desks: DeskNode) -> None:
    await desks.call("POST", "/api/workstations/1/occupy")
    status, stats = await desks.call("GET", "/api/workstations/stats")
    assert status == 200
    assert stats["total"] == 24 and stats["by_status"]["occupied"] == 1
    assert sum(stats["by_status"].values()) == 24
    assert {d["name"] for d in stats["by_department"]} >= {"Engineering", "Design"}
    assert [f["number"] for f in stats["by_floor"]] == [1, 2]

    status, body = await desks.call("GET", "/api/desks?dept=Engineering")
    assert status == 200 and body["total"] == 4
    assert all(w["department"] == "Engineering" for w in body["workstations"])
    status, by_id = await desks.call("GET", f"/api/desks?dept={body['department_id']}")
    assert by_id["workstations"] == body["workstations"]
    status, body = await desks.call("GET", "/api/desks?dept=Nowhere")
    assert (status, body["error"]["code"]) == (404, "DEPARTMENT_NOT_FOUND")

    status, world = await desks.call("GET", "/api/map?dept=Design")
    assert status == 200
    assert [b["name"] for b in world["buildings"]] == ["HQ"]
    assert len(world["floors"]) == 2 and len(world["departments"]) == 6
    assert world["total"] == 4 and not world["truncated"]


async def test_database_sync_realigns_statuses(desks: DeskNode) -> None:
    now = int(time.time() * 1000)
    await desks.call("POST", "/api/workstations/6/occupy", json={"until": now + 400})
    status, body = await desks.call("POST", "/api/database/sync")
    assert status == 200 and body["changed"] == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the occupancy ends 400 ms from now
        status, body = await desks.call("POST", "/api/database/sync")
        assert status == 200, body
        if body["changed"]:
            break
        await asyncio.sleep(0.05)
    assert body["changed"] == [6]
    status, desk = await desks.call("GET", "/api/workstations/6")
    assert desk["status"] == "available" and desk["bookings"] == []
