"""Chats that arrive while a connection replays its backlog are held, then pushed once,
in order, when the replay ends (hub.py, ``finish_catch_up``). The held list is made
only when something is held (memory per idle connection, issue 19)."""

from __future__ import annotations

import asyncio

import msgspec

from tests.support.sockets import RecordingSocket
from tidings.bus.base import ChatEvent
from tidings.gateway.connection import Connection
from tidings.hub.hub import Hub
from tidings.metrics import Metrics
from tidings.protocol.codec import decode_frame
from tidings.protocol.codes import MsgType
from tidings.store.base import StoredMessage


def _chat(message_id: int) -> ChatEvent:
    return ChatEvent(StoredMessage(message_id, 1, "d1", 2, "text", f"m{message_id}", message_id,
                                   "sent", 1000))


async def test_chats_during_the_replay_are_held_then_pushed_once():
    hub = Hub(Metrics())
    sock = RecordingSocket()
    conn = Connection(sock, queue_size=100, write_timeout=5.0)
    conn.user_id, conn.device_id = 2, "d2"
    hub.add(conn)
    assert conn.catching_up and conn.buffered is None
    hub.on_event(_chat(5))
    hub.on_event(_chat(6))
    assert conn.buffered is not None and len(conn.buffered) == 2
    conn.last_pushed_id = 5  # the replay already sent message 5
    hub.finish_catch_up(conn)
    assert conn.buffered is None and not conn.catching_up and conn.last_pushed_id == 6
    await asyncio.sleep(0)  # the end of the loop turn flushes the outbox
    frames = [decode_frame(f) for f in sock.frames]
    assert [f.type for f in frames] == [MsgType.CHAT_PUSH]
    assert msgspec.msgpack.decode(frames[0].payload)["message_id"] == 6


async def test_a_replay_with_nothing_held_pushes_nothing():
    hub = Hub(Metrics())
    sock = RecordingSocket()
    conn = Connection(sock, queue_size=100, write_timeout=5.0)
    conn.user_id = 2
    hub.add(conn)
    hub.finish_catch_up(conn)
    await asyncio.sleep(0)
    assert conn.buffered is None and not conn.catching_up and sock.frames == []
