"""Delivery acks of many connections are stored together, each caller its receipts."""

from __future__ import annotations

import asyncio

import pytest

from tidings.hub.acks import AckWriter
from tidings.store.base import NewMessage, Receipt
from tidings.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "acks.db"))
    await s.migrate()
    yield s
    await s.close()


async def test_concurrent_acks_share_writes_and_get_their_own_receipts(store):
    users = [await store.create_user(f"u{n}", "!") for n in range(41)]
    sender, recipients = users[0], users[1:]
    results = await store.append_messages([
        NewMessage(sender.id, "s", r.id, "text", f"to {r.id}", 0) for r in recipients])
    calls: list[int] = []
    real = store.store_acks

    async def counting(acks):
        calls.append(len(acks))
        return await real(acks)

    store.store_acks = counting
    writer = AckWriter(store)
    got = await asyncio.gather(*(writer.store(r.id, "phone", res.message.id)
                                 for r, res in zip(recipients, results, strict=True)))
    assert got == [[Receipt(res.message.id, sender.id)] for res in results]
    assert sum(calls) == 40 and len(calls) <= 3
    for r, res in zip(recipients, results, strict=True):
        assert await store.get_cursor(r.id, "phone") == res.message.id


async def test_a_failing_ack_does_not_fail_its_neighbours(store):
    user = await store.create_user("u", "!")
    real = store.store_acks

    async def picky(acks):
        if any(device == "bad" for _, device, _ in acks):
            raise OSError("bad device")
        return await real(acks)

    store.store_acks = picky
    writer = AckWriter(store)
    good, bad = await asyncio.gather(writer.store(user.id, "good", 5),
                                     writer.store(user.id, "bad", 5), return_exceptions=True)
    assert good == [] and isinstance(bad, OSError)
    assert await store.get_cursor(user.id, "good") == 5
