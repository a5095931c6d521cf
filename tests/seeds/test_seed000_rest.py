"""Seed 000 (desk map), REST and database half: every HTTP call and every table or
LISTEN interaction the seed writes, sent as the seed writes it, to a real
``tidings serve`` on SQLite and on PostgreSQL (the raw-SQL parts on PostgreSQL
only: the seed's database is PostgreSQL). The Socket.IO half is in
test_seed000_socketio.py.

Seed sections covered:
- §7.2.1 ``workstations`` columns as a ``POST /api/workstations`` body (``floor_number``
  + ``building``, ``equipment`` as a JSON string) and the API list: ``GET
  /api/workstations`` (paging, filters), ``GET /api/workstations/:id``, ``PUT
  /api/workstations/:id``, ``DELETE /api/workstations/:id``, ``GET
  /api/workstations/stats``;
- §7.2.1 the same columns in a raw ``INSERT INTO workstations`` (no business id);
- §5.1 ``GET /api/desks?dept=Engineering``, ``GET /api/map?dept=Engineering``,
  ``GET /api/health``, ``POST /api/database/sync``;
- §5.3.1 the business id ``workstation_id`` (defaults to the name, unique);
- §7.6 ``GET /api/health`` and ``GET /api/metrics``;
- §4.1 ``LISTEN employee_changes`` / ``department_changes`` / ``workstation_changes``
  on a raw connection, hearing raw SQL changes with a JSON payload (§4.1's
  ``JSON.parse(payload)``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.seeds.conftest import login
from tests.support.nodes import NodeProcess

# §7.2.1's columns, in the seed's order and spelling; equipment is "JSON字符串".
SEED_CREATE_BODY = (
    '{"name": "A区-001", "department_id": %d, "employee_id": null, '
    '"x_position": 120.50, "y_position": 80.25, "width": 120, "height": 80, '
    '"status": "available", "equipment": "[\\"显示器\\", \\"键盘\\"]", '
    '"notes": "靠窗", "floor_number": 3, "building": "总部大楼"}')


class SeedClient:
    """The seed's Vue client's HTTP calls: JSON bodies as bytes, a Bearer token."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url = http, url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: str | None = None
                   ) -> tuple[int, Any]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(method, self.url + path, headers=headers,
                                     data=None if body is None else body.encode()) as r:
            return r.status, await r.json()


@pytest.fixture
async def client(seed_node: NodeProcess) -> AsyncIterator[SeedClient]:
    async with aiohttp.ClientSession() as http:
        _, token = await login(http, seed_node.http_url, "seed000")
        yield SeedClient(http, seed_node.http_url, token)


async def _department(client: SeedClient, name: str) -> int:
    """The department the seed's body names, made through Tidings' organisation API."""
    status, dept = await client.call("POST", "/api/v1/org/departments",
                                     json.dumps({"name": name, "color": "#3b82f6"}))
    assert status == 201, dept
    return int(dept["id"])


async def test_seed_create_body_reaches_desks_and_map(client: SeedClient) -> None:
    # A fresh node: no department yet, so ?dept=Engineering names nothing.
    status, error = await client.call("GET", "/api/desks?dept=Engineering")
    assert (status, error["error"]["code"]) == (404, "DEPARTMENT_NOT_FOUND")

    dept = await _department(client, "Engineering")
    status, desk = await client.call("POST", "/api/workstations", SEED_CREATE_BODY % dept)
    assert status == 201, desk
    assert {k: desk[k] for k in ("name", "department_id", "employee_id", "x_position",
                                 "y_position", "width", "height", "status", "equipment",
                                 "notes", "floor_number", "building")} == {
        "name": "A区-001", "department_id": dept, "employee_id": None, "x_position": 120.5,
        "y_position": 80.25, "width": 120.0, "height": 80.0, "status": "available",
        "equipment": ["显示器", "键盘"], "notes": "靠窗", "floor_number": 3,
        "building": "总部大楼"}
    assert desk["workstation_id"] == "A区-001"  # §5.3.1's business id defaults to the name
    assert isinstance(desk["id"], int) and desk["created_at"].endswith("Z")

    status, listed = await client.call("GET", "/api/desks?dept=Engineering")
    assert status == 200 and [d["id"] for d in listed["workstations"]] == [desk["id"]]
    status, plan = await client.call("GET", "/api/map?dept=Engineering")
    assert status == 200 and [d["id"] for d in plan["workstations"]] == [desk["id"]]
    assert [(f["id"], f["number"]) for f in plan["floors"]] == [(desk["floor_id"], 3)]
    assert [b["name"] for b in plan["buildings"]] == ["总部大楼"]
    assert plan["departments"] == [{"id": dept, "name": "Engineering", "color": "#3b82f6"}]

    # The same body again: §5.3.1's workstation_id is unique.
    status, error = await client.call("POST", "/api/workstations", SEED_CREATE_BODY % dept)
    assert (status, error["error"]["code"]) == (409, "WORKSTATION_ID_TAKEN")


