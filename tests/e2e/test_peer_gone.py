"""A client that leaves while its connection's reader is stuck in a handler (a statement
on a dead store link, as in a partition: tests/chaos/test_partition.py does it for
real) is let go within ``PEER_GONE_GRACE``: its slot and presence are settled without
waiting for the stuck statement (docs/reliability.md, presence after a half-open link).
The store's backlog read is made to hang by wrapping it: the fault, not a stand-in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.gateway.websocket import PEER_GONE_GRACE
from tidings.protocol.codes import MsgType


async def test_a_client_gone_while_its_reader_is_stuck_is_let_go(server: RunningServer,
                                                                  http: Any) -> None:
    user_id, token = await server.quick_user()
    store = server.node.store
    stuck = asyncio.Event()
    release = asyncio.Event()
    real = store.get_cursor

    async def hanging_get_cursor(*args: Any) -> Any:
        stuck.set()
        await release.wait()  # the dead link: never answers while the test runs
        return await real(*args)

    store.get_cursor = hanging_get_cursor  # type: ignore[method-assign,assignment]
    try:
        wire = await Wire.open(http, server.ws_url)
        await wire.send(MsgType.AUTH, {"token": token, "device_id": "d1"})
        await wire.expect(MsgType.AUTH_RSP)  # then the backlog replay hangs
        async with asyncio.timeout(10):
            await stuck.wait()
        assert [c.device_id for c in server.node.hub.connections(user_id)] == ["d1"]
        assert await server.node.service.presence.status(user_id) == "online"
        left = time.monotonic()
        # The client leaves (its close waits for the server's answer, which the stuck
        # reader cannot give until it is stopped); the reader is still in the replay.
        await wire.ws.close()
        async with asyncio.timeout(PEER_GONE_GRACE + 10):
            while server.node.hub.connections(user_id) or \
                    await server.node.service.presence.status(user_id) != "offline":
                await asyncio.sleep(0.05)
        took = time.monotonic() - left
        assert took >= PEER_GONE_GRACE * 0.9  # the reader got its grace first
        print(f"\nlet go {took:.2f} s after the client left")
    finally:
        release.set()
        store.get_cursor = real  # type: ignore[method-assign]
