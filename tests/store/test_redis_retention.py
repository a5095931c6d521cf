"""Seed 004's message retention on the Redis store (``stream_retention``): the trim
itself, in process, and the job that runs it; the seed-level test is
tests/seeds/test_seed004.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tidings import keys
from tidings.store.base import NewMessage
from tidings.store.redis import RedisStore
from tidings.store.retention import RetentionJob


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_url)
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


def chat(sender: int, recipient: int, text: str, seq: int = 0) -> NewMessage:
    return NewMessage(sender, "desk", recipient, "text", text, seq)


async def test_trim_drops_what_is_older_than_the_cutoff_and_nothing_else(store) -> None:
    alice = await store.create_user("alice", "!")
    bob = await store.create_user("bob", "!")
    old = await store.append_messages([chat(alice.id, bob.id, "old", seq=1),
                                       chat(bob.id, alice.id, "old reply")])
    await asyncio.sleep(0.01)
    cutoff = int(time.time() * 1000)
    await asyncio.sleep(0.01)
    new = await store.append_messages([chat(alice.id, bob.id, "new", seq=2)])
    old_ids = [r.message.id for r in old]
    trimmed = await store.trim_messages(cutoff)
    # both inboxes and the conversation held the two old messages
    assert trimmed == 6
    kept = await store.messages_for_device(bob.id, "phone", 0, 100)
    assert [m.id for m in kept] == [new[0].message.id]
    assert await store.get_message(old_ids[0]) is None
    assert [m.id for m in await store.history(alice.id, bob.id, None, 10)] == [
        new[0].message.id]
    assert await store.redis.zcard(keys.undelivered(bob.id)) == 1
    # the idempotency key of a trimmed message is gone: the same seq is a new message
    again = await store.append_messages([chat(alice.id, bob.id, "old", seq=1)])
    assert again[0].duplicate is False and again[0].message.id not in old_ids
    assert await store.trim_messages(cutoff) == 0  # idempotent


async def test_nothing_to_trim_before_the_first_message(store) -> None:
    assert await store.trim_messages(int(time.time() * 1000)) == 0


async def test_the_job_trims_on_its_own(store) -> None:
    alice = await store.create_user("alice", "!")
    await store.append_messages([chat(alice.id, alice.id, "note to self")])
    job = RetentionJob(store, retention=0.05, interval=0.05)
    await asyncio.sleep(0.1)
    job.start()
    try:
        async with asyncio.timeout(10):
            while await store.redis.xlen(keys.inbox(alice.id)):
                await asyncio.sleep(0.05)
    finally:
        await job.close()
    assert await job.run_once() == 0