async def test_seed_workstation_api(client: SeedClient) -> None:
    dept = await _department(client, "Engineering")
    status, desk = await client.call("POST", "/api/workstations", SEED_CREATE_BODY % dept)
    assert status == 201, desk
    one = f"/api/workstations/{desk['id']}"

    status, page = await client.call("GET", "/api/workstations")
    assert status == 200 and page["total"] == 1 and page["workstations"][0]["id"] == desk["id"]
    status, page = await client.call("GET", "/api/workstations?page=2&limit=10")
    assert status == 200 and page["workstations"] == [] and page["total"] == 1
    status, found = await client.call("GET", "/api/workstations?status=available&building="
                                      "%E6%80%BB%E9%83%A8%E5%A4%A7%E6%A5%BC")
    assert [d["id"] for d in found["workstations"]] == [desk["id"]]
    status, got = await client.call("GET", one)
    assert status == 200 and got["workstation_id"] == "A区-001" and got["bookings"] == []

    # PUT with §7.2.1's columns, equipment as the seed's JSON string again.
    status, changed = await client.call("PUT", one, '{"status": "maintenance", "notes": '
                                        '"维修中", "equipment": "[\\"显示器\\"]", '
                                        '"floor_number": 4, "building": "总部大楼"}')
    assert status == 200, changed
    assert (changed["status"], changed["notes"], changed["equipment"], changed["floor_number"]) \
        == ("maintenance", "维修中", ["显示器"], 4)

    status, stats = await client.call("GET", "/api/workstations/stats")
    assert status == 200 and stats["total"] == 1 and stats["by_status"]["maintenance"] == 1

    status, health = await client.call("GET", "/api/health")
    assert status == 200 and health["status"] == "ok"
    status, synced = await client.call("POST", "/api/database/sync")
    assert status == 200 and synced["synced"] is True
    status, metrics = await client.call("GET", "/api/metrics")
    assert status == 200 and isinstance(metrics, dict) and metrics

    status, deleted = await client.call("DELETE", one)
    assert (status, deleted) == (200, {"deleted": desk["id"]})
    assert (await client.call("GET", one))[0] == 404


async def test_seed_tables_and_change_channels(client: SeedClient, store_url: str) -> None:
    """§7.2.1's raw INSERT and §4.1's LISTEN, on the seed's PostgreSQL."""
    if not store_url.startswith("postgresql"):
        pytest.skip("the seed's tables and LISTEN channels are PostgreSQL's")
    import asyncpg

    dept = await _department(client, "Engineering")
    heard: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    listener = await asyncpg.connect(store_url)
    writer = await asyncpg.connect(store_url)
    try:
        for channel in ("employee_changes", "department_changes", "workstation_changes"):
            await listener.add_listener(
                channel, lambda _c, _p, ch, payload: heard.put_nowait((ch, json.loads(payload))))

        desk_id = await writer.fetchval(
            "INSERT INTO workstations (name, department_id, employee_id, x_position, "
            "y_position, width, height, status, equipment, notes, floor_number, building) "
            "VALUES ('A区-002', $1, NULL, 300, 80, 120, 80, 'available', '[\"显示器\"]', "
            "'', 3, '总部大楼') RETURNING id", dept)
        channel, payload = await asyncio.wait_for(heard.get(), 10)
        assert channel == "workstation_changes"
        assert payload == {"operation": "INSERT", "table": "workstations", "id": desk_id,
                           "workstation_id": "A区-002", "status": "available"}

        await writer.execute("UPDATE workstations SET status = 'maintenance' WHERE id = $1",
                             desk_id)
        channel, payload = await asyncio.wait_for(heard.get(), 10)
        assert (channel, payload["operation"], payload["id"], payload["status"]) == \
            ("workstation_changes", "UPDATE", desk_id, "maintenance")

        employee = await writer.fetchval("INSERT INTO employees (name, email, department_id) "
                                         "VALUES ('张三', 'zhang@example.com', $1) RETURNING id",
                                         dept)
        assert await asyncio.wait_for(heard.get(), 10) == (
            "employee_changes", {"operation": "INSERT", "table": "employees", "id": employee})
        await writer.execute("UPDATE departments SET color = '#ef4444' WHERE id = $1", dept)
        assert await asyncio.wait_for(heard.get(), 10) == (
            "department_changes", {"operation": "UPDATE", "table": "departments", "id": dept})
    finally:
        await listener.close()
        await writer.close()

    # The row written straight into the table is a desk like any other.
    status, got = await client.call("GET", f"/api/workstations/{desk_id}")
    assert status == 200 and got["status"] == "maintenance"
    assert got["workstation_id"] == "A区-002" and got["equipment"] == ["显示器"]
    status, listed = await client.call("GET", "/api/desks?dept=Engineering")
    assert [d["id"] for d in listed["workstations"]] == [desk_id]
