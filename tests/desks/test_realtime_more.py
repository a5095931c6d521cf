"""More of the desk feed: rooms given in the handshake, leave, query-string tokens
(python-socketio's own client), employee and department events from raw SQL, and a
change feed that survives losing its PostgreSQL connection."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.desks.conftest import DeskNode, make_desk_node, settle
from tests.support.server import RunningServer
from tests.support.services import PostgresServer


class Listener:
    """A python-socketio client that records every desk event."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.client.on("*", self._any)

    async def _any(self, event: str, data: Any = None) -> None:
        await self.events.put((event, data))

    async def next(self, name: str, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                event, data = await self.events.get()
                if event == name:
                    return data


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for listener in made:
        await listener.client.disconnect()


@pytest.fixture
async def pg(postgres_server: PostgresServer) -> AsyncIterator[tuple[DeskNode, str]]:
    name = f"t_{secrets.token_hex(8)}"
    node = await RunningServer(postgres_server.create_database(name)).start()
    try:
        yield await make_desk_node(node), name
    finally:
        await node.stop()
        postgres_server.drop_database(name)


async def test_rooms_in_the_handshake_and_leave(desks: DeskNode,
                                                listeners: list[Listener]) -> None:
    listener = Listener()
    listeners.append(listener)
    await listener.client.connect(desks.url, auth={"token": desks.tokens[0], "floor": [1, 2],
                                                   "dept": "Design"})
    ack = await listener.next("connection_ack")
    assert ack["data"] == {"userId": desks.user_ids[0],
                           "rooms": ["floor:1", "floor:2", "dept:2"]}
    await desks.call("POST", "/api/workstations/13/occupy")
    assert (await listener.next("workstation_update"))["data"]["id"] == 13

    answer = await listener.client.call("leave", {"floor": [1, 2], "dept": 2})
    assert answer == {"ok": True, "rooms": ["floor:1", "floor:2", "dept:2"]}
    assert (await listener.client.call("leave", "floor 1"))["error"]["code"] == "BAD_ROOM"
    await listener.client.call("join", {"floor": 2})
    await desks.call("POST", "/api/workstations/1/occupy")   # floor 1: not for us any more
    await desks.call("POST", "/api/workstations/14/occupy")  # floor 2
    assert (await listener.next("workstation_update"))["data"]["id"] == 14


async def test_token_in_the_query_string_and_bad_rooms_at_connect(
        desks: DeskNode, listeners: list[Listener]) -> None:
    listener = Listener()
    listeners.append(listener)
    await listener.client.connect(f"{desks.url}?token={desks.tokens[1]}",
                                  auth={"floor": "first"})
    error = await listener.next("error")
    assert error["data"]["code"] == "BAD_ROOM"
    assert (await listener.next("connection_ack"))["data"]["rooms"] == []
    too_many = {"floor": list(range(1, 102))}
    assert (await listener.client.call("join", too_many))["error"]["code"] == "TOO_MANY_ROOMS"

    refused = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(desks.url)  # no token at all


async def test_employee_and_department_changes_reach_the_department(
        pg: tuple[DeskNode, str], postgres_server: PostgresServer,
        listeners: list[Listener]) -> None:
    desks, name = pg
    listener = Listener()
    listeners.append(listener)
    await listener.client.connect(desks.url, auth={"token": desks.tokens[0], "dept": 3})
    await listener.next("connection_ack")
    postgres_server.psql("UPDATE employees SET email = 'new@example.com' "
                         "WHERE id = (SELECT min(id) FROM employees WHERE department_id = 3)",
                         database=name)
    employee = await listener.next("employee_update", timeout=5)
    assert employee["data"]["email"] == "new@example.com"
    postgres_server.psql("UPDATE departments SET color = '#000000' WHERE id = 3", database=name)
    department = await listener.next("department_update", timeout=5)
    assert department["data"] == {"action": "updated", "id": 3, "name": "Marketing",
                                  "color": "#000000"}


async def test_change_feed_reconnects_after_losing_its_connection(
        pg: tuple[DeskNode, str], postgres_server: PostgresServer,
        listeners: list[Listener]) -> None:
    desks, name = pg
    feed = desks.node.node.desks.feed
    assert feed is not None and feed.connected
    listener = Listener()
    listeners.append(listener)
    await listener.client.connect(desks.url, auth={"token": desks.tokens[0], "floor": 1})
    await listener.next("connection_ack")
    # Kill the listening backend as an administrator or a network fault would.
    postgres_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE query LIKE 'LISTEN%'", database=name)
    async with asyncio.timeout(10):
        while feed.connected:
            await asyncio.sleep(0.05)
        while not feed.connected:
            await asyncio.sleep(0.05)
    postgres_server.psql("UPDATE workstations SET notes = 'after' WHERE id = 2", database=name)
    assert (await listener.next("workstation_update", timeout=5))["data"]["notes"] == "after"
    postgres_server.psql("NOTIFY tidings_desks, 'not json'", database=name)
    await settle(desks.node)
    assert feed.malformed == 1


async def test_revoking_a_token_disconnects_its_socketio_clients(
        desks: DeskNode, listeners: list[Listener]) -> None:
    revoked, kept = Listener(), Listener()
    listeners += [revoked, kept]
    gone = asyncio.Event()
    revoked.client.on("disconnect", lambda *_: gone.set())
    await revoked.client.connect(desks.url, auth={"token": desks.tokens[0], "floor": 1})
    await kept.client.connect(desks.url, auth={"token": desks.tokens[1], "floor": 1})
    await revoked.next("connection_ack")
    await kept.next("connection_ack")
    _, current = await desks.call("GET", "/api/v1/tokens/current")
    status, body = await desks.call("DELETE", f"/api/v1/tokens/{current['id']}")
    assert (status, body) == (200, {"revoked": [current["id"]]})
    await asyncio.wait_for(gone.wait(), 5)
    await desks.call("POST", "/api/workstations/2/occupy", who=1)  # the other stays live
    assert (await kept.next("workstation_update"))["data"]["id"] == 2
