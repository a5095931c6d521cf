"""The Registry contract, on every backend: two registries on one URL are two nodes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.conftest import PostgresServer
from tidings.cluster import Registry, open_registry

REGISTRY_BACKENDS = ["memory", "redis", "postgres"]
TIMEOUT = 1.0  # node_timeout, seconds: short so that a lapsed lease is quick to see


@pytest.fixture(params=REGISTRY_BACKENDS)
def cluster_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "redis":
        yield request.getfixturevalue("redis_url")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = f"reg_{secrets.token_hex(6)}"
        url = server.create_database(name)
        yield url
        server.drop_database(name)


Factory = Callable[[str], Awaitable[Registry]]


@pytest.fixture
async def registries(cluster_url: str) -> AsyncIterator[Factory]:
    started: list[Registry] = []

    async def start(node_id: str) -> Registry:
        registry = open_registry(cluster_url, node_id=node_id, address=f"127.0.0.1:{node_id}",
                                 node_timeout=TIMEOUT)
        await registry.start()
        started.append(registry)
        return registry

    yield start
    for registry in started:
        with contextlib.suppress(Exception):  # some are closed by the test already
            await registry.close()


def is_memory(url: str) -> bool:
    return url == "memory://"


async def test_the_connection_limit_holds_across_nodes(registries, cluster_url) -> None:
    a = await registries("a")
    b = a if is_memory(cluster_url) else await registries("b")
    assert (await a.claim(7, "c1", 3)).live_before == 0
    # The same local id on another node is another connection.
    assert (await b.claim(7, "c1b" if a is b else "c1", 3)).granted
    third = await a.claim(7, "c2", 3)
    assert third.granted and third.live_before == 2
    refused = await b.claim(7, "c3", 3)
    assert not refused.granted and refused.live_before == 3
    assert await a.release(7, "c2") == 2
    assert (await b.claim(7, "c3", 3)).granted


async def test_online_means_a_connection_on_any_node(registries, cluster_url) -> None:
    a = await registries("a")
    b = a if is_memory(cluster_url) else await registries("b")
    await a.claim(1, "c1", 3)
    await b.claim(2, "c1", 3)
    assert await a.online([1, 2, 3]) == {1, 2}
    assert await b.online([]) == set()
    assert await b.release(2, "c1") == 0
    assert await a.online([1, 2]) == {1}


async def test_a_chosen_status_is_shared_and_cleared_with_the_last_connection(
        registries, cluster_url) -> None:
    a = await registries("a")
    b = a if is_memory(cluster_url) else await registries("b")
    await a.claim(1, "c1", 3)
    await a.choose(1, "away")
    assert await b.chosen([1, 2]) == {1: "away"}
    await b.choose(1, None)
    assert await a.chosen([1]) == {}
    await a.choose(1, "away")
    await a.release(1, "c1")
    assert await b.chosen([1]) == {}


async def test_a_dead_nodes_users_go_offline_and_are_reaped_once(registries, cluster_url
                                                                  ) -> None:
    if is_memory(cluster_url):
        a = await registries("a")
        assert await a.reap() == []
        return
    dead = await registries("dead")
    a = await registries("a")
    b = await registries("b")
    await dead.claim(5, "c1", 3)
    await dead.claim(6, "c2", 3)
    await a.claim(6, "c9", 3)  # user 6 also holds a connection on a live node
    await asyncio.sleep(TIMEOUT + 0.2)
    await a.heartbeat(lambda: {"c9": (6, "")})
    await b.heartbeat(dict)
    # The lease lapsed: user 5 no longer counts as online, even before any reaping.
    assert await a.online([5, 6]) == {6}
    reaped = await asyncio.gather(a.reap(), b.reap())
    assert sorted(reaped[0] + reaped[1]) == [5]  # exactly one reaper announces user 5
    assert [n.node_id for n in await a.nodes()] == ["a", "b"]


async def test_a_node_reaped_while_cut_off_registers_its_connections_again(
        registries, cluster_url) -> None:
    if is_memory(cluster_url):
        pytest.skip("a single node cannot be cut off")
    slow = await registries("slow")
    other = await registries("other")
    await slow.claim(5, "c1", 1)
    await asyncio.sleep(TIMEOUT + 0.2)
    await other.heartbeat(dict)
    assert await other.reap() == [5]
    assert (await other.claim(5, "c2", 1)).granted  # the slot looked free meanwhile
    await other.release(5, "c2")
    await slow.heartbeat(lambda: {"c1": (5, "")})  # back: its connection counts again
    assert await other.online([5]) == {5}
    assert not (await other.claim(5, "c3", 1)).granted


async def test_heartbeat_drops_entries_a_failed_release_left_behind(registries, cluster_url
                                                                    ) -> None:
    if is_memory(cluster_url):
        pytest.skip("the memory registry is the hub's own state")
    a = await registries("a")
    await a.claim(5, "c1", 3)
    a.settled("c1")
    await a.heartbeat(dict)  # the node holds no connection any more
    assert await a.online([5]) == set()


async def test_heartbeat_keeps_an_entry_claimed_but_not_yet_in_the_hub(registries) -> None:
    """The cluster presence flake: a heartbeat between a claim and the hub holding the
    connection (or between the hub letting go and the release) dropped the entry as
    stale, so the release found none and the user's offline was never announced."""
    a = await registries("a")
    await a.claim(5, "c1", 3)
    await a.heartbeat(dict)  # the hub does not report c1 yet: it is not stale
    assert await a.online([5]) == {5}
    a.settled("c1")
    await a.heartbeat(lambda: {"c1": (5, "")})
    assert await a.release(5, "c1") == 0  # its last connection: the caller announces offline
    assert await a.online([5]) == set()


