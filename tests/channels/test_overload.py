"""Overload: a flood of publications paces (or refuses) publishers; it never cuts
healthy subscribers. Only a subscriber that is slow on its own is closed (4413).

Nothing here is timed on absolute speed: the node is made to overflow with a small
outbox (``send_queue_size=10``) and short history, and every wait is condition-based.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.channels.helpers import Channels, Refused
from tests.hostile.rawws import RawSocket
from tests.support.wire import Wire
from tidings.channels import broker as broker_module
from tidings.channels.namespaces import Namespace
from tidings.protocol.codes import MsgType

FLOOD = 100  # publications a round
PAYLOAD = "x" * 8000  # ~8 KB a publication: the stalled socket's buffers fill


async def _stalled_subscriber(node: Any, token: str, channel: str) -> RawSocket:
    """A subscriber that stops reading once subscribed (a tiny receive buffer)."""
    raw = await RawSocket.upgrade(node, rcvbuf=4096)
    await raw.auth(token)
    seq = await raw.send_msg(MsgType.SUBSCRIBE, {"channel": channel})
    got, _ = await raw.expect(MsgType.SUBSCRIBE_RSP)
    assert got == seq
    raw.writer.transport.pause_reading()
    return raw


async def _flood(pub: Wire, channel: str, count: int) -> tuple[int, int]:
    """Pipeline ``count`` Publish frames without waiting; (acks, refusals) once all are
    answered (nothing else comes to the publisher: it subscribes to nothing)."""
    async def send_all() -> None:
        for i in range(count):
            await pub.send(MsgType.PUBLISH, {"channel": channel, "data": [i, PAYLOAD]})

    sender = asyncio.create_task(send_all())
    acks = refused = 0
    try:
        while acks + refused < count:
            t, _, payload = await pub.recv(60)
            if t == MsgType.PUBLISH_ACK:
                acks += 1
            elif t == MsgType.ERROR:
                assert payload["code"] == "WS_RATE_LIMITED", payload
                refused += 1
        await sender
    finally:
        sender.cancel()
    return acks, refused


async def test_a_flood_does_not_cut_healthy_subscribers_only_the_slow_one(server_factory,
                                                                          http):
    """Rounds of 100 publications pipelined as fast as the socket takes them, 10-frame
    outboxes, a history of 20, until the subscriber that stopped reading is cut: before
    admission control one group commit's publications overflowed every outbox at once
    and every subscriber was cut (4413). Now the healthy ones get every stored
    publication in order, and only the one that stopped reading is cut."""
    node = await server_factory(send_queue_size=10, write_timeout=2.0, rate_limit=100_000,
                                rate_burst=100_000,
                                namespaces={"tiny": Namespace(history_size=20)})
    users = []
    for _ in range(6):
        uid, _ = await node.quick_user()
        users.append((uid, (await node.node.service.auth.issue(uid))[0]))
    healthy = [Channels(await Wire.ready(http, node.ws_url, t)) for _, t in users[:4]]
    for sub in healthy:
        await sub.subscribe("tiny:flood")
    slow = await _stalled_subscriber(node, users[4][1], "tiny:flood")
    try:
        [slow_conn] = node.node.hub.connections(users[4][0])
        pub = await Wire.ready(http, node.ws_url, users[5][1])
        acked, started = 0, time.monotonic()
        while not slow_conn.closed:
            assert time.monotonic() - started < 60, "the stalled subscriber was never cut"
            acks, refused = await _flood(pub, "tiny:flood", FLOOD)
            assert acks + refused == FLOOD
            acked += acks
        assert slow_conn.close_code == 4413
        for sub in healthy:
            got = await sub.until(acked, timeout=60)
            assert [p["offset"] for p in got] == list(range(1, acked + 1))
            assert not sub.wire.ws.closed
            assert (await sub.subscribe("tiny:after"))["offset"] == 0  # still answered
    finally:
        await slow.aclose()


async def test_publishers_are_refused_while_most_subscribers_lag(server_factory, http,
                                                                  monkeypatch):
    """Every subscriber of a channel stopped reading: the node cannot deliver, so a
    publication waits (ADMISSION_WAIT) and is then refused, with HTTP 429 and
    Retry-After or WS_RATE_LIMITED, and nothing of it stored; once they read again,
    publishing goes on."""
    monkeypatch.setattr(broker_module, "ADMISSION_WAIT", 0.3)
    node = await server_factory(send_queue_size=10, write_timeout=60.0,
                                namespaces={"jam": Namespace(history_size=1000)})
    tokens = []
    for _ in range(3):
        uid, _ = await node.quick_user()
        tokens.append((await node.node.service.auth.issue(uid))[0])
    channel = "jam:1"
    stalled = [await _stalled_subscriber(node, t, channel) for t in tokens[:2]]
    token = tokens[2]
    broker = node.node.broker
    headers = {"Authorization": f"Bearer {token}"}
    try:
        started = time.monotonic()
        while not broker.router.congested(channel):  # fill their buffers until both lag
            assert time.monotonic() - started < 20, "the stalled subscribers never lagged"
            async with http.post(node.http_url + "/api/v1/publish/batch", headers=headers,
                                 json={"items": [{"channel": channel, "data": PAYLOAD}
                                                 for _ in range(20)]}) as r:
                assert r.status in (200, 429), await r.text()
        stored = (await broker.history(channel, 0, 1000)).top_offset
        async with http.post(node.http_url + "/api/v1/publish", headers=headers,
                             json={"channel": channel, "data": "refused"}) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["code"] == "RATE_LIMITED"
        pub = Channels(await Wire.ready(http, node.ws_url, token))
        with pytest.raises(Refused) as refused:
            await pub.publish(channel, "refused too")
        assert refused.value.code == "WS_RATE_LIMITED"
        assert (await broker.history(channel, 0, 1000)).top_offset == stored
        for raw in stalled:
            raw.writer.transport.resume_reading()
        drains = [asyncio.create_task(raw.eof(60)) for raw in stalled]  # read, discard
        started = time.monotonic()
        while broker.router.congested(channel):
            assert time.monotonic() - started < 30, "the subscribers never caught up"
            await asyncio.sleep(0.05)
        ack = await pub.publish(channel, "accepted")
        assert ack["offset"] == stored + 1
        for d in drains:
            d.cancel()
    finally:
        for raw in stalled:
            await raw.aclose()
