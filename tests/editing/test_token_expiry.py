"""An editing socket opened with a JWT closes with 4402 when the JWT expires (the
editing socket has no in-band refresh: the client reconnects with a new token)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.editing.client import Api
from tests.editing.conftest import NodeFactory
from tidings.protocol.codes import CloseCode

SECRET = "an-hs256-secret-of-32-bytes-min!"


async def test_an_editing_socket_closes_4402_when_its_jwt_expires(
        node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await node_factory(jwt_secret=SECRET)
    user_id, _ = await node.quick_user()
    short, _ = node.node.service.auth.jwt.issue(user_id, ttl=3)
    alice = Api(http, node.http_url, short, user_id)
    tab = alice.tab(await alice.workspace("expiry"), 1)
    assert (await tab.start()).status in (200, 201)
    start = time.monotonic()
    socket = await tab.connect()
    async with asyncio.timeout(12):
        while True:
            msg = await socket.ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                break
    assert msg.data == CloseCode.TOKEN_EXPIRED
    assert time.monotonic() - start < 12