async def test_nodes_lists_live_nodes_with_their_heartbeat(registries, cluster_url) -> None:
    a = await registries("a")
    await a.claim(1, "c1", 3)
    await a.heartbeat(lambda: {"c1": (1, "")})
    [node] = [n for n in await a.nodes() if n.node_id == "a"]
    assert node.address == "127.0.0.1:a" and node.connections == 1
    assert node.last_heartbeat >= node.started_at > 0
    await a.close()
    if not is_memory(cluster_url):
        b = await registries("b")
        assert [n.node_id for n in await b.nodes()] == ["b"]


async def test_a_burst_of_logins_is_answered_not_refused(registries) -> None:
    # A reconnect storm sends hundreds of claims at once; more than the client
    # library's connection pool holds must wait for a connection, not fail.
    a = await registries("a")
    claims = await asyncio.gather(*(a.claim(1000 + i, f"c{i}", 3) for i in range(400)))
    assert all(c.granted and c.live_before == 0 for c in claims)


async def test_a_device_that_connects_again_replaces_its_entry_on_any_node(
        registries, cluster_url) -> None:
    a = await registries("a")
    b = a if is_memory(cluster_url) else await registries("b")
    assert (await a.claim(7, "c1", 1, device_id="phone")).granted
    # The phone reconnects (to another node, where there are several): with a limit of 1
    # its old entry would refuse it; it replaces that entry instead.
    again = await b.claim(7, "c2", 1, device_id="phone")
    assert again.granted and again.live_before == 1  # online before: not a first connection
    assert again.replaced == (a.key("c1"),)
    assert await a.online([7]) == {7}
    assert await a.release(7, "c1") is None  # replaced: its end announces nothing
    assert await b.release(7, "c2") == 0  # the user's last connection: offline, once
    assert await a.online([7]) == set()


async def test_a_reconnecting_device_does_not_count_but_other_devices_do(
        registries, cluster_url) -> None:
    a = await registries("a")
    b = a if is_memory(cluster_url) else await registries("b")
    for i in range(3):
        assert (await a.claim(8, f"c{i}", 3, device_id=f"d{i}")).granted
    moved = await b.claim(8, "m1", 3, device_id="d1")
    assert moved.granted and moved.live_before == 3 and moved.replaced == (a.key("c1"),)
    refused = await b.claim(8, "m9", 3, device_id="d9")  # a fourth device
    assert not refused.granted and refused.live_before == 3 and refused.replaced == ()
    # A refused claim replaces nothing, and connections without a device replace nothing.
    assert await a.release(8, "c0") == 2
    assert (await b.claim(8, "n1", 3)).replaced == ()
    assert not (await b.claim(8, "n2", 3)).granted
    assert await a.online([8]) == {8}


