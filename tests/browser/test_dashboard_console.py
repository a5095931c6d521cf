"""The dashboard's console (issue 21) in real Chromium: an operator finds a user and
closes one of its real connections, publishes to a channel a real client is subscribed
to, reads the channel's history and presence, creates and revokes a token (then used
for real), replays a dead webhook into a real receiver — and sees each action in the
audit log. User text stays text under the page's strict CSP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.browser.tabs import NewTab, click, new_tab, screenshot, type_into, wait_for
from tests.channels.helpers import Channels
from tests.support.server import RunningServer
from tests.support.wire import Wire

pytestmark = pytest.mark.asyncio
__all__ = ["new_tab"]

EVIL = '<img src=x onerror="document.title=1">'


class Receiver:
    """The application's webhook endpoint: refuses (500) until told otherwise."""

    def __init__(self) -> None:
        self.failing = True
        self.got: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=500, text="down for the test")
        self.got.append(await request.json())
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    assert r.runner is not None
    await r.runner.cleanup()


@pytest.fixture
async def node(tmp_path: Path, receiver: Receiver) -> AsyncIterator[RunningServer]:
    server = await RunningServer(f"sqlite:///{tmp_path / 'console.db'}", admin_users=["root"],
                                 webhook_url=receiver.url, webhook_max_attempts=1,
                                 webhook_poll_interval=0.2, webhook_events=["user.*"]).start()
    try:
        yield server
    finally:
        await server.stop()


def cells(tbody: str) -> str:
    return (f"[...document.querySelectorAll('#{tbody} td')].map((td) => td.textContent)"
            ".join('|')")


async def test_the_console_acts(node: RunningServer, new_tab: NewTab, receiver: Receiver,
                                tmp_path: Path) -> None:
    await node.new_user("root")
    bob, bob_token = await node.new_user("bob")
    alice, alice_token = await node.quick_user()
    async with aiohttp.ClientSession() as http:
        bob_phone = await Wire.ready(http, node.ws_url, bob_token, "phone")
        bob_laptop = await Wire.ready(http, node.ws_url, bob_token, "laptop")
        listener = Channels(await Wire.ready(http, node.ws_url, alice_token, "desk"))
        await listener.subscribe("room:lobby")
        # bob's user.online webhook met a receiver that is down: it is dead now.
        store = node.node.store

        async def dead() -> list[Any]:
            return await store.outbox_list("dead", 10, None)  # type: ignore[attr-defined]

        async with asyncio.timeout(10):
            while not await dead():
                await asyncio.sleep(0.1)

        tab = await new_tab(node.http_url + "/")
        await type_into(tab, "username", "root")
        await type_into(tab, "password", "correct horse")
        await tab.run("document.getElementById('login-form').requestSubmit()")
        # The console shows once the node has accepted root as an admin (and its forms
        # are wired: one sent earlier would reload the page).
        await wait_for(tab, "!document.getElementById('console').hidden")

        # Find bob, see both connections, close the laptop's.
        await type_into(tab, "user-q", "bob")
        await tab.run("document.getElementById('user-search').requestSubmit()")
        await wait_for(tab, f"!!document.querySelector('[data-user=\"{bob}\"]')")
        await click(tab, f"[data-user=\"{bob}\"]")
        await wait_for(tab, "document.querySelectorAll('#user-conns [data-key]').length === 2")
        laptop_key = f"{node.node.node_id}/" + next(
            c.id for c in node.node.hub.connections(bob) if c.device_id == "laptop")
        assert "laptop" in await tab.run(cells("user-conns"))
        await click(tab, f"[data-key=\"{laptop_key}\"]")
        assert await bob_laptop.closed_with() == 4000
        await wait_for(tab, "document.querySelectorAll('#user-conns [data-key]').length === 1")
        assert not bob_phone.ws.closed

        # Publish: the subscribed client gets it; history and presence show it, as text.
        await type_into(tab, "channel-name", "room:lobby")
        await type_into(tab, "publish-data", '{"text": ' + json.dumps(EVIL) + "}")
        await tab.run("document.getElementById('publish-form').requestSubmit()")
        [got] = await listener.until(1)
        assert got["data"] == {"text": EVIL}
        await wait_for(tab, f"{cells('channel-history')}.includes('onerror')")
        await wait_for(tab, f"{cells('channel-presence')}.includes('#{alice}')")
        assert await tab.run("document.querySelectorAll('#console img').length") == 0
        assert await tab.run("document.title") != "1"

        # A token for bob: created, shown once, works; revoked, refused.
        await type_into(tab, "token-name", "ci")
        await tab.run("document.getElementById('token-form').requestSubmit()")
        secret = await wait_for(tab, "document.getElementById('token-secret').textContent")
        headers = {"Authorization": f"Bearer {secret}"}
        async with http.get(node.http_url + "/api/v1/tokens/current", headers=headers) as r:
            assert r.status == 200 and (await r.json())["user_id"] == bob
        made = (await node.node.store.list_tokens(bob))[0]
        await wait_for(tab, f"!!document.querySelector('[data-token=\"{made.id}\"]')")
        await click(tab, f"[data-token=\"{made.id}\"]")
        await wait_for(tab, f"!document.querySelector('[data-token=\"{made.id}\"]')")
        async with http.get(node.http_url + "/api/v1/tokens/current", headers=headers) as r:
            assert r.status == 401

        # The dead webhook, replayed into a receiver that now answers.
        receiver.failing = False
        row = next(r for r in await dead() if r.event == "user.online"
                   and json.loads(r.data)["user_id"] == bob)
        await click(tab, "#webhooks-refresh")
        await wait_for(tab, f"!!document.querySelector('[data-webhook=\"{row.id}\"]')")
        await click(tab, f"[data-webhook=\"{row.id}\"]")
        async with asyncio.timeout(10):
            while not any(w["event"] == "user.online" and w["data"]["user_id"] == bob
                          for w in receiver.got):
                await asyncio.sleep(0.1)

        # Everything above is in the audit log, by root.
        await click(tab, "#audit-refresh")
        for action in ("user.disconnect", "channel.publish", "token.create", "token.revoke",
                       "webhook.replay"):
            await wait_for(tab, f"{cells('audit')}.includes('{action}')")
        assert "|root|" in await tab.run(cells("audit"))
        await tab.run("document.getElementById('console').scrollIntoView()")
        await screenshot(tab, "console", tmp_path)
        assert tab.errors == []
        await bob_phone.close()
        await listener.wire.close()
