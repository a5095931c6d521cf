"""A ledger of webhooks across a ``kill -9`` in a 3-node cluster (issue 21's last
"done when"): no ``message.stored`` webhook is lost when the node that stored the
messages, and was sending their webhooks, dies.

Three ``tidings serve`` processes on one PostgreSQL (store, bus and registry), every
node sending webhooks to one receiver process (tests/hooks/backend_app.py) that answers
500 to the first two tries of each webhook id and records the rest. Senders chat on
all three nodes; node B is ``kill -9``-ed while it holds leased rows it has not finished
sending (each row needs three tries), and the other two carry on. The ledger then holds:

- **0 lost**: every acknowledged chat's ``message_id`` reached the receiver in a
  ``message.stored`` webhook, and so did every message the store holds (a chat B stored
  but could not acknowledge before it died included);
- **one webhook id per message**: no message was recorded twice in the outbox;
- **duplicates only as at-least-once allows**: a webhook id the receiver accepted more
  than once is one whose sender died between the receiver's 200 and marking the row
  delivered; the copies are identical (same id, event, data), so a receiver that
  de-duplicates by ``X-Tidings-Webhook-Id`` sees each event exactly once. Their number
  is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.hooks.backend_app import SECRET
from tests.hooks.conftest import Backend
from tests.support.nodes import NodeProcess
from tests.support.services import PostgresServer
from tests.support.wire import Closed, Wire

pytestmark = pytest.mark.slow

USERS = 6  # two chatting users per node


async def _received(backend: Backend) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(backend.url + "/log") as r:
        return dict(await r.json())


async def _register(http: aiohttp.ClientSession, node: NodeProcess, name: str) -> dict[str, Any]:
    body = {"username": name, "password": "correct horse"}
    async with http.post(node.http_url + "/api/v1/auth/register", json=body) as r:
        assert r.status == 201, await r.text()
    async with http.post(node.http_url + "/api/v1/auth/login", json=body) as r:
        return dict(await r.json())


async def _chat(http: aiohttp.ClientSession, node: NodeProcess, me: dict[str, Any],
                to: int, acked: list[int], stop: asyncio.Event) -> None:
    """Chat with ``to`` until ``stop`` (or until the node dies); record each ack's id."""
    wire = await Wire.ready(http, node.ws_url, me["token"], f"d{me['user_id']}")
    try:
        for n in itertools.count():
            if stop.is_set():
                return
            ack = await wire.chat(to, f"{me['user_id']}|{n}")
            acked.append(int(ack["message_id"]))
            await asyncio.sleep(0.02)
    except (TimeoutError, Closed, aiohttp.ClientError, ConnectionError):
        return  # its node was killed: the chat in flight may be stored, unacknowledged
    finally:
        with contextlib.suppress(Exception):
            await wire.close()


async def test_no_webhook_is_lost_across_a_node_kill_in_a_3_node_cluster(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    backend = Backend(fail_first=2, delay=0.3)
    name = f"t_webhooks_{int(time.time() * 1000)}"
    url = postgres_server.create_database(name)
    nodes: list[NodeProcess] = []
    try:
        env = {"TIDINGS_DATABASE_URL": url, "TIDINGS_BUS_URL": url,
               "TIDINGS_WEBHOOK_URL": backend.url + "/webhook",
               "TIDINGS_WEBHOOK_SECRET": SECRET, "TIDINGS_WEBHOOK_EVENTS": "message.stored",
               "TIDINGS_WEBHOOK_TIMEOUT": "1", "TIDINGS_WEBHOOK_LEASE": "2",
               "TIDINGS_WEBHOOK_BACKOFF": "0.3", "TIDINGS_WEBHOOK_POLL_INTERVAL": "0.1",
               "TIDINGS_HEARTBEAT_INTERVAL": "0.5", "TIDINGS_NODE_TIMEOUT": "3",
               "TIDINGS_RATE_LIMIT": "1000", "TIDINGS_RATE_BURST": "1000"}
        for label in "ABC":
            nodes.append(NodeProcess(f"webhooks-{label}", tmp_path, env).start(60))
        b = nodes[1]
        async with aiohttp.ClientSession() as http:
            users = [await _register(http, nodes[i % 3], f"u{i}") for i in range(USERS)]
            acked: list[int] = []
            stop = asyncio.Event()
            chats = [asyncio.create_task(_chat(http, nodes[i % 3], users[i],
                                               users[(i + 1) % USERS]["user_id"], acked, stop))
                     for i in range(USERS)]
            await _until(lambda: len(acked) >= 60, 30)
            held = await _leased_by_b(url, b)
            b.kill()  # kill -9, while its sender holds rows it has not delivered
            killed_with = len(acked)
            await _until(lambda: len(acked) >= killed_with + 60, 30)  # A and C go on
            stop.set()
            await asyncio.gather(*chats)

        conn = await asyncpg.connect(url)
        try:
            stored = {int(r[0]) for r in await conn.fetch("SELECT id FROM messages")}
        finally:
            await conn.close()
        assert set(acked) <= stored and len(acked) == len(set(acked))

        async with asyncio.timeout(90):  # B's rows come back after its 2 s lease
            while True:
                log = await _received(backend)
                delivered = {int(h["data"]["message_id"]) for h in log["webhooks"]}
                if delivered >= stored:
                    break
                await asyncio.sleep(0.2)
        hooks = log["webhooks"]
        by_id: dict[str, list[dict[str, Any]]] = {}
        for h in hooks:
            by_id.setdefault(h["id"], []).append(h)
        per_message = Counter(int(copies[0]["data"]["message_id"]) for copies in by_id.values())
        duplicates = sum(len(copies) - 1 for copies in by_id.values())
        print(f"\nacked {len(acked)} (before the kill {killed_with}), stored {len(stored)}, "
              f"webhook ids {len(by_id)}, deliveries {len(hooks)}, duplicates {duplicates}, "
              f"rows B held when killed {held}")
        assert delivered == stored  # 0 lost, and nothing that was not stored
        assert all(n == 1 for n in per_message.values()), per_message  # one row a message
        for copies in by_id.values():  # a repeat is the same webhook, de-duplicable by id
            assert all(x == copies[0] for x in copies), copies
        assert held > 0  # the kill did strike while B was sending
    finally:
        for node in nodes:
            node.kill()
        backend.stop()
        postgres_server.drop_database(name)


async def _leased_by_b(url: str, b: NodeProcess) -> int:
    """How many rows B holds leased, once it holds some (polled): the kill must find
    B in the middle of sending."""
    conn = await asyncpg.connect(url)
    try:
        owner = await conn.fetchval("SELECT node_id FROM tidings_nodes WHERE pid = $1", b.pid)
        assert owner, "node B is not in the cluster registry"
        async with asyncio.timeout(30):
            while True:
                mine = int(await conn.fetchval(
                    "SELECT count(*) FROM webhook_outbox WHERE state = 'pending' "
                    "AND lease_owner = $1 AND lease_until > $2", owner, int(time.time() * 1000)))
                if mine:
                    return mine
                await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _until(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
