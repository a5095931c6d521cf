"""Desk events reach a real Node socket.io-client v4 in the right rooms only:
caused by REST (SQLite and PostgreSQL), by raw SQL through psql, and by another node."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.desks.conftest import DeskNode, make_desk_node, of_type
from tests.support.server import RunningServer
from tests.support.services import PostgresServer

MESSAGE_FIELDS = {"type", "data", "timestamp", "messageId"}


@pytest.fixture
async def pg_nodes(postgres_server: PostgresServer
                   ) -> AsyncIterator[tuple[PostgresServer, str, list[RunningServer]]]:
    """A fresh PostgreSQL database and a list to start nodes on it into."""
    name = f"t_{secrets.token_hex(8)}"
    postgres_server.create_database(name)
    nodes: list[RunningServer] = []
    yield postgres_server, name, nodes
    for node in nodes:
        await node.stop()
    postgres_server.drop_database(name)


async def _start(url: str, nodes: list[RunningServer], **settings: Any) -> RunningServer:
    node = await RunningServer(url, **settings).start()
    nodes.append(node)
    return node


async def test_rest_change_reaches_its_floor_room_only(
        desks: DeskNode, socketio_client: Callable[..., Any]) -> None:
    floor1 = await socketio_client(desks.url, desks.tokens[0], {"floor": 1})
    floor2 = await socketio_client(desks.url, desks.tokens[1], {"floor": 2})

    status, _ = await desks.call("POST", "/api/workstations/2/occupy")
    assert status == 200
    event = await floor1.next(of_type("workstation_update", id=2))
    message = event["payload"]
    assert set(message) == MESSAGE_FIELDS and message["type"] == "workstation_update"
    assert message["data"]["status"] == "occupied" and message["data"]["floor_id"] == 1
    assert message["messageId"].startswith("msg_") and message["timestamp"].endswith("Z")

    # A change on floor 2 is the first desk event floor 2's client gets: it never
    # saw the floor-1 change that came before.
    await desks.call("POST", "/api/workstations/14/occupy")
    await floor2.next(of_type("workstation_update", id=14))
    assert not [e for e in floor2.seen if e["event"].startswith("workstation_")
                and e["payload"]["data"]["id"] != 14]
    assert not [e for e in floor1.seen if e["event"].startswith("workstation_")
                and e["payload"]["data"]["id"] == 14]


async def test_created_and_deleted_events_and_department_rooms(
        desks: DeskNode, socketio_client: Callable[..., Any]) -> None:
    design = await socketio_client(desks.url, desks.tokens[0], {"dept": "Design"})
    status, created = await desks.call("POST", "/api/workstations", json={
        "name": "Design-x", "x_position": 1, "y_position": 1, "department_id": 2})
    assert status == 201
    event = await design.next(of_type("workstation_created", id=created["id"]))
    assert event["payload"]["data"]["name"] == "Design-x"
    await desks.call("DELETE", f"/api/workstations/{created['id']}")
    event = await design.next(of_type("workstation_deleted", id=created["id"]))
    assert event["payload"]["data"]["deleted"] is True


async def test_moving_a_desk_tells_the_floor_it_left(
        desks: DeskNode, socketio_client: Callable[..., Any]) -> None:
    floor2 = await socketio_client(desks.url, desks.tokens[0], {"floor": 2})
    await desks.call("PUT", "/api/workstations/15", json={"floor_id": 1})
    event = await floor2.next(of_type("workstation_update", id=15))
    assert event["payload"]["data"]["floor_id"] == 1


async def test_bad_token_and_bad_rooms_are_refused(
        desks: DeskNode, socketio_client: Callable[..., Any]) -> None:
    refused = await socketio_client(desks.url, "tdg_" + "x" * 43, {"floor": 1}, joined=False)
    event = await refused.next(lambda e: e["event"] == "connect_error")
    assert event["data"] == {"code": "UNAUTHORIZED"}

    # A join naming no valid room gets an error ack and the client stays connected.
    for rooms, code in (({"floor": "one"}, "BAD_ROOM"), ({}, "BAD_ROOM"),
                        ({"dept": "Nowhere"}, "DEPARTMENT_NOT_FOUND")):
        client = await socketio_client(desks.url, desks.tokens[0], rooms, joined=False)
        event = await client.next(lambda e: e["event"] == "joined")
        assert event["ack"] == {"ok": False, "error": {"code": code, "message": event["ack"]
                                                       ["error"]["message"]}}, rooms


async def test_raw_sql_update_reaches_subscribers(
        pg_nodes: tuple[PostgresServer, str, list[RunningServer]],
        socketio_client: Callable[..., Any]) -> None:
    postgres, name, nodes = pg_nodes
    desks = await make_desk_node(await _start(postgres.url_for(name), nodes))
    floor1 = await socketio_client(desks.url, desks.tokens[0], {"floor": 1})
    floor2 = await socketio_client(desks.url, desks.tokens[1], {"floor": 2})

    postgres.psql("UPDATE workstations SET status = 'maintenance', notes = 'psql' "
                  "WHERE id = 3", database=name)
    event = await floor1.next(of_type("workstation_update", id=3), timeout=5)
    assert event["payload"]["data"]["status"] == "maintenance"
    assert event["payload"]["data"]["notes"] == "psql"

    postgres.psql("UPDATE workstations SET notes = 'sentinel' WHERE id = 13", database=name)
    await floor2.next(of_type("workstation_update", id=13), timeout=5)
    assert [e["payload"]["data"]["id"] for e in floor2.seen
            if e["event"].startswith("workstation_")] == [13]


async def test_change_through_one_node_reaches_clients_of_another(
        pg_nodes: tuple[PostgresServer, str, list[RunningServer]],
        socketio_client: Callable[..., Any]) -> None:
    postgres, name, nodes = pg_nodes
    url = postgres.url_for(name)
    writer = await make_desk_node(await _start(url, nodes))
    other = await _start(url, nodes)
    client = await socketio_client(other.http_url, writer.tokens[0], {"floor": 1})
    status, _ = await writer.call("POST", "/api/workstations/5/occupy")
    assert status == 200
    event = await client.next(of_type("workstation_update", id=5))
    assert event["payload"]["data"]["occupied_by"] == writer.user_ids[0]
