"""Channels over real sockets: publish (WebSocket and HTTP), subscribe, replay, live."""

from __future__ import annotations

import asyncio

import pytest

from tests.channels.conftest import api
from tests.channels.helpers import Channels, Refused
from tests.support.wire import Wire
from tidings.channels.namespaces import Namespace


async def channels(connect, token: str, *, binary: bool = True) -> Channels:
    return Channels(await connect(token, binary=binary))


@pytest.mark.parametrize("binary", [True, False])
async def test_publish_over_http_reaches_a_websocket_subscriber(server, http, connect, user,
                                                                binary):
    _, token = await user()
    sub = await channels(connect, token, binary=binary)
    rsp = await sub.subscribe("room:lobby")
    assert rsp == {"channel": "room:lobby", "offset": 0, "recovered": True, "publications": []}
    status, body = await api(http, server, "POST", "/api/v1/publish", token,
                             json={"channel": "room:lobby", "type": "greeting",
                                   "data": {"text": "hello", "n": [1, 2]}})
    assert status == 200, body
    assert body["offset"] == 1 and body["channel"] == "room:lobby" and not body["duplicate"]
    [got] = await sub.until(1)
    assert got["channel"] == "room:lobby" and got["offset"] == 1
    assert got["type"] == "greeting" and got["data"] == {"text": "hello", "n": [1, 2]}
    assert got["info"]["device_id"] == "http" and got["created_at"] == body["created_at"]


async def test_websocket_publish_is_acknowledged_and_delivered_in_order(server, connect, user):
    uid, token = await user()
    pub = await channels(connect, token)
    sub = await channels(connect, (await user())[1], binary=False)
    await sub.subscribe("room:a")
    acks = [await pub.publish("room:a", i) for i in range(5)]
    assert [a["offset"] for a in acks] == [1, 2, 3, 4, 5]
    got = await sub.until(5)
    assert [p["data"] for p in got] == [0, 1, 2, 3, 4]
    assert [p["offset"] for p in got] == [1, 2, 3, 4, 5]
    assert got[0]["info"] == {"user_id": uid, "device_id": pub.wire.device_id}


async def test_subscribers_of_other_channels_get_nothing(server, connect, user):
    _, token = await user()
    a = await channels(connect, token)
    b = await channels(connect, token)
    await a.subscribe("room:a")
    await b.subscribe("room:b")
    await a.publish("room:a", "only a")
    assert [p["data"] for p in await a.until(1)] == ["only a"]
    await b.quiet()
    assert b.received == []


async def test_subscribe_since_replays_what_was_missed_then_goes_live(server, connect, user):
    _, token = await user()
    pub = await channels(connect, token)
    for i in range(3):
        await pub.publish("room:r", i)
    sub = await channels(connect, token)
    rsp = await sub.subscribe("room:r", since=1)
    assert rsp["offset"] == 3 and rsp["recovered"] is True
    assert [p["offset"] for p in rsp["publications"]] == [2, 3]
    await pub.publish("room:r", 3)
    assert [p["offset"] for p in await sub.until(3)] == [2, 3, 4]


async def test_resubscribing_after_a_disconnect_recovers_exactly_the_missed_publications(
        server, http, connect, user):
    """A publisher keeps publishing over HTTP while the subscriber drops and comes back."""
    _, token = await user()
    _, publisher = await user()
    sub = await channels(connect, token)
    await sub.subscribe("room:busy")
    stop = asyncio.Event()
    sent: list[int] = []

    async def publish_forever() -> None:
        n = 0
        while not stop.is_set():
            status, body = await api(http, server, "POST", "/api/v1/publish", publisher,
                                     json={"channel": "room:busy", "data": n})
            assert status == 200, body
            sent.append(body["offset"])
            n += 1
            await asyncio.sleep(0.002)

    task = asyncio.create_task(publish_forever())
    try:
        while len(sent) < 20:
            await asyncio.sleep(0.01)
        await sub.until(10)
        last = sub.received[-1]["offset"]
        await sub.wire.close()
        before = len(sent)
        while len(sent) < before + 20:  # published while the subscriber is away
            await asyncio.sleep(0.01)
        again = await channels(connect, token)
        again.received = list(sub.received)
        rsp = await again.subscribe("room:busy", since=last)
        assert rsp["recovered"] is True
        while len(sent) < before + 60:  # and more while it catches up
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
    got = await again.until(len(sent))
    assert [p["offset"] for p in got] == list(range(1, len(sent) + 1))
    assert [p["data"] for p in got] == list(range(len(sent)))
    await again.quiet()
    assert len(again.received) == len(sent)


async def test_retention_trimming_gives_recovered_false(server_factory, connect, http):
    node = await server_factory(namespaces={"small": Namespace(history_size=3)})
    uid, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(uid)
    pub = Channels(await Wire.ready(http, node.ws_url, token))
    for i in range(6):
        await pub.publish("small:x", i)
    sub = Channels(await Wire.ready(http, node.ws_url, token))
    rsp = await sub.subscribe("small:x", since=1)
    assert rsp["recovered"] is False and rsp["offset"] == 6
    assert [p["offset"] for p in rsp["publications"]] == [4, 5, 6]
    fine = Channels(await Wire.ready(http, node.ws_url, token))
    rsp = await fine.subscribe("small:x", since=3)
    assert rsp["recovered"] is True


