"""The desk map (/demo/desks) in real Chromium, over the vendored socket.io-client:
a desk clicked in one browser turns occupied in the other, and a raw SQL UPDATE in
PostgreSQL shows up on the map too."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.conftest import Page
from tests.browser.tabs import NewTab, js, new_tab, screenshot, wait_for
from tests.desks.conftest import make_desk_node, settle
from tests.support.server import RunningServer
from tests.support.services import PostgresServer

__all__ = ["new_tab"]


@pytest.fixture
async def pg_node(postgres_server: PostgresServer
                  ) -> AsyncIterator[tuple[PostgresServer, str, RunningServer]]:
    """A node on a fresh PostgreSQL database (raw SQL changes reach it by NOTIFY)."""
    name = f"t_{secrets.token_hex(8)}"
    postgres_server.create_database(name)
    node = await RunningServer(postgres_server.url_for(name)).start()
    try:
        yield postgres_server, name, node
    finally:
        await node.stop()
        postgres_server.drop_database(name)


async def open_map(new_tab: NewTab, node: RunningServer, token: str, user_id: int) -> Page:
    tab = await new_tab(node.http_url + "/demo/desks")
    await tab.run(f"""sessionStorage.setItem("tidings.desks", JSON.stringify({{
        token: {js(token)}, userId: {user_id}, username: "user{user_id}"}}))""")
    await tab.goto(node.http_url + "/demo/desks")
    await wait_for(tab, "document.querySelectorAll('#map .desk').length > 0 && "
                        "document.getElementById('offline').hidden")
    return tab


def desk(desk_id: int, attr: str = "data-status") -> str:
    return f"document.querySelector('#map .desk[data-id=\"{desk_id}\"]')?.getAttribute({js(attr)})"


async def test_a_desk_clicked_in_one_browser_turns_occupied_in_the_other_and_sql_shows_up(
        pg_node: tuple[PostgresServer, str, RunningServer], new_tab: NewTab,
        tmp_path: Path) -> None:
    postgres, name, node = pg_node
    desks = await make_desk_node(node)
    await settle(node)
    alice = await open_map(new_tab, node, desks.tokens[0], desks.user_ids[0])
    bob = await open_map(new_tab, node, desks.tokens[1], desks.user_ids[1])
    first = await alice.run("Number(document.querySelector('#map .desk.available').dataset.id)")

    # alice clicks a free desk: hers at once, and occupied on bob's map within a second
    await alice.run(f"document.querySelector('#map .desk[data-id=\"{first}\"]').dispatchEvent("
                    "new MouseEvent('click', {bubbles: true}))")
    await wait_for(alice, f"{desk(first, 'class')}.includes('mine')")
    await wait_for(bob, f"{desk(first)} === 'occupied'", timeout=1.5)
    # bob cannot take it; alice releases it with the keyboard
    await bob.run(f"document.querySelector('#map .desk[data-id=\"{first}\"]').dispatchEvent("
                  "new MouseEvent('click', {bubbles: true}))")
    await wait_for(bob, "document.getElementById('live').textContent.includes('occupied')")
    await alice.run(f"""const g = document.querySelector('#map .desk[data-id="{first}"]');
        g.focus();
        g.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}}));""")
    await wait_for(bob, f"{desk(first)} === 'available'", timeout=1.5)

    # an operator changes the database by hand: both maps follow
    second = await bob.run("Number([...document.querySelectorAll('#map .desk.available')].at(-1)"
                           ".dataset.id)")
    postgres.psql(f"UPDATE workstations SET status = 'maintenance' WHERE id = {int(second)}",
                  database=name)
    await wait_for(alice, f"{desk(second)} === 'maintenance'", timeout=5)
    await wait_for(bob, f"{desk(second)} === 'maintenance'", timeout=5)

    # the department filter keeps only that department's desks
    total = await alice.run("document.querySelectorAll('#map .desk').length")
    await alice.run("const s = document.getElementById('dept'); s.selectedIndex = 1; "
                    "s.dispatchEvent(new Event('change'));")
    shown = await alice.run("document.querySelectorAll('#map .desk').length")
    assert 0 < shown < total
    await alice.run("const s = document.getElementById('dept'); s.selectedIndex = 0; "
                    "s.dispatchEvent(new Event('change'));")
    await screenshot(alice, "desks", tmp_path)
    assert alice.errors == [] and bob.errors == []
