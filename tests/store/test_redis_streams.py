"""Seed 004's four tests: the offline queue in Redis Streams, driven over /ws.

A node runs on the Redis store; each device's sync state is
``client:sync:{user_id}:{device_id}`` with a TTL, and recovery is an XRANGE of the
user's inbox stream after the device's last id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings import keys
from tidings.protocol.codes import MsgType

_senders = itertools.count()


@pytest.fixture
async def node(redis_url: str) -> AsyncIterator[RunningServer]:
    server = await RunningServer(redis_url + "?sync_state_ttl=3", apps_enabled=False).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def ack(wire: Wire, message_id: int) -> None:
    await wire.send(MsgType.ACK, {"message_id": message_id, "status": "delivered"})


async def wait_for_sync_state(raw: aioredis.Redis, user: int, device: str,
                              last: int) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            data = await raw.get(keys.client_sync(user, device))
            if data is not None and json.loads(data)["last_message_id"] == last:
                return dict(json.loads(data))
            await asyncio.sleep(0.02)


async def send(node: RunningServer, http: aiohttp.ClientSession, token: str, to: int,
               texts: list[str]) -> list[int]:
    # A fresh device each time: Wire numbers seqs from 1, and a device's seq is unique.
    wire = await Wire.ready(http, node.ws_url, token, f"sender-{next(_senders)}")
    ids = [(await wire.chat(to, text))["message_id"] for text in texts]
    await wire.close()
    return ids


async def test_first_connection_with_no_previous_state(node, raw) -> None:
    _, alice = await node.quick_user()
    bob_id, bob = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        sent = await send(node, http, alice, bob_id, ["a", "b"])
        assert await raw.get(keys.client_sync(bob_id, "phone")) is None  # no state yet
        wire = await Wire.ready(http, node.ws_url, bob, "phone")
        # No state means "from the start" ("0"): the whole stream is recovered.
        assert [m["message_id"] for m in wire.replayed] == sent
        await ack(wire, sent[-1])
        state = await wait_for_sync_state(raw, bob_id, "phone", sent[-1])
        assert (state["user_id"], state["device_id"]) == (bob_id, "phone")
        await wire.close()


async def test_basic_offline_online_cycle(node, raw) -> None:
    _, alice = await node.quick_user()
    bob_id, bob = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        wire = await Wire.ready(http, node.ws_url, bob, "phone")
        before = await send(node, http, alice, bob_id, ["online 1", "online 2"])
        for _ in before:
            await wire.expect(MsgType.CHAT_PUSH)
        await ack(wire, before[-1])
        await wait_for_sync_state(raw, bob_id, "phone", before[-1])
        await wire.close()
        offline = await send(node, http, alice, bob_id, ["while away 1", "while away 2"])
        # The stream holds everything; the device's state says where it stopped.
        assert await raw.xlen(keys.inbox(bob_id)) == 4
        again = await Wire.ready(http, node.ws_url, bob, "phone")
        assert [m["message_id"] for m in again.replayed] == offline
        assert [m["content"] for m in again.replayed] == ["while away 1", "while away 2"]
        await again.close()


async def test_several_devices_of_one_user_recover_independently(node, raw) -> None:
    _, alice = await node.quick_user()
    bob_id, bob = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        first = await send(node, http, alice, bob_id, ["1", "2", "3"])
        phone = await Wire.ready(http, node.ws_url, bob, "phone")
        await ack(phone, first[1])  # the phone confirmed two of three
        await wait_for_sync_state(raw, bob_id, "phone", first[1])
        await phone.close()
        laptop = await Wire.ready(http, node.ws_url, bob, "laptop")
        await ack(laptop, first[2])  # the laptop all three
        await wait_for_sync_state(raw, bob_id, "laptop", first[2])
        await laptop.close()
        later = await send(node, http, alice, bob_id, ["4"])
        phone = await Wire.ready(http, node.ws_url, bob, "phone")
        laptop = await Wire.ready(http, node.ws_url, bob, "laptop")
        assert [m["message_id"] for m in phone.replayed] == [first[2], *later]
        assert [m["message_id"] for m in laptop.replayed] == later
        await phone.close()
        await laptop.close()


async def test_sync_state_is_persisted_with_a_ttl(node, raw, redis_url) -> None:
    _, alice = await node.quick_user()
    bob_id, bob = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        sent = await send(node, http, alice, bob_id, ["x"])
        wire = await Wire.ready(http, node.ws_url, bob, "phone")
        await ack(wire, sent[0])
        state = await wait_for_sync_state(raw, bob_id, "phone", sent[0])
        ttl = await raw.ttl(keys.client_sync(bob_id, "phone"))
        assert 0 < ttl <= 3  # this node: sync_state_ttl=3 s (default 30 days)
        assert state["last_sync_at"] > 0
        await wire.close()
        # Persisted: another node (a new process would do the same) reads it back.
        other = await RunningServer(redis_url, apps_enabled=False).start()
        try:
            again = await Wire.ready(http, other.ws_url, bob, "phone")
            assert again.replayed == []
            await again.close()
        finally:
            await other.stop()
        # Expired: the device starts again from "0" (and drops the ids it has seen).
        async with asyncio.timeout(10):
            while await raw.exists(keys.client_sync(bob_id, "phone")):
                await asyncio.sleep(0.2)
        again = await Wire.ready(http, node.ws_url, bob, "phone")
        assert [m["message_id"] for m in again.replayed] == sent
        await again.close()


def test_the_default_ttl_is_thirty_days() -> None:
    from tidings.store.redis import SYNC_STATE_TTL, RedisStore

    assert SYNC_STATE_TTL == 30 * 86400
    assert RedisStore("redis://127.0.0.1:1/0")._ttl == SYNC_STATE_TTL
    assert RedisStore("redis://127.0.0.1:1/0?sync_state_ttl=60")._ttl == 60