async def test_a_since_beyond_the_top_offset_is_not_recovered(server, connect, user):
    _, token = await user()
    sub = await channels(connect, token)
    rsp = await sub.subscribe("room:new", since=10)
    assert rsp["recovered"] is False and rsp["offset"] == 0
    await sub.publish("room:new", "first")
    assert [p["offset"] for p in await sub.until(1)] == [1]  # live delivery starts at 1


async def test_idempotent_retries_deliver_once(server, http, connect, user):
    _, token = await user()
    sub = await channels(connect, token)
    await sub.subscribe("room:idem")
    first = await sub.publish("room:idem", "x", idempotency_key="k-1")
    again = await sub.publish("room:idem", "x", idempotency_key="k-1")
    assert again == {**first, "duplicate": True}
    body = {"channel": "room:idem", "data": "x", "idempotency_key": "k-1"}
    status, over_http = await api(http, server, "POST", "/api/v1/publish", token, json=body)
    assert status == 200 and over_http["offset"] == first["offset"] and over_http["duplicate"]
    await sub.publish("room:idem", "y")
    got = await sub.until(2)
    await sub.quiet()
    assert [p["data"] for p in sub.received] == ["x", "y"] and len(got) == 2


async def test_unsubscribe_stops_delivery(server, connect, user):
    _, token = await user()
    sub = await channels(connect, token)
    await sub.subscribe("room:u")
    await sub.publish("room:u", 1)
    await sub.until(1)
    assert await sub.unsubscribe("room:u") == {"channel": "room:u"}
    await sub.publish("room:u", 2)
    await sub.quiet()
    assert [p["data"] for p in sub.received] == [1]
    assert await sub.unsubscribe("room:never") == {"channel": "room:never"}


async def test_subscribe_refusals_have_their_own_codes(server_factory, http):
    node = await server_factory(max_subscriptions=2)
    uid, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(uid)
    sub = Channels(await Wire.ready(http, node.ws_url, token))
    await sub.subscribe("room:1")
    with pytest.raises(Refused) as err:
        await sub.subscribe("room:1")
    assert err.value.code == "WS_ALREADY_SUBSCRIBED"
    await sub.subscribe("room:2")
    with pytest.raises(Refused) as err:
        await sub.subscribe("room:3")
    assert err.value.code == "WS_TOO_MANY_SUBSCRIPTIONS"
    with pytest.raises(Refused) as err:
        await sub.subscribe("nosuch:1")
    assert err.value.code == "WS_UNKNOWN_CHANNEL"
    with pytest.raises(Refused) as err:
        await sub.subscribe("bad channel")
    assert err.value.code == "WS_INVALID_PAYLOAD"
    with pytest.raises(Refused) as err:
        await sub.publish("room:1", "x" * 70000)
    assert err.value.code == "WS_PUBLICATION_TOO_LARGE"
    await sub.publish("room:1", "still fine")  # the connection stays
    assert [p["data"] for p in await sub.until(1)] == ["still fine"]


async def test_a_long_replay_arrives_in_pages_with_nothing_missing(server_factory, http):
    node = await server_factory(sync_page_size=10)
    uid, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(uid)
    status = 0
    async with http.post(node.http_url + "/api/v1/publish/batch",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"items": [{"channel": "room:long", "data": i}
                                         for i in range(45)]}) as r:
        status = r.status
    assert status == 200
    sub = Channels(await Wire.ready(http, node.ws_url, token))
    rsp = await sub.subscribe("room:long", since=0)
    assert len(rsp["publications"]) == 10 and rsp["offset"] == 45
    got = await sub.until(45)
    assert [p["data"] for p in got] == list(range(45))


async def test_a_late_event_from_another_node_is_refilled_from_the_store_in_order(
        server, connect, user):
    """Offsets 1 and 2 committed, but the bus hands over 2 first (as two nodes could)."""
    from tidings.bus import PublicationEvent
    from tidings.store.channels import NewPublication, Retention

    uid, token = await user()
    sub = Channels(await connect(token))
    await sub.subscribe("room:late")
    keep = Retention(100, 3_600_000)
    results = await server.node.store.append_publications(
        [NewPublication("room:late", "message", str(i), uid, "other-node", keep)
         for i in (1, 2)])
    first, second = (r.publication for r in results)
    server.node.broker.on_event(PublicationEvent(second))
    got = await sub.until(2)
    server.node.broker.on_event(PublicationEvent(first))  # arrives late: already sent
    await sub.quiet()
    assert [(p["offset"], p["data"]) for p in sub.received] == [(1, 1), (2, 2)]
    assert len(got) == 2


