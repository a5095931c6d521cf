"""ChannelRouter's per-connection index and held publications (channels/router.py).

A connection's one subscription is indexed directly and its second turns the index
into a dict (memory per idle connection, issue 19): every query must answer the same
in both shapes, and going back to one subscription must go back to the first shape.
"""

from __future__ import annotations

import asyncio

from tests.support.sockets import RecordingSocket
from tidings.channels.router import ChannelRouter, Subscription
from tidings.gateway.connection import Connection
from tidings.store.channels import Publication


def _conn() -> Connection:
    return Connection(RecordingSocket(), queue_size=100, write_timeout=5.0)


def _pub(channel: str, offset: int) -> Publication:
    return Publication(channel, offset, "t", f"{offset}", 1, "dev", 0)  # data: JSON


def _router() -> tuple[ChannelRouter, list[Subscription]]:
    recovered: list[Subscription] = []
    return ChannelRouter(recovered.append), recovered


async def test_one_subscription_and_then_several_answer_alike():
    router, _ = _router()
    conn, other = _conn(), _conn()
    assert router.count(conn) == 0 and router.channels_of(conn) == []
    assert router.get(conn, "a") is None and router.remove(conn, "a") is None
    a = router.add(conn, "a", refillable=True)
    assert router.get(conn, "a") is a and router.get(conn, "b") is None
    assert router.count(conn) == 1 and router.channels_of(conn) == ["a"]
    assert router.remove(conn, "b") is None and router.count(conn) == 1
    b = router.add(conn, "b", refillable=True)
    c = router.add(conn, "c", refillable=False)
    router.add(other, "b", refillable=True)
    assert (router.get(conn, "a"), router.get(conn, "b"), router.get(conn, "c")) == (a, b, c)
    assert router.count(conn) == 3 and router.channels_of(conn) == ["a", "b", "c"]
    assert router.remove(conn, "zzz") is None and router.count(conn) == 3
    assert router.remove(conn, "b") is b and not b.active
    assert router.get(conn, "b") is None and router.channels_of(conn) == ["a", "c"]
    assert router.count_subscribers("b") == 1  # the other connection's
    assert router.remove(conn, "a") is a  # one left: indexed directly again
    assert router.count(conn) == 1 and router.get(conn, "c") is c
    assert router.get(conn, "a") is None and router.channels_of(conn) == ["c"]
    assert router.remove(conn, "c") is c and router.count(conn) == 0
    assert router.channels() == {"b": 1}


async def test_drop_forgets_every_subscription_in_the_order_made():
    router, _ = _router()
    conn = _conn()
    subs = [router.add(conn, ch, refillable=True) for ch in ("z", "a", "m")]
    assert router.drop(conn) == subs
    assert router.count(conn) == 0 and router.channels() == {}
    assert not any(s.active for s in subs)
    only = router.add(conn, "x", refillable=True)
    assert router.drop(conn) == [only] and router.drop(conn) == []


async def test_subscribing_again_to_the_same_channel_replaces_the_subscription():
    router, _ = _router()
    conn = _conn()
    first = router.add(conn, "a", refillable=True)
    second = router.add(conn, "a", refillable=True)
    assert router.get(conn, "a") is second is not first and router.count(conn) == 1
    router.add(conn, "b", refillable=True)
    third = router.add(conn, "b", refillable=True)
    assert router.get(conn, "b") is third and router.count(conn) == 2
    assert router.count_subscribers("a") == 1 and router.count_subscribers("b") == 1


async def test_subscribers_of_a_channel_share_one_name_string():
    router, _ = _router()
    names = ["".join(["room", str(n)]) for n in (7, 7)]  # equal, but two objects
    assert names[0] is not names[1]
    subs = [router.add(_conn(), name, refillable=True) for name in names]
    assert subs[0].channel is subs[1].channel


async def test_held_publications_are_kept_only_while_there_are_some():
    router, recovered = _router()
    conn = _conn()
    sub = router.add(conn, "a", refillable=True)
    assert sub.buffered is None  # replaying, nothing held yet
    router.deliver(_pub("a", 2))
    router.deliver(_pub("a", 1))
    assert [p.offset for p in sub.buffered or ()] == [2, 1]
    router.go_live(sub, accept_gaps=False)
    assert sub.buffered is None and sub.offset == 2 and sub.live
    await asyncio.sleep(0)  # the end of the loop turn flushes the outbox
    assert len(conn._socket.frames) == 2  # type: ignore[attr-defined]
    router.deliver(_pub("a", 4))  # a gap: delivery pauses and holds it
    assert not sub.live and recovered == [sub]
    assert [p.offset for p in sub.buffered or ()] == [4]
    router.go_live(sub, accept_gaps=True)
    assert sub.buffered is None and sub.offset == 4
