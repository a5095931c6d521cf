"""Atomic bookings: many clients racing for one desk, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.desks.conftest import DeskNode, make_desk_node
from tests.support.server import RunningServer
from tests.support.services import PostgresServer, ServiceError

RACERS = 50


async def test_fifty_concurrent_occupy_requests_one_wins(server: RunningServer) -> None:
    users = [await server.quick_user() for _ in range(RACERS)]
    desks = await make_desk_node(server)
    assert server.http is not None

    async def occupy(token: str) -> tuple[int, str]:
        async with server.http.post(f"{desks.url}/api/workstations/7/occupy",  # type: ignore[union-attr]
                                    headers={"Authorization": f"Bearer {token}"}) as r:
            body = await r.json()
            return r.status, body.get("error", {}).get("code", "")

    results = await asyncio.gather(*(occupy(token) for _, token in users))
    assert Counter(status for status, _ in results) == {200: 1, 409: RACERS - 1}
    assert {code for status, code in results if status == 409} <= {"WORKSTATION_OCCUPIED",
                                                                     "BOOKING_CONFLICT"}
    winner = users[[status for status, _ in results].index(200)][0]
    _, desk = await desks.call("GET", "/api/workstations/7")
    assert desk["occupied_by"] == winner
    assert [b["user_id"] for b in desk["bookings"]] == [winner]


async def test_concurrent_overlapping_reservations_one_wins(desks: DeskNode) -> None:
    start = int(time.time() * 1000) + 3_600_000

    async def reserve(offset: int) -> int:
        status, _ = await desks.call("POST", "/api/workstations/8/reserve", who=offset % 2,
                                     json={"start": start + offset * 60_000,
                                           "end": start + 3_600_000 + offset * 60_000})
        return status

    statuses = await asyncio.gather(*(reserve(i) for i in range(20)))
    assert Counter(statuses) == {201: 1, 409: 19}


def test_postgres_refuses_overlapping_bookings_itself(postgres_server: PostgresServer) -> None:
    """The exclusion constraint holds even for a program that skips our checks."""
    name = "t_overlap"
    postgres_server.create_database(name)
    try:
        from tidings.store.migrate import list_migrations

        for migration in list_migrations("postgres"):
            postgres_server.psql(migration.sql, database=name)
        postgres_server.psql(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'x', 0);"
            "INSERT INTO workstations (name, x_position, y_position) VALUES ('d', 1, 1);"
            "INSERT INTO workstation_occupancy (workstation_id, user_id, start_time, end_time,"
            " reservation_type) VALUES (1, 1, 100, 200, 'scheduled')", database=name)
        with pytest.raises(ServiceError, match="no_overlap"):
            postgres_server.psql(
                "INSERT INTO workstation_occupancy (workstation_id, user_id, start_time,"
                " end_time, reservation_type) VALUES (1, 1, 150, 250, 'scheduled')",
                database=name)
        # A cancelled booking does not count; touching ranges do not overlap.
        postgres_server.psql(
            "INSERT INTO workstation_occupancy (workstation_id, user_id, start_time, end_time,"
            " reservation_type, status) VALUES (1, 1, 150, 250, 'scheduled', 'cancelled');"
            "INSERT INTO workstation_occupancy (workstation_id, user_id, start_time, end_time,"
            " reservation_type) VALUES (1, 1, 200, 300, 'scheduled')", database=name)
    finally:
        postgres_server.drop_database(name)
