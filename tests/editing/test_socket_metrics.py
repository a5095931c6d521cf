"""An open editing WebSocket is a WebSocket in seed §6.6's panel (/api/metrics), not an
HTTP request in flight, and its lifetime stays out of the HTTP latency percentiles."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.editing.client import Api
from tests.support.server import RunningServer


async def metrics(http: aiohttp.ClientSession, node: RunningServer) -> dict[str, Any]:
    async with http.get(node.http_url + "/api/metrics") as r:
        assert r.status == 200
        answer: dict[str, Any] = await r.json()
        return answer


async def test_an_editing_socket_is_a_websocket_not_a_slow_request(
        node: RunningServer, team: tuple[int, list[Api]], http: aiohttp.ClientSession) -> None:
    ws, (alice, *_) = team
    tab = alice.tab(ws, 1)
    await tab.start()
    before = await metrics(http, node)
    sock = await tab.connect()
    held = 1.5
    await asyncio.sleep(held)  # the socket's lifetime, which must not count as a latency
    during = await metrics(http, node)
    # Only the /api/metrics request itself is in flight; the socket is a WebSocket.
    assert during["connections"]["http_in_flight"] == 1
    assert during["connections"]["websocket"] == before["connections"]["websocket"] + 1
    await sock.ws.close()
    async with asyncio.timeout(10):  # the server sees the close a little later
        while (await metrics(http, node))["connections"]["websocket"] != \
                before["connections"]["websocket"]:
            await asyncio.sleep(0.05)
    after = await metrics(http, node)
    assert after["performance"]["latency_ms"]["p99"] < held * 1000
    assert after["connections"]["http_in_flight"] == 1