async def test_malformed_channel_requests_get_invalid_payload_and_the_connection_stays(
        server, connect, user):
    from tidings.protocol.codes import MsgType

    _, token = await user()
    wire = await connect(token, binary=False)
    bad = [
        (MsgType.SUBSCRIBE, {}),
        (MsgType.SUBSCRIBE, {"channel": ""}),
        (MsgType.SUBSCRIBE, {"channel": "x" * 256}),
        (MsgType.SUBSCRIBE, {"channel": "room:a", "since": -1}),
        (MsgType.SUBSCRIBE, {"channel": "room:a", "since": "3"}),
        (MsgType.SUBSCRIBE, {"channel": "room:\u0000"}),
        (MsgType.UNSUBSCRIBE, {"channel": 5}),
        (MsgType.PUBLISH, {"channel": "room:a"}),
        (MsgType.PUBLISH, {"channel": "room:a", "data": 1, "type": "has space"}),
        (MsgType.PUBLISH, {"channel": "room:a", "data": 1, "idempotency_key": ""}),
        (MsgType.PUBLISH, {"channel": "room:a", "data": 1, "idempotency_key": "k" * 129}),
    ]
    for type_, payload in bad:
        seq = await wire.send(type_, payload)
        got_seq, err = await wire.expect(MsgType.ERROR)
        assert (got_seq, err["code"]) == (seq, "WS_INVALID_PAYLOAD"), (payload, err)
    chan = Channels(wire)
    await chan.subscribe("room:a")
    await chan.publish("room:a", {"deep": [[[["ok"]]]], "nul": "a\u0000b"})
    [got] = await chan.until(1)
    assert got["data"] == {"deep": [[[["ok"]]]], "nul": "a\u0000b"}


async def test_messagepack_data_round_trips_and_bin_becomes_base64(server, connect, user):
    _, token = await user()
    binary = Channels(await connect(token, binary=True))
    text = Channels(await connect(token, binary=False))
    for c in (binary, text):
        await c.subscribe("room:bin")
    await binary.publish("room:bin", {"n": 1, "f": 1.5, "list": [True, None], "raw": b"\x00\x01"})
    for c in (binary, text):
        [got] = await c.until(1)
        assert got["data"] == {"n": 1, "f": 1.5, "list": [True, None], "raw": "AAE="}


async def test_publication_metrics_count_stored_and_pushed(server, http, connect, user):
    _, token = await user()
    subs = [Channels(await connect(token)) for _ in range(2)]
    for s in subs:
        await s.subscribe("room:m")
    await subs[0].publish("room:m", 1)
    for s in subs:
        await s.until(1)
    async with http.get(server.http_url + "/metrics") as r:
        text = await r.text()
    assert "tidings_publications_stored_total 1.0" in text
    assert "tidings_publications_out_total 2.0" in text


async def test_a_subscriber_that_falls_behind_the_history_is_told_not_skipped(
        server_factory, http):
    """Queue of 10, history of 5, 100 publications of 60 KB to a subscriber that has
    stopped reading: it is paused, then finds offsets trimmed. It is closed (4413)
    rather than silently skipping them, and resubscribing from its last offset answers
    recovered: false. (A subscriber that reads gets all 100: tests/channels/
    test_overload.py.)"""
    from tests.hostile.rawws import EOF, ClosedByServer, RawSocket
    from tidings.protocol.codes import MsgType

    node = await server_factory(send_queue_size=10,
                                namespaces={"tiny": Namespace(history_size=5)})
    uid, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(uid)
    raw = await RawSocket.upgrade(node, rcvbuf=4096)
    try:
        await raw.auth(token)
        await raw.send_msg(MsgType.SUBSCRIBE, {"channel": "tiny:burst"})
        await raw.expect(MsgType.SUBSCRIBE_RSP)
        raw.writer.transport.pause_reading()
        for n in range(0, 100, 10):  # 6 MB: more than the kernel buffers between them
            async with http.post(node.http_url + "/api/v1/publish/batch",
                                 headers={"X-API-Token": token},
                                 json={"items": [{"channel": "tiny:burst",
                                                  "data": [i, "x" * 60_000]}
                                                 for i in range(n, n + 10)]}) as r:
                assert r.status == 200
        raw.writer.transport.resume_reading()
        offsets: list[int] = []
        with pytest.raises(ClosedByServer) as closed:
            while True:
                t, _, payload = await raw.recv_msg(10)
                if t == MsgType.PUBLICATION:
                    offsets.append(payload["offset"])
    except EOF:
        raise AssertionError("dropped without a close frame") from None
    finally:
        await raw.aclose()
    assert closed.value.code == 4413
    assert offsets == list(range(1, len(offsets) + 1)) and len(offsets) < 100
    again = Channels(await Wire.ready(http, node.ws_url, token))
    rsp = await again.subscribe("tiny:burst", since=offsets[-1] if offsets else 0)
    assert rsp["recovered"] is False
    assert [p["offset"] for p in rsp["publications"]] == [96, 97, 98, 99, 100]
