"""Floor plans: the demo's layout per floor at /api/v1/desks/floors/{id}/layout, and the
shapes' checks."""

from __future__ import annotations

import pytest

from tests.desks.conftest import DeskNode
from tidings.apps.desks.demo import plan_floor
from tidings.apps.desks.layouts import check_shapes, load_layout, save_layout


async def test_each_demo_floor_has_an_office_layout(desks: DeskNode) -> None:
    status, layout = await desks.call("GET", "/api/v1/desks/floors/1/layout")
    assert status == 200 and layout["floor_id"] == 1
    kinds = [s["kind"] for s in layout["shapes"]]
    assert kinds.count("room") == 5 and "wall" in kinds and "aisle" in kinds
    assert "Kitchen" in [s.get("label") for s in layout["shapes"]]
    # Every desk of the floor lies inside the floor, below the rooms, clear of the aisles.
    _, floor_map = await desks.call("GET", "/api/map?floor_id=1")
    floor = next(f for f in floor_map["floors"] if f["id"] == 1)
    rooms_end = max(s["y"] + s["height"] for s in layout["shapes"] if s["kind"] == "room")
    aisles = [s for s in layout["shapes"] if s["kind"] == "aisle"]
    for d in floor_map["workstations"]:
        assert d["x_position"] >= 0 and d["x_position"] + d["width"] <= floor["width"]
        assert rooms_end < d["y_position"] and d["y_position"] + d["height"] <= floor["height"]
        for a in aisles:
            apart = (d["x_position"] + d["width"] <= a["x"]
                     or a["x"] + a["width"] <= d["x_position"]
                     or d["y_position"] + d["height"] <= a["y"]
                     or a["y"] + a["height"] <= d["y_position"])
            assert apart, (d["name"], a)


async def test_unknown_floors_and_missing_tokens_are_refused(desks: DeskNode) -> None:
    status, body = await desks.call("GET", "/api/v1/desks/floors/999/layout")
    assert (status, body["error"]["code"]) == (404, "FLOOR_NOT_FOUND")
    assert desks.node.http is not None
    async with desks.node.http.get(desks.url + "/api/v1/desks/floors/1/layout") as r:
        assert r.status == 401


async def test_a_floor_without_a_layout_has_none_and_a_saved_one_replaces_it(
        desks: DeskNode) -> None:
    db = desks.node.node.desks.db
    async with db.transaction() as tx:
        floor_id = await tx.fetchval("INSERT INTO floors (building_id, number, name, width, "
                                     "height) VALUES (1, 9, 'Roof', 500, 400) RETURNING id")
        assert await load_layout(tx, int(floor_id)) == []
        await save_layout(tx, int(floor_id), [{"kind": "room", "x": 0, "y": 0, "width": 100,
                                               "height": 50, "label": "<b>Loft</b>"}])
        await save_layout(tx, int(floor_id), [{"kind": "wall", "x": 0, "y": 0, "width": 500,
                                               "height": 8}])
        assert await load_layout(tx, int(floor_id)) == [
            {"kind": "wall", "x": 0.0, "y": 0.0, "width": 500.0, "height": 8.0, "label": ""}]
        assert await load_layout(tx, 12345) is None


@pytest.mark.parametrize(("shapes", "why"), [
    ([{"kind": "window", "x": 0, "y": 0, "width": 1, "height": 1}], "kind must be one of"),
    ([{"kind": "wall", "x": 0, "y": 0, "width": 0, "height": 1}], "positive size"),
    ([{"kind": "room", "x": 0, "y": 0, "width": 1, "height": 1, "label": "x" * 61}], "60"),
    ([{"kind": "room", "x": 0, "y": 0, "width": 1}], "height"),
    ([{"kind": "room", "x": 0, "y": 0, "width": 1, "height": 1, "colour": "red"}], "colour"),
    ([{"kind": "aisle", "x": 0, "y": 0, "width": 1, "height": 1}] * 501, "at most 500"),
])
def test_bad_shapes_are_refused_in_words(shapes: list[dict[str, object]], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_shapes(shapes)  # type: ignore[arg-type]


def test_the_plan_grows_with_the_desks() -> None:
    small = plan_floor([2] * 6)
    large = plan_floor([17] * 6)
    assert small[0] == large[0] and small[1] < large[1]
    assert len(large[2]) == 6 and len({x for x, _ in large[2]}) == 3
