"""The outbox's byte bound (``send_queue_bytes``): a connection that does not drain is a
slow consumer once its queued frames reach the bound, however few they are."""

from __future__ import annotations

import asyncio

from tidings.gateway.connection import Connection
from tidings.protocol.codes import CloseCode


class _Stuck:
    """A socket whose kernel buffer is full: nothing is ever written."""

    def __init__(self) -> None:
        self.closed_with: int | None = None

    async def send(self, data: bytes, binary: bool) -> None:
        await asyncio.Event().wait()

    def write_now(self, frames: list[tuple[bytes, bool]]) -> bool:
        return False

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def abort(self) -> None:
        pass


async def test_pushes_past_the_byte_bound_close_the_connection_as_a_slow_consumer():
    sock = _Stuck()
    conn = Connection(sock, queue_size=100, write_timeout=5.0, queue_bytes=256 * 1024)
    frame = b"x" * (100 * 1024)
    assert conn.push(frame) and conn.push(frame) and conn.push(frame)  # 300 KiB queued
    assert conn.full and conn.backlogged
    assert not conn.push(frame)  # 3 frames, far below queue_size, but 300 KiB
    assert conn.closed and conn.close_code == CloseCode.SLOW_CONSUMER
    await conn.wait_closed()
    assert sock.closed_with == CloseCode.SLOW_CONSUMER


async def test_a_reply_waits_for_room_in_bytes_rather_than_closing():
    sock = _Stuck()
    conn = Connection(sock, queue_size=100, write_timeout=5.0, queue_bytes=128 * 1024)
    conn.push(b"y" * (200 * 1024))  # one frame larger than the bound is still queued
    assert conn.full and not conn.closed
    waiting = asyncio.create_task(conn.send(b"page"))
    await asyncio.sleep(0.05)
    assert not waiting.done() and not conn.closed  # paced, not dropped
    conn.close(CloseCode.NORMAL)
    await asyncio.wait_for(waiting, 1.0)
    await conn.wait_closed()