async def test_a_killed_nodes_entry_of_the_device_is_replaced_before_its_lease_ends(
        registries, cluster_url) -> None:
    if is_memory(cluster_url):
        pytest.skip("a single node cannot be killed under itself")
    killed = await registries("killed")
    a = await registries("a")
    await killed.claim(5, "c1", 3, device_id="phone")
    await killed.claim(5, "c2", 3, device_id="laptop")
    await killed.claim(5, "c3", 3, device_id="tablet")
    # The node is SIGKILLed: no release, its lease runs on. Each device moves to node a.
    for conn, device in (("m1", "phone"), ("m2", "laptop"), ("m3", "tablet")):
        moved = await a.claim(5, conn, 3, device_id=device)
        assert moved.granted and moved.replaced == (f"killed/c{conn[1]}",)
    assert not (await a.claim(5, "m4", 3, device_id="watch")).granted
    await asyncio.sleep(TIMEOUT + 0.2)
    await a.heartbeat(lambda: {"m1": (5, "phone"), "m2": (5, "laptop"),
                               "m3": (5, "tablet")})
    assert await a.reap() == []  # the user never went offline: nothing to announce
    assert await a.online([5]) == {5}
    assert (await a.claim(5, "m5", 3, device_id="phone")).replaced == (a.key("m1"),)


async def test_a_connection_registered_again_by_heartbeat_keeps_its_device(
        registries, cluster_url) -> None:
    if is_memory(cluster_url):
        pytest.skip("a single node cannot be cut off")
    slow = await registries("slow")
    other = await registries("other")
    await slow.claim(5, "c1", 1, device_id="phone")
    await asyncio.sleep(TIMEOUT + 0.2)
    await other.heartbeat(dict)
    assert await other.reap() == [5]
    await slow.heartbeat(lambda: {"c1": (5, "phone")})  # back, and registered again
    assert not (await other.claim(5, "c2", 1, device_id="laptop")).granted
    moved = await other.claim(5, "c2", 1, device_id="phone")
    assert moved.granted and moved.replaced == ("slow/c1",)
    await slow.heartbeat(dict)  # the replaced connection closed on its node
    assert await other.online([5]) == {5}


async def test_a_release_during_a_heartbeat_leaves_no_entry_behind(
        registries, cluster_url) -> None:
    """The heartbeat reads the hub's connections, then writes the entries missing from
    the registry. A connection the hub let go of in between, whose release completed
    before that write, was written back: a ghost entry that counted against its user's
    limit until the next beat (a device reconnecting then could be refused with
    WS_TOO_MANY_CONNECTIONS; tests/cluster/test_same_device.py under load). The order
    is forced on PostgreSQL: the heartbeat's writes wait behind a table lock that the
    release's statements do not need."""
    if "postgres" not in cluster_url:
        pytest.skip("the interleaving is forced with a PostgreSQL table lock")
    import asyncpg

    a, b = await registries("a"), await registries("b")
    await a.claim(5, "c1", 3, device_id="phone")
    a.settled("c1")
    await a.heartbeat(lambda: {"c1": (5, "phone")})
    # The phone connects again on node b: its entry on a is replaced (deleted), while a's
    # hub still holds the old connection until the 4409 close reaches it.
    assert (await b.claim(5, "k1", 3, device_id="phone")).replaced == ("a/c1",)
    locker = await asyncpg.connect(cluster_url)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE tidings_nodes IN EXCLUSIVE MODE")  # reads pass
        releases: list[asyncio.Future[int | None]] = []

        def snapshot() -> dict[str, tuple[int, str]]:
            # a's hub still holds c1 at this instant, and lets go of it right after
            # (the 4409 close), releasing it.
            releases.append(asyncio.ensure_future(a.release(5, "c1")))
            return {"c1": (5, "phone")}

        beat = asyncio.ensure_future(a.heartbeat(snapshot))
        async with asyncio.timeout(10):
            while not releases or not releases[0].done():  # done while the beat waits
                await asyncio.sleep(0.01)
        assert not beat.done()
        await lock.rollback()
        await beat
    finally:
        await locker.close()
    # Only k1 counts: a limit of 2 leaves room for another device (a ghost of c1 took it).
    assert (await b.claim(5, "k2", 2, device_id="laptop")).granted
