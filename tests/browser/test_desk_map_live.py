"""The desk map app's live connection in real Chromium: with WebSocket blocked it runs on
Socket.IO's long-polling and still sees changes; when the network goes away it says so,
and when it comes back it reconnects and reloads the floor (changes made meanwhile
appear). And seed §6.6's monitoring panel: its figures move with real traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.desk_map import desk, desk_map_built, open_app, text, unexpected
from tests.browser.tabs import NewTab, click, new_tab, screenshot, type_into, wait_for
from tests.desks.conftest import settle
from tests.support.server import RunningServer
from tidings.apps.desks.demo import load_demo

pytestmark = pytest.mark.usefixtures("desk_map_built")
__all__ = ["desk_map_built", "new_tab"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node on SQLite with the demo building, whose operator is "root"."""
    server = await RunningServer(f"sqlite:///{tmp_path / 'desks.db'}",
                                 admin_users=["root"], desk_admins=["root"]).start()
    try:
        await load_demo(server.node.desks.db, floors=1, desks_per_floor=24)
        await settle(server)
        yield server
    finally:
        await server.stop()


async def call(node: RunningServer, token: str, method: str, path: str) -> int:
    assert node.http is not None
    async with node.http.request(method, node.http_url + path,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
        await r.read()
        return r.status


async def test_long_polling_when_websocket_is_blocked_and_the_offline_banner(
        node: RunningServer, new_tab: NewTab) -> None:
    _, alice_token = await node.new_user("alice")
    bob_id, bob_token = await node.new_user("bob")
    bob = await open_app(new_tab, node, bob_token, bob_id, "bob", block_websocket=True)
    assert await bob.run("typeof window.WebSocket") == "undefined"
    assert await bob.run("document.getElementById('live-state').dataset.transport") == "polling"

    # alice (a script here) occupies desk 1: bob's plan follows over long-polling.
    assert await call(node, alice_token, "POST", "/api/workstations/1/occupy") == 200
    await wait_for(bob, f"{desk(1)} === 'occupied'", timeout=5)

    # The network goes away: the banner says so; a change meanwhile is not lost.
    await bob.send("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    await wait_for(bob, "document.getElementById('offline') !== null", timeout=30)
    assert "Disconnected" in await bob.run(text("offline"))
    assert await call(node, alice_token, "POST", "/api/workstations/1/release") == 200
    await bob.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    await wait_for(bob, "document.getElementById('offline') === null", timeout=30)
    await wait_for(bob, f"{desk(1)} === 'available'", timeout=10)
    assert unexpected(bob.errors, "ERR_INTERNET_DISCONNECTED") == []


async def test_the_monitoring_panel_moves_with_traffic(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    root_id, root_token = await node.new_user("root")
    bob_id, bob_token = await node.new_user("bob")
    # Not an operator (nor a desk admin): no monitoring link, and its address goes to the plan.
    bob = await open_app(new_tab, node, bob_token, bob_id, "bob")
    assert await bob.run("document.getElementById('nav-monitor') === null")
    root = await open_app(new_tab, node, root_token, root_id, "root")
    await wait_for(root, "document.getElementById('nav-monitor') !== null")
    await root.run("document.getElementById('nav-monitor').click()")
    await wait_for(root, "document.querySelectorAll('.line-chart').length === 10")
    requests = "Number(document.getElementById('m-requests')?.textContent)"
    socketio = "Number(document.querySelector('[data-metric=\"m-connections.socketio\"]')" \
               "?.textContent)"
    before = await wait_for(root, requests)
    # The two tabs' Socket.IO connections are counted.
    await wait_for(root, f"{socketio} >= 2", timeout=10)
    for i in range(40):
        await call(node, bob_token, "GET", "/api/workstations")
        if i % 10 == 0:
            assert await call(node, bob_token, "POST",
                              f"/api/workstations/{i // 10 + 1}/occupy") == 200
    await wait_for(root, f"{requests} >= {before + 40}", timeout=10)
    await wait_for(root, "Number(document.querySelector('[data-metric=\"m-business.bookings\"]')"
                         "?.textContent) >= 4", timeout=10)
    await wait_for(root, "Number(document.querySelector('[data-metric=\"m-throughput.rps\"]')"
                         "?.textContent) > 0", timeout=10)
    # /metrics' counters: bob's bookings were pushed to the two tabs as live events.
    await wait_for(root, "document.querySelector('#m-events polyline')?.getAttribute('points')"
                         ".split(' ').map((p) => Number(p.split(',')[1])).some((y) => y < 90)",
                   timeout=10)
    # The charts have drawn several samples.
    await wait_for(root, "document.querySelector('#m-throughput polyline')"
                         ".getAttribute('points').split(' ').length >= 3", timeout=15)
    await screenshot(root, "desk-map-monitoring", tmp_path)
    # Its address opened directly: the panel for root, the plan for bob.
    await root.goto(node.http_url + "/desks/monitor")
    await wait_for(root, "document.querySelectorAll('.line-chart').length === 10")
    await bob.goto(node.http_url + "/desks/monitor")
    await wait_for(bob, "location.pathname === '/desks/' && "
                        "document.querySelectorAll('#map .desk').length > 0")
    assert unexpected(root.errors) == []
    assert unexpected(bob.errors) == []


async def test_logging_in_refuses_then_registers_and_survives_a_reload(
        node: RunningServer, new_tab: NewTab) -> None:
    tab = await new_tab(node.http_url + "/desks/")
    await wait_for(tab, "location.pathname === '/desks/login' && "
                        "document.getElementById('login-form') !== null")
    await type_into(tab, "username", "nobody-at-all")
    await type_into(tab, "password", "correct horse")
    await tab.run("document.getElementById('login-form').requestSubmit()")
    await wait_for(tab, f"{text('login-error')} === 'wrong username or password'")
    await type_into(tab, "username", "  carol  ")
    await click(tab, "#login-form button.secondary")  # Register
    await wait_for(tab, "document.querySelectorAll('#map .desk').length === 24")
    assert await tab.run(text("who-name")) == "carol"
    await tab.goto(node.http_url + "/desks/")  # the session is kept for the tab
    await wait_for(tab, "document.querySelectorAll('#map .desk').length === 24")
    await click(tab, "header .who button")  # Log out
    await wait_for(tab, "location.pathname === '/desks/login'")
    assert await tab.run("sessionStorage.getItem('tidings.desks')") is None
    assert unexpected(tab.errors, "status of 401 (Unauthorized) ") == []
