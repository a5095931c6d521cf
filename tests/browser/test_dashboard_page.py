"""The operator dashboard (/) in real Chromium: its figures move with real traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.tabs import NewTab, click, new_tab, screenshot, type_into, wait_for
from tests.support.server import RunningServer
from tidings.client import Client, TidingsError

pytestmark = pytest.mark.asyncio
__all__ = ["new_tab"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node on SQLite whose admin is "root"."""
    server = await RunningServer(f"sqlite:///{tmp_path / 'dash.db'}",
                                 admin_users=["root"]).start()
    try:
        yield server
    finally:
        await server.stop()


async def log_in(tab, username: str) -> None:
    await type_into(tab, "username", username)
    await type_into(tab, "password", "correct horse")
    await tab.run("document.getElementById('login-form').requestSubmit()")


def figure(element_id: str) -> str:
    return f"Number(document.getElementById('{element_id}').textContent.replace(/[^0-9.]/g, ''))"


async def test_dashboard_counters_move_with_traffic(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    await node.new_user("root")
    tab = await new_tab(node.http_url + "/")
    assert await tab.run("!document.getElementById('login-view').hidden")
    await log_in(tab, "root")
    await wait_for(tab, "!document.getElementById('board').hidden && "
                        "document.getElementById('connections').textContent === '0'")
    assert (await tab.run("document.getElementById('store-status').textContent")).startswith("ok")

    _, alice_token = await node.quick_user()
    bob_id, bob_token = await node.quick_user()
    async with Client(node.ws_url, alice_token) as alice, Client(node.ws_url, bob_token):
        await wait_for(tab, f"{figure('connections')} === 2")
        for i in range(20):
            await alice.send_chat(to=bob_id, content=f"traffic {i}")
        with pytest.raises(TidingsError):
            await alice.send_chat(to=10**9, content="to nobody")
        await wait_for(tab, f"{figure('total-in')} >= 21 && {figure('stored')} >= 20")
        await wait_for(tab, f"{figure('total-out')} >= 20")
        await wait_for(tab, "/ms$/.test(document.getElementById('p50').textContent) && "
                            "/ms$/.test(document.getElementById('p99').textContent)")
        await wait_for(tab, "[...document.querySelectorAll('#errors td')]"
                            ".some((td) => td.textContent === 'WS_USER_NOT_FOUND')")
        # the chart has drawn the second with traffic in it
        await wait_for(tab, "document.querySelectorAll('#chart polyline').length === 2")
        await screenshot(tab, "dashboard", tmp_path)
    await wait_for(tab, f"{figure('connections')} === 0")
    await wait_for(tab, "[...document.querySelectorAll('#disconnects td')]"
                        ".some((td) => td.textContent === '1000')")
    assert tab.errors == []


async def test_a_user_who_is_not_an_admin_is_turned_away(
        node: RunningServer, new_tab: NewTab) -> None:
    await node.new_user("mallory")
    tab = await new_tab(node.http_url + "/")
    await log_in(tab, "mallory")
    message = await wait_for(tab, "document.getElementById('login-error').textContent")
    assert "not an admin" in message
    assert await tab.run("document.getElementById('board').hidden")
    await log_in(tab, "nobody-at-all")
    await wait_for(tab, "document.getElementById('login-error').textContent === "
                        "'wrong username or password'")
    await click(tab, "button[type=submit]")  # empty fields: the browser's own validation
    # Chromium logs the refused requests themselves (it always does for 4xx answers);
    # nothing else went wrong.
    expected = ("status of 403 (Forbidden) " + node.http_url + "/api/v1/admin/overview",
                "status of 401 (Unauthorized) " + node.http_url + "/api/v1/auth/login")
    assert [e for e in tab.errors if not e.endswith(expected)] == []
