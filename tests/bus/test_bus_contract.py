"""The Bus contract, run against every backend: two buses on one URL are two nodes."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator, Callable, Iterator

import msgspec
import pytest

from tests.conftest import PostgresServer
from tidings.bus import (
    Bus,
    ChannelPresenceEvent,
    ChatEvent,
    Event,
    PublicationEvent,
    PushEvent,
    RevokeEvent,
    open_bus,
)
from tidings.bus.base import (
    ControlAnswer,
    ControlQuery,
    DeskChangeEvent,
    EditingEvent,
    ReplacedEvent,
)
from tidings.bus.wire import EventCodec
from tidings.metrics import Metrics
from tidings.store.base import StoredMessage
from tidings.store.channels import Publication

BUS_BACKENDS = ["memory", "redis", "postgres"]


@pytest.fixture(params=BUS_BACKENDS)
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "redis":
        yield request.getfixturevalue("redis_url")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield server.url


class Node:
    """A bus and what its handler received."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        self.gaps = 0
        self.arrived = asyncio.Event()

    def handle(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()

    def on_gap(self) -> None:
        self.gaps += 1

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events


@pytest.fixture
async def nodes(bus_url: str) -> AsyncIterator[Callable[[], typing.Awaitable[Node]]]:
    started: list[Node] = []

    async def start() -> Node:
        node = Node(open_bus(bus_url, node_id=f"n{len(started)}", metrics=Metrics()))
        await node.bus.start(node.handle, node.on_gap)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.bus.close()


def message(i: int, content: str = "hi") -> StoredMessage:
    return StoredMessage(id=i, sender_id=1, sender_device="d", recipient_id=2, type="text",
                         content=content, client_seq=i, status="sent", created_at=1000 + i)


async def test_every_node_receives_every_event_its_own_included(nodes, bus_url) -> None:
    a = await nodes()
    if bus_url == "memory://":
        await a.bus.publish(ChatEvent(message(1)))
        assert await a.wait_for(1) == [ChatEvent(message(1))]
        return
    b = await nodes()
    await a.bus.publish(ChatEvent(message(1)))
    await b.bus.publish(PushEvent([2, 3], 104, {"user_id": 2, "status": "online"}))
    for node in (a, b):
        got = await node.wait_for(2)
        assert sorted(got, key=lambda e: isinstance(e, PushEvent)) == [
            ChatEvent(message(1)), PushEvent([2, 3], 104, {"user_id": 2, "status": "online"})]


async def test_one_nodes_events_arrive_in_publish_order(nodes, bus_url) -> None:
    a = await nodes()
    b = a if bus_url == "memory://" else await nodes()
    for i in range(1, 301):
        await a.bus.publish(ChatEvent(message(i)))
    got = await b.wait_for(300)
    assert [e.message.id for e in got if isinstance(e, ChatEvent)] == list(range(1, 301))


async def test_publish_many_keeps_the_order_and_mixes_with_publish(nodes, bus_url) -> None:
    a = await nodes()
    b = a if bus_url == "memory://" else await nodes()
    await a.bus.publish_many([ChatEvent(message(i)) for i in range(1, 101)])
    await a.bus.publish(ChatEvent(message(101)))
    await a.bus.publish_many([ChatEvent(message(i)) for i in range(102, 201)])
    await a.bus.publish_many([])
    got = await b.wait_for(200)
    assert [e.message.id for e in got if isinstance(e, ChatEvent)] == list(range(1, 201))


async def test_an_event_larger_than_a_notify_payload_travels_whole(nodes, bus_url) -> None:
    # PostgreSQL refuses NOTIFY payloads over 8000 bytes: the bus spills them to a table.
    a = await nodes()
    b = a if bus_url == "memory://" else await nodes()
    big = ChatEvent(message(1, "x" * 50_000))
    await a.bus.publish(big)
    await a.bus.publish(ChatEvent(message(2)))
    assert await b.wait_for(2) == [big, ChatEvent(message(2))]


async def test_health_is_ok_once_started(nodes) -> None:
    a = await nodes()
    assert a.bus.health() == "ok"


def test_every_event_type_round_trips_through_the_wire_codec() -> None:
    # New members of the Event union travel without backend changes: the codec is
    # generic over the union. Build one instance of each member from its fields.
    codec = EventCodec("n")
    samples: dict[type, object] = {
        ChatEvent: ChatEvent(message(7, "héllo")),
        PushEvent: PushEvent([1], 104, {"user_id": 1, "status": "away", "list": [1, 2]}),
        RevokeEvent: RevokeEvent([3, 4]),
        ReplacedEvent: ReplacedEvent(5, ["node-1/c7"]),
        PublicationEvent: PublicationEvent(Publication("room:1", 5, "text", '{"a": 1}', 2,
                                                       "d", 1000)),
        ChannelPresenceEvent: ChannelPresenceEvent("room:1", "join", 2, "d"),
        EditingEvent: EditingEvent(["s1"], "takeover_request", {"request_id": "r", "n": 1}),
        DeskChangeEvent: DeskChangeEvent("UPDATE", 7, floor_id=2, old_floor_id=1, key="k"),
        ControlQuery: ControlQuery("q1", "node-1", "disconnect",
                                   {"user_id": 3, "code": 4000, "reason": "bye"}),
        ControlAnswer: ControlAnswer("q1", "node-1", "node-2",
                                     {"closed": 1, "connections": [{"key": "node-2/c1"}]}),
    }
    for member in typing.get_args(Event):
        event = samples.get(member)
        if event is None:
            pytest.fail(f"add a sample {member.__name__} to this test")
        envelope = codec.wrap(event)  # type: ignore[arg-type]
        assert codec.from_msgpack(codec.to_msgpack(envelope)).event == event
        assert codec.from_json(codec.to_json(envelope)).event == event


def test_garbage_on_the_wire_is_refused_by_the_codec() -> None:
    codec = EventCodec("n")
    with pytest.raises(msgspec.DecodeError):
        codec.from_msgpack(b"\xc1 not msgpack")
    with pytest.raises(msgspec.ValidationError):
        codec.from_json('["n", 1, 1.0, {"event": "no-such-event"}]')


async def test_garbage_published_by_a_stranger_is_dropped_and_delivery_goes_on(
        nodes, bus_url) -> None:
    if bus_url == "memory://":
        pytest.skip("nothing else can publish on the in-process bus")
    a = await nodes()
    if bus_url.startswith("redis"):
        import redis.asyncio as aioredis

        from tidings import keys
        client = aioredis.from_url(bus_url)
        await client.publish(keys.BUS_CHANNEL, b"garbage")
        await client.aclose()
    else:
        import asyncpg

        from tidings.bus.postgres import CHANNEL
        conn = await asyncpg.connect(bus_url)
        await conn.execute("SELECT pg_notify($1, 'garbage'), pg_notify($1, '@999999999')",
                           CHANNEL)
        await conn.close()
    await a.bus.publish(ChatEvent(message(1)))
    assert await a.wait_for(1) == [ChatEvent(message(1))]


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown bus URL scheme 'kafka'"):
        open_bus("kafka://x")


async def test_redis_bus_survives_a_redis_restart_and_reports_the_gap() -> None:
    from tests.support.services import RedisServer

    with RedisServer() as server:
        node = Node(open_bus(server.url, node_id="n", metrics=Metrics()))
        await node.bus.start(node.handle, node.on_gap)
        try:
            server.kill()
            await asyncio.sleep(0.3)
            assert node.bus.health().startswith("error")
            await node.bus.publish(ChatEvent(message(1)))  # queued while Redis is down
            server.start()
            async with asyncio.timeout(15):
                while node.gaps == 0 or node.bus.health() != "ok":
                    await asyncio.sleep(0.05)
            # Event 1 may have been sent before the subscription was made again, and
            # pub/sub keeps nothing: that is what the gap report is for.
            await node.bus.publish(ChatEvent(message(2)))
            async with asyncio.timeout(10):
                while ChatEvent(message(2)) not in node.events:
                    await node.wait_for(len(node.events) + 1)
        finally:
            await node.bus.close()


async def test_postgres_bus_listens_again_after_its_connection_is_killed(
        postgres_server: PostgresServer) -> None:
    import asyncpg

    node = Node(open_bus(postgres_server.url, node_id="n", metrics=Metrics()))
    await node.bus.start(node.handle, node.on_gap)
    try:
        admin = await asyncpg.connect(postgres_server.url)
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'")
        await admin.close()
        async with asyncio.timeout(15):
            while node.gaps == 0:
                await asyncio.sleep(0.05)
        await node.bus.publish(ChatEvent(message(2)))
        assert [e.message.id for e in await node.wait_for(1)] == [2]  # type: ignore[union-attr]
    finally:
        await node.bus.close()
