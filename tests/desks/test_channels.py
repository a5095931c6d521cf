"""The desk events on the native /ws protocol: publications in channels
``desks:floor:<id>`` and ``desks:dept:<id>``, once each even with several nodes."""

from __future__ import annotations

import secrets

import aiohttp

from tests.channels.helpers import Channels, Refused
from tests.desks.conftest import DeskNode, make_desk_node, settle
from tests.support.server import RunningServer
from tests.support.services import PostgresServer
from tests.support.wire import Wire


async def _subscriber(http: aiohttp.ClientSession, node: RunningServer, token: str,
                      channel: str) -> Channels:
    channels = Channels(await Wire.ready(http, node.ws_url, token))
    await channels.subscribe(channel)
    return channels


async def test_rest_changes_are_published_to_floor_and_department_channels(
        desks: DeskNode, http: aiohttp.ClientSession) -> None:
    floor1 = await _subscriber(http, desks.node, desks.tokens[0], "desks:floor:1")
    floor2 = await _subscriber(http, desks.node, desks.tokens[0], "desks:floor:2")
    engineering = await _subscriber(http, desks.node, desks.tokens[1], "desks:dept:1")

    await desks.call("POST", "/api/workstations/1/occupy")   # Engineering-001, floor 1
    [got] = await floor1.until(1)  # live only: not the demo's 12 workstation_created
    assert got["channel"] == "desks:floor:1" and got["type"] == "workstation_update"
    message = got["data"]
    assert set(message) == {"type", "data", "timestamp", "messageId"}
    assert message["data"]["id"] == 1 and message["data"]["status"] == "occupied"
    [same] = await engineering.until(1)
    assert same["data"]["messageId"] == message["messageId"]

    await desks.call("POST", "/api/workstations/14/occupy")  # floor 2
    [other] = await floor2.until(1)
    assert other["data"]["data"]["id"] == 14
    await floor1.quiet()
    assert len(floor1.received) == 1  # floor 1 never saw desk 14


async def test_clients_may_not_publish_desk_events(desks: DeskNode,
                                                   http: aiohttp.ClientSession) -> None:
    channels = Channels(await Wire.ready(http, desks.node.ws_url, desks.tokens[0]))
    try:
        await channels.publish("desks:floor:1", {"type": "workstation_update"})
    except Refused as exc:
        assert exc.code == "WS_PERMISSION_DENIED"
    else:
        raise AssertionError("a client published to desks:floor:1")


async def test_raw_sql_change_is_published_once_with_two_nodes(
        postgres_server: PostgresServer, http: aiohttp.ClientSession) -> None:
    name = f"t_{secrets.token_hex(8)}"
    url = postgres_server.create_database(name)
    first = await RunningServer(url).start()
    second = await RunningServer(url).start()
    try:
        desks = await make_desk_node(first)
        await settle(second)
        subscriber = await _subscriber(http, second, desks.tokens[0], "desks:floor:1")
        postgres_server.psql("UPDATE workstations SET status = 'disabled' WHERE id = 4",
                             database=name)
        [got] = await subscriber.until(1)
        assert got["data"]["data"]["status"] == "disabled"
        await settle(first)
        await settle(second)
        await subscriber.quiet(0.5)
        assert len(subscriber.received) == 1  # both nodes published it; it is stored once
        status, history = await desks.call("GET", "/api/v1/channels/desks:floor:1/history")
        assert status == 200, history
        # The demo's 12 desks of floor 1 were created, then desk 4 changed: each once
        # (the organisation's own events, building_update and friends, come too).
        events = [(p["type"], p["data"]["data"]["id"]) for p in history["publications"]]
        assert [e for e in events if e[0].startswith("workstation_")] == \
            [("workstation_created", i) for i in range(1, 13)] + [("workstation_update", 4)]
        assert len(events) == len(set(events))
    finally:
        await second.stop()
        await first.stop()
        postgres_server.drop_database(name)
