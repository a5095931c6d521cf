"""A Socket.IO client whose JWT expires is told (``token_expired``) and disconnected:
Socket.IO has no in-band refresh, so it reconnects with a new token."""

from __future__ import annotations

import asyncio
import time

from tests.desks.test_realtime_more import Listener, listeners  # noqa: F401  (fixture)
from tests.e2e.conftest import ServerFactory

SECRET = "an-hs256-secret-of-32-bytes-min!"


async def test_an_expired_jwt_disconnects_its_socketio_client(
        server_factory: ServerFactory, listeners: list[Listener]) -> None:  # noqa: F811
    node = await server_factory(jwt_secret=SECRET)
    user_id, opaque = await node.quick_user()
    short, exp_ms = node.node.service.auth.jwt.issue(user_id, ttl=2)
    lapsing, kept = Listener(), Listener()
    listeners += [lapsing, kept]
    gone = asyncio.Event()
    lapsing.client.on("disconnect", lambda *_: gone.set())
    start = time.monotonic()
    await lapsing.client.connect(node.http_url, auth={"token": short, "floor": 1})
    await kept.client.connect(node.http_url, auth={"token": opaque, "floor": 1})
    assert (await lapsing.next("connection_ack"))["data"]["userId"] == user_id
    await kept.next("connection_ack")
    told = await lapsing.next("token_expired", timeout=10)
    assert told["data"]["code"] == "TOKEN_EXPIRED"
    await asyncio.wait_for(gone.wait(), 5)
    assert time.time() * 1000 >= exp_ms - 50  # not before the JWT's exp (whole seconds)
    assert time.monotonic() - start < 10
    assert kept.client.connected  # a 30-day opaque token is far from its end
