"""Redis, the bus of a three-node cluster, goes away under traffic and comes back."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import Cluster
from tests.support.services import RedisServer
from tidings.client import ChatMessage, TidingsError

pytestmark = pytest.mark.slow


def health(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def cluster_redis() -> Iterator[RedisServer]:
    """Persistent (append-only file, fsync always): in the "redis" cluster it is also
    the store, whose acknowledged messages must survive the restart."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.mark.parametrize("cluster", ["redis", "redis-bus"], indirect=True)
async def test_a_redis_restart_under_traffic_loses_no_acknowledged_message(
        cluster: Cluster) -> None:
    assert cluster.redis is not None
    store_in_redis = cluster.env["TIDINGS_DATABASE_URL"].startswith("redis")
    _, alice_token = await cluster.register("alice")
    bob_id, bob_token = await cluster.register("bob")
    alice = await cluster.client(alice_token, 0, "alice")
    bob = await cluster.client(bob_token, 1, "bob")  # another node: only the bus links them
    acked: list[int] = []
    got: list[int] = []
    stop = asyncio.Event()

    refused: list[str] = []

    async def send() -> None:
        i = 0
        while not stop.is_set():
            try:
                acked.append((await alice.send_chat(bob_id, f"m{i}")).message_id)
            except TidingsError as exc:  # the store is down: not stored, send it again
                assert exc.code == "WS_INTERNAL_ERROR", exc
                refused.append(exc.code)
                await asyncio.sleep(0.2)
                continue
            i += 1
            await asyncio.sleep(0.01)

    async def receive() -> None:
        async for event in bob.events():
            if isinstance(event, ChatMessage):
                got.append(event.message_id)

    sender = asyncio.create_task(send())
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.sleep(1.0)
        cluster.redis.kill()  # no goodbye; the test's Redis keeps nothing on disk
        reports = []
        async with asyncio.timeout(15):
            while not reports or any(code != 503 for code, _ in reports):
                await asyncio.sleep(0.2)
                reports = [await asyncio.to_thread(health, n.http_url) for n in cluster.nodes]
        assert all(str(body["bus"]).startswith("error") for _, body in reports)
        during = len(acked)
        async with asyncio.timeout(15):
            if store_in_redis:  # chats are refused (and re-sent) while the store is away
                while not refused:
                    await asyncio.sleep(0.1)
            else:  # chats are still stored and acknowledged meanwhile
                while len(acked) <= during + 5:
                    await asyncio.sleep(0.1)
        cluster.redis.start()
        async with asyncio.timeout(20):
            while any(code != 200 for code, _ in reports):
                await asyncio.sleep(0.2)
                reports = [await asyncio.to_thread(health, n.http_url) for n in cluster.nodes]
        await asyncio.sleep(1.0)
        stop.set()
        await sender
        async with asyncio.timeout(30):
            while not set(acked) <= set(got):
                await asyncio.sleep(0.2)
        # Every acknowledged chat arrives, once, in order. A chat whose commit Redis ran
        # but could not confirm before it died was answered WS_INTERNAL_ERROR, and the
        # test then sent a new one: the first may arrive too, as an extra message.
        assert len(got) == len(set(got)) and got == sorted(got)
        extra = set(got) - set(acked)
        assert len(extra) <= len(refused)
    finally:
        stop.set()
        sender.cancel()
        receiver.cancel()
        if not cluster.redis.running:  # the module's other test needs it
            cluster.redis.start()
