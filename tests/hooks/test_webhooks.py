"""Webhooks: every event reaches a receiver that fails the first tries exactly once,
dead rows are replayed from the admin API, and a ``kill -9``-ed node's outbox is sent
by the node started after it (tests/hooks/backend_app.py is the receiver; it answers
500 to the first two tries of each webhook)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.channels.helpers import Channels
from tests.hooks.backend_app import SECRET
from tests.hooks.conftest import Backend
from tests.support.nodes import NodeProcess
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType

Factory = Callable[..., Awaitable[RunningServer]]
FAST = {"webhook_secret": SECRET, "webhook_backoff": 0.05, "webhook_poll_interval": 0.1}


async def _reset(backend: Backend) -> None:
    async with aiohttp.ClientSession() as s, s.post(backend.url + "/reset") as r:
        assert r.status == 200


async def _received(backend: Backend) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(backend.url + "/log") as r:
        return dict(await r.json())


async def _until(backend: Backend, done: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 30.0) -> dict[str, Any]:
    """The receiver's log once ``done(webhooks)`` holds (polled; never a fixed sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            log = await _received(backend)
            if done(log["webhooks"]):
                return log
            await asyncio.sleep(0.1)


async def test_every_event_is_delivered_once_through_failures(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    await _reset(backend)
    node = await server_factory(webhook_url=backend.url + "/webhook", webhook_events=["*"],
                                **FAST)
    alice, alice_token = await node.quick_user()
    bob, bob_token = await node.quick_user()
    a = await Wire.ready(http, node.ws_url, alice_token, "a1")
    b = await Wire.ready(http, node.ws_url, bob_token, "b1")
    ack = await a.chat(bob, "hello")
    _, push = await b.expect(MsgType.CHAT_PUSH)
    await b.send(MsgType.ACK, {"message_id": push["message_id"], "status": "read"})
    receipt: dict[str, Any] = {}
    while receipt.get("status") != "read":  # the read is stored: its receipt came back
        _, receipt = await a.expect(MsgType.RECEIPT_PUSH)
    await Channels(a).publish("room:hooks", {"n": 1})
    await b.close()

    def complete(hooks: list[dict[str, Any]]) -> bool:
        return {"message.stored", "message.read", "publication", "user.offline"} <= {
            h["event"] for h in hooks}

    log = await _until(backend, complete)
    hooks = log["webhooks"]
    ids = Counter(h["id"] for h in hooks)
    assert all(n == 1 for n in ids.values()), ids  # each delivered once
    assert all(log["tries"][i] == 3 for i in ids)  # after two refused tries
    by_event = {h["event"]: h["data"] for h in hooks if h["event"] != "user.online"}
    assert by_event["message.stored"] == {
        "message_id": ack["message_id"], "from": alice, "device_id": "a1", "to": bob,
        "type": "text", "content": "hello", "created_at": ack["created_at"]}
    assert by_event["message.read"]["message_id"] == ack["message_id"]
    assert by_event["message.read"]["by"] == bob
    assert by_event["publication"]["channel"] == "room:hooks"
    assert by_event["publication"]["data"] == {"n": 1}
    assert by_event["user.offline"] == {"user_id": bob}
    assert sorted(h["data"]["user_id"] for h in hooks if h["event"] == "user.online") == \
        sorted([alice, bob])
    await a.close()


async def test_dead_webhooks_are_listed_and_replayed(
        server_factory: Factory, backend: Backend, http: aiohttp.ClientSession) -> None:
    await _reset(backend)
    node = await server_factory(webhook_url=backend.url + "/webhook",
                                webhook_events=["publication"], webhook_max_attempts=2,
                                **FAST)
    admin, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(admin, scopes=("admin",))
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(node.http_url + "/api/v1/publish", headers=headers,
                         json={"channel": "room:dead", "data": "x"}) as r:
        assert r.status == 200

    async def rows(state: str) -> list[dict[str, Any]]:
        async with http.get(node.http_url + f"/api/v1/admin/webhooks?state={state}",
                            headers=headers) as r:
            assert r.status == 200, await r.text()
            return list((await r.json())["webhooks"])

    async with asyncio.timeout(30):
        while not (dead := await rows("dead")):
            await asyncio.sleep(0.1)
    [row] = dead
    assert row["event"] == "publication" and row["attempts"] == 2
    assert row["last_error"] == "HTTP 500"
    async with http.post(node.http_url + "/api/v1/admin/webhooks/replay", headers=headers,
                         json={"dead": True}) as r:
        assert (await r.json()) == {"replayed": 1}
    log = await _until(backend, lambda hooks: len(hooks) == 1)
    assert log["webhooks"][0]["id"] == str(row["id"])
    async with asyncio.timeout(30):
        while not await rows("delivered"):
            await asyncio.sleep(0.1)
    async with http.post(node.http_url + "/api/v1/admin/webhooks/replay", headers=headers,
                         json={}) as r:
        assert r.status == 422
    async with http.get(node.http_url + "/api/v1/admin/webhooks?state=lost",
                        headers=headers) as r:
        assert r.status == 422
    async with http.get(node.http_url + "/api/v1/admin/webhooks") as r:
        assert r.status == 401


@pytest.mark.slow
async def test_a_killed_nodes_outbox_is_sent_by_the_next_node(
        store_url: str, backend: Backend, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    await _reset(backend)
    env = {"TIDINGS_DATABASE_URL": store_url, "TIDINGS_WEBHOOK_SECRET": SECRET,
           "TIDINGS_WEBHOOK_TIMEOUT": "1", "TIDINGS_WEBHOOK_LEASE": "2",
           "TIDINGS_WEBHOOK_BACKOFF": "0.5", "TIDINGS_WEBHOOK_POLL_INTERVAL": "0.1",
           "TIDINGS_WEBHOOK_EVENTS": "message.*,user.online",
           "TIDINGS_ADMIN_USERS": "kill-alice"}
    # The first node's receiver is missing (404): nothing it stores gets out before
    # it dies, and rows it holds when killed are leased to it.
    first = NodeProcess("webhooks-first", tmp_path,
                        {**env, "TIDINGS_WEBHOOK_URL": backend.url + "/missing"}).start(60)
    try:
        users = []
        for name in ("kill-alice", "kill-bob"):
            body = {"username": name, "password": "correct horse"}
            async with http.post(first.http_url + "/api/v1/auth/register", json=body) as r:
                assert r.status == 201
            async with http.post(first.http_url + "/api/v1/auth/login", json=body) as r:
                users.append(await r.json())
        alice = await Wire.ready(http, first.ws_url, users[0]["token"])
        for n in range(20):
            await alice.chat(users[1]["user_id"], f"m{n}")  # acked: stored with its row
        first.kill()
    finally:
        first.stop()
    second = NodeProcess("webhooks-second", tmp_path,
                         {**env, "TIDINGS_WEBHOOK_URL": backend.url + "/webhook",
                          "TIDINGS_WEBHOOK_BACKOFF": "0.05"}).start(60)
    try:
        await _until(backend, lambda hooks: len(hooks) >= 21, timeout=60)
        admin = {"Authorization": f"Bearer {users[0]['token']}"}
        async with asyncio.timeout(30):  # then nothing is left to send, or sent twice
            while True:
                async with http.get(second.http_url + "/api/v1/admin/webhooks",
                                    headers=admin) as r:
                    rows = (await r.json())["webhooks"]
                if len(rows) == 21 and all(w["state"] == "delivered" for w in rows):
                    break
                await asyncio.sleep(0.1)
        log = await _received(backend)
        assert sorted(str(w["id"]) for w in rows) == sorted(h["id"] for h in log["webhooks"])
        stored = [h["data"]["content"] for h in log["webhooks"]
                  if h["event"] == "message.stored"]
        assert sorted(stored) == sorted(f"m{n}" for n in range(20))
        ids = Counter(h["id"] for h in log["webhooks"])
        assert all(n == 1 for n in ids.values()), ids
        assert [h["data"]["user_id"] for h in log["webhooks"]
                if h["event"] == "user.online"] == [users[0]["user_id"]]
    finally:
        second.stop()
