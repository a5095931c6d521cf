"""Floor plans: the walls, meeting rooms and aisles the desk map draws under the desks.

A floor's layout is a list of plain shapes in the floor's own units (the units of the
desks' ``x_position``/``y_position``), kept as JSON in ``floor_layouts``:
``{"kind": "wall"|"room"|"aisle", "x", "y", "width", "height", "label"?}``.
``tidings desks demo`` writes one per floor; ``GET /api/v1/desks/floors/{id}/layout``
serves it (an empty list for a floor without one).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.openapi import Operation, describe
from tidings.api.routes import authenticated
from tidings.apps.desks.db import DeskDb, Tx
from tidings.plain_errors import in_words
from tidings.store.base import now_ms

KINDS = ("wall", "room", "aisle")
MAX_SHAPES = 500
DESK_DB: web.AppKey[DeskDb] = web.AppKey("desk_layout_db", DeskDb)


class Shape(msgspec.Struct, forbid_unknown_fields=True):
    """One shape of a floor plan."""

    kind: str
    x: float
    y: float
    width: float
    height: float
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if min(self.width, self.height) <= 0 or max(abs(self.x), abs(self.y), self.width,
                                                    self.height) > 1_000_000:
            raise ValueError("a shape has a positive size within 1 000 000 units")
        if len(self.label) > 60:
            raise ValueError("label is at most 60 characters")


class Layout(msgspec.Struct):
    """Answer of ``GET /api/v1/desks/floors/{id}/layout``."""

    floor_id: int
    shapes: list[Shape]


def check_shapes(shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shapes as stored, or ``ValueError`` saying what is wrong."""
    if len(shapes) > MAX_SHAPES:
        raise ValueError(f"a floor has at most {MAX_SHAPES} shapes")
    try:
        parsed = msgspec.convert(shapes, list[Shape])
    except msgspec.ValidationError as exc:
        raise ValueError(in_words(exc, list[Shape])) from None
    return [msgspec.to_builtins(s) for s in parsed]


async def save_layout(tx: Tx, floor_id: int, shapes: list[dict[str, Any]]) -> None:
    """Replace a floor's layout."""
    text = json.dumps(check_shapes(shapes))
    await tx.fetch("DELETE FROM floor_layouts WHERE floor_id = $1", floor_id)
    await tx.fetch("INSERT INTO floor_layouts (floor_id, shapes, updated_at) VALUES ($1, $2, $3)",
                   floor_id, text, now_ms())


async def load_layout(tx: Tx, floor_id: int) -> list[dict[str, Any]] | None:
    """A floor's shapes (``[]`` without a layout), or ``None`` for no such floor."""
    if await tx.fetchrow("SELECT id FROM floors WHERE id = $1", floor_id) is None:
        return None
    text = await tx.fetchval("SELECT shapes FROM floor_layouts WHERE floor_id = $1", floor_id)
    shapes: list[dict[str, Any]] = json.loads(text) if text else []
    return shapes


async def floor_layout(request: web.Request) -> web.Response:
    """``GET /api/v1/desks/floors/{id}/layout``: ``{"floor_id", "shapes"}``."""
    await authenticated(request)
    floor_id = int(request.match_info["id"])  # the route admits digits only
    async with request.app[DESK_DB].transaction(write=False) as tx:
        shapes = await load_layout(tx, floor_id)
    if shapes is None:
        raise ApiError(404, "FLOOR_NOT_FOUND", f"no floor {floor_id}")
    return json_response({"floor_id": floor_id, "shapes": shapes})


def add_routes(app: web.Application, db: DeskDb) -> None:
    """Register the layout route."""
    app[DESK_DB] = db
    describe(app, [Operation(
        "GET", r"/api/v1/desks/floors/{id:[0-9]{1,9}}/layout", "getFloorLayout",
        "A floor's walls, rooms and aisles, drawn under its desks", "desks", answer=Layout,
        errors={404: ("FLOOR_NOT_FOUND",)})])
    app.router.add_get(r"/api/v1/desks/floors/{id:[0-9]{1,9}}/layout", floor_layout)
