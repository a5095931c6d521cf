"""Seed 003's promise, end to end: a desktop client (the Python SDK) subscribed to a
channel receives, exactly once and in order, everything that curl, a Python script
and the CLI publish — including what was published while it was offline."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxy import Proxy
from tidings.client import (
    Client,
    Disconnected,
    Publication,
    ReconnectPolicy,
    Subscribed,
    TidingsError,
)

BIN = Path(sys.executable).parent
CHANNEL = "room:ops"

SCRIPT = """
import json, sys, urllib.request
url, token, channel, payload = sys.argv[1:5]
request = urllib.request.Request(
    url + "/api/v1/publish", method="POST",
    data=json.dumps({"channel": channel, "data": json.loads(payload)}).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(request) as response:
    print(json.load(response)["offset"])
"""


async def run(*argv: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (argv, out, err)
    return out.decode()


class Publishers:
    """curl, a stand-alone Python script (stdlib only) and ``tidings publish``."""

    def __init__(self, url: str, token: str, tmp_path: Path) -> None:
        self.url = url
        self.token = token
        self.script = tmp_path / "publish.py"
        self.script.write_text(SCRIPT)
        self.sent: list[dict[str, Any]] = []

    async def curl(self, n: int) -> None:
        data = {"from": "curl", "n": n}
        await run("curl", "-sS", "--fail-with-body", "-X", "POST", self.url + "/api/v1/publish",
                  "-H", f"X-API-Token: {self.token}",
                  "-d", json.dumps({"channel": CHANNEL, "data": data}))
        self.sent.append(data)

    async def python(self, n: int) -> None:
        data = {"from": "script", "n": n}
        await run(sys.executable, str(self.script), self.url, self.token, CHANNEL,
                  json.dumps(data))
        self.sent.append(data)

    async def cli(self, n: int) -> None:
        data = {"from": "cli", "n": n}
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update(TIDINGS_URL=self.url, TIDINGS_TOKEN=self.token)
        out = await run(str(BIN / "tidings"), "publish", CHANNEL, json.dumps(data), env=env)
        assert out.startswith(f"{CHANNEL} offset ")
        self.sent.append(data)

    async def round(self, n: int) -> None:
        await self.curl(n)
        await self.python(n)
        await self.cli(n)


async def collect(client: Client, into: list[Publication], events: list[Any]) -> None:
    async for event in client.events():
        events.append(event)
        if isinstance(event, Publication):
            into.append(event)


async def wait_for(predicate, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_the_desktop_client_gets_everything_published_once_and_in_order(
        server, user, tmp_path):
    _, desk_token = await user()
    _, publisher_token = await user(scopes=("publish:room:*",))
    publishers = Publishers(server.http_url, publisher_token, tmp_path)
    proxy = await Proxy("127.0.0.1", server.node.port).start()
    desk = Client(proxy.ws_url, desk_token, device_id="desk",
                  reconnect=ReconnectPolicy(initial_interval=0.2, max_interval=0.5))
    got: list[Publication] = []
    events: list[Any] = []
    try:
        await desk.connect()
        reader = asyncio.create_task(collect(desk, got, events))
        subscribed = await desk.subscribe(CHANNEL)
        assert subscribed == Subscribed(CHANNEL, 0, True)

        await publishers.round(1)  # online
        await wait_for(lambda: len(got) == 3)

        proxy.refuse()  # the desktop goes offline: no connection can be made
        proxy.cut()
        await wait_for(lambda: any(isinstance(e, Disconnected) for e in events))
        await publishers.round(2)  # published while it is offline
        await publishers.round(3)
        assert len(got) == 3 and not desk.connected
        await proxy.accept()  # back online: it reconnects and resubscribes with since=3

        await publishers.round(4)
        await wait_for(lambda: len(got) == 12)
        await asyncio.sleep(0.3)  # nothing more may come
    finally:
        await desk.close()
        await proxy.aclose()
    await reader
    assert [p.data for p in got] == publishers.sent
    assert [p.offset for p in got] == list(range(1, 13))
    assert {p.device_id for p in got} == {"http"}
    resubscribed = [e for e in events if isinstance(e, Subscribed)]
    assert len(resubscribed) == 2 and resubscribed[0] == Subscribed(CHANNEL, 0, True)
    # Round 4 may start before the resubscription lands: the top is 9 or a little more.
    assert resubscribed[1].recovered and 9 <= resubscribed[1].offset <= 12


async def test_a_restarted_client_resumes_from_the_offset_it_persisted(server, user):
    _, token = await user()
    async with Client(server.ws_url, token, device_id="desk") as first:
        await first.subscribe(CHANNEL)
        acks = [await first.publish(CHANNEL, {"n": n}) for n in range(3)]
        assert [a.offset for a in acks] == [1, 2, 3]
        seen = []
        async for event in first.events():
            if isinstance(event, Publication):
                seen.append(event.data["n"])
                if len(seen) == 3:
                    break
        saved = first.channel_offset(CHANNEL)
    assert saved == 3
    async with Client(server.ws_url, token) as other:
        for n in range(3, 6):
            await other.publish(CHANNEL, {"n": n})
    async with Client(server.ws_url, token, device_id="desk") as second:
        rsp = await second.subscribe(CHANNEL, since=saved)
        assert rsp.recovered and rsp.offset == 6
        resumed = []
        async for event in second.events():
            if isinstance(event, Publication):
                resumed.append((event.offset, event.data["n"]))
                if len(resumed) == 3:
                    break
    assert resumed == [(4, 3), (5, 4), (6, 5)]


async def test_sdk_publish_is_idempotent_and_refusals_raise(server, user):
    _, token = await user()
    async with Client(server.ws_url, token) as client:
        first = await client.publish(CHANNEL, "x", idempotency_key="same")
        again = await client.publish(CHANNEL, "x", idempotency_key="same")
        assert again.offset == first.offset and again.duplicate and not first.duplicate
        with pytest.raises(TidingsError) as err:
            await client.publish("broadcast:all", "no")
        assert err.value.code == "WS_PERMISSION_DENIED"
        with pytest.raises(TidingsError) as err:
            await client.subscribe("nosuch:x")
        assert err.value.code == "WS_UNKNOWN_CHANNEL"
        await client.subscribe(CHANNEL)
        with pytest.raises(TidingsError) as err:
            await client.subscribe(CHANNEL)
        assert err.value.code == "WS_ALREADY_SUBSCRIBED"
        await client.unsubscribe(CHANNEL)
        await client.publish(CHANNEL, "after unsubscribe")
        await client.subscribe(CHANNEL, since=0)  # everything again, from the start
        data = []
        async for event in client.events():
            if isinstance(event, Publication):
                data.append(event.data)
                if len(data) == 2:
                    break
        assert data == ["x", "after unsubscribe"]


async def test_a_revoked_token_stops_the_client_for_good(server, http, user):
    from tests.channels.conftest import api
    from tidings.client import AuthError, ClientClosedError

    _, login = await user()
    _, made = await api(http, server, "POST", "/api/v1/tokens", login, json={"name": "desk"})
    client = Client(server.ws_url, made["token"],
                    reconnect=ReconnectPolicy(initial_interval=0.1))
    await client.connect()
    await client.subscribe(CHANNEL)
    await api(http, server, "DELETE", f"/api/v1/tokens/{made['id']}", login)
    events = [e async for e in client.events()]  # ends: 4403 is terminal
    assert Disconnected(4403, "token_revoked") in events
    with pytest.raises(ClientClosedError) as err:
        await client.publish(CHANNEL, 1)
    assert isinstance(err.value.__cause__, AuthError)
    await client.close()


async def test_unsubscribing_before_the_answer_fails_the_pending_subscribe(server, user):
    _, token = await user()
    async with Client(server.ws_url, token) as client:
        pending = asyncio.create_task(client.subscribe(CHANNEL))
        await asyncio.sleep(0)  # the Subscribe is on its way
        await client.unsubscribe(CHANNEL)
        with pytest.raises(TidingsError) as err:
            await pending
        assert err.value.code == "UNSUBSCRIBED"
        assert client.channel_offset(CHANNEL) is None
