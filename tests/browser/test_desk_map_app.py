"""The desk map app (/desks/, clients/desk-map) in real Chromium against a real node:
two people in two browser contexts occupy, release, reserve and cancel and each sees the
other's changes live; a raw SQL UPDATE in PostgreSQL shows up on the plan; filters
highlight; the plan zooms; a hostile desk name is shown as text; nothing errs."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.desk_map import (
    click_desk,
    desk,
    desk_map_built,
    open_app,
    text,
    unexpected,
)
from tests.browser.tabs import NewTab, js, new_tab, screenshot, wait_for
from tests.desks.conftest import settle
from tests.support.server import RunningServer
from tests.support.services import PostgresServer
from tidings.apps.desks.demo import load_demo

pytestmark = pytest.mark.usefixtures("desk_map_built")
__all__ = ["desk_map_built", "new_tab"]


@pytest.fixture
async def pg_node(postgres_server: PostgresServer
                  ) -> AsyncIterator[tuple[PostgresServer, str, RunningServer]]:
    """A node on a fresh PostgreSQL database (raw SQL changes reach it by NOTIFY)."""
    name = f"t_{secrets.token_hex(8)}"
    postgres_server.create_database(name)
    node = await RunningServer(postgres_server.url_for(name),
                               desk_admins=["alice"]).start()  # bob is not one
    try:
        yield postgres_server, name, node
    finally:
        await node.stop()
        postgres_server.drop_database(name)


async def test_two_people_book_desks_and_see_each_other_live(
        pg_node: tuple[PostgresServer, str, RunningServer], new_tab: NewTab,
        tmp_path: Path) -> None:
    postgres, name, node = pg_node
    await load_demo(node.node.desks.db, floors=2, desks_per_floor=100)  # the CLI's default
    await settle(node)
    alice_id, alice_token = await node.new_user("alice")
    bob_id, bob_token = await node.new_user("bob")
    alice = await open_app(new_tab, node, alice_token, alice_id, "alice")
    bob = await open_app(new_tab, node, bob_token, bob_id, "bob")

    # The plan: the floor's own size, zones per department, the layout, and no page scroll.
    assert await alice.run("document.querySelectorAll('#map .zone').length") == 6
    assert await alice.run("document.querySelectorAll('#map .shape.room').length") >= 4
    assert await alice.run("document.documentElement.scrollHeight <= innerHeight && "
                           "document.documentElement.scrollWidth <= innerWidth")
    first, second, third = await alice.run(
        "[...document.querySelectorAll('#map .desk.available')].slice(0, 3)"
        ".map((g) => Number(g.dataset.id))")

    # alice occupies a desk from its details: hers at once, occupied on bob's plan, with
    # her name (not an id) in bob's details; the stats follow.
    await click_desk(alice, first)
    await alice.run("document.getElementById('occupy').click()")
    await wait_for(alice, f"{text('detail-occupant')}.includes('you (alice)')")
    await wait_for(alice, f"{desk(first, 'class')}.includes('mine')")
    await wait_for(bob, f"{desk(first)} === 'occupied'", timeout=3)
    await wait_for(bob, "document.querySelector('[data-status-count=occupied]')"
                        "?.textContent === '1'", timeout=5)
    await click_desk(bob, first)
    await wait_for(bob, f"{text('detail-occupant')} === 'alice'")
    await wait_for(bob, f"{text('detail-department')} !== ''")
    assert await bob.run("document.getElementById('release') === null")

    # bob tries to reserve it: her open-ended occupancy overlaps, 409 in words.
    await bob.run("document.getElementById('reserve').click()")
    await wait_for(bob, f"{text('detail-message')}.includes('taken')")
    await screenshot(bob, "desk-map-details", tmp_path)

    # alice releases it: available again on bob's plan.
    await alice.run("document.getElementById('release').click()")
    await wait_for(bob, f"{desk(first)} === 'available'", timeout=3)
    await wait_for(bob, f"{text('detail-status')} === 'available'", timeout=3)

    # alice occupies another until a given time, and reserves a third for later.
    await click_desk(alice, second)
    await alice.run("""const until = document.getElementById('occupy-until');
        until.value = new Date(Date.now() + 7200e3 - new Date().getTimezoneOffset() * 60e3)
            .toISOString().slice(0, 16);
        until.dispatchEvent(new Event('input', {bubbles: true}));
        document.getElementById('occupy').click();""")
    await wait_for(alice, f"{text('bookings')}.includes('Occupied by you')")
    assert not await alice.run(f"{text('bookings')}.includes('until released')")
    await click_desk(alice, third)
    await alice.run("document.getElementById('reserve').click()")
    await wait_for(alice, "document.querySelector('#bookings .cancel-booking') !== null")
    await wait_for(bob, f"{desk(third)} === 'reserved'", timeout=3)
    await click_desk(bob, third)
    await wait_for(bob, f"{text('bookings')}.includes('Reserved by alice')")
    assert await bob.run("document.querySelector('#bookings .cancel-booking') === null")
    # alice cancels her reservation: bob sees the desk free and the booking gone.
    await alice.run("document.querySelector('#bookings .cancel-booking').click()")
    await wait_for(bob, f"{desk(third)} === 'available'", timeout=3)
    await wait_for(bob, f"{text('bookings')}.includes('No current or upcoming')", timeout=3)

    # An operator changes the database by hand: both plans follow.
    postgres.psql(f"UPDATE workstations SET status = 'maintenance' WHERE id = {int(first)}",
                  database=name)
    await wait_for(alice, f"{desk(first)} === 'maintenance'", timeout=5)
    await wait_for(bob, f"{desk(first)} === 'maintenance'", timeout=5)

    # A hostile desk name is text on the plan, never markup.
    hostile = "<img src=x onerror=window.pwned=1>"
    status, _ = await _call(node, alice_token, "POST", "/api/workstations", {
        "name": hostile, "x_position": 10, "y_position": 10, "floor_id": 1})
    assert status == 201
    await wait_for(bob, f"[...document.querySelectorAll('#map .desk .name')]"
                        f".some((t) => t.textContent === {js(hostile)})", timeout=5)
    assert await bob.run("window.pwned === undefined && document.querySelector('#map img') "
                         "=== null")

    # Filters: a department and a search highlight their desks and dim the others.
    await alice.run("document.querySelector('#details button[aria-label^=Close]').click()")
    await alice.run("""const s = document.getElementById('search'); s.value = 'Design';
        s.dispatchEvent(new Event('input', {bubbles: true}));""")
    matched = await wait_for(alice, "Number(document.getElementById('match-count')?.textContent)")
    assert matched == await alice.run("document.querySelectorAll('#map .desk.match').length")
    assert await alice.run("document.querySelectorAll('#map .desk.dim').length") > 0
    await alice.run("""const s = document.getElementById('search'); s.value = '';
        s.dispatchEvent(new Event('input', {bubbles: true}));""")

    # Zoom by button and keyboard; Fit goes back.
    await alice.run("document.getElementById('zoom-in').click()")
    await wait_for(alice, f"{text('zoom-level')} === '125 %'")
    await alice.run("""const m = document.getElementById('map'); m.focus();
        m.dispatchEvent(new KeyboardEvent('keydown', {key: '+', bubbles: true}));""")
    await wait_for(alice, f"{text('zoom-level')} === '156 %'")
    await alice.run("document.getElementById('zoom-fit').click()")
    await wait_for(alice, f"{text('zoom-level')} === '100 %'")

    # Another floor from the picker: its own desks, and live events of that floor.
    await alice.run("""const f = document.getElementById('floor'); f.selectedIndex = 1;
        f.dispatchEvent(new Event('change', {bubbles: true}));""")
    await wait_for(alice, "[...document.querySelectorAll('#map .desk')].every((g) => "
                          "Number(g.dataset.id) > 100)")
    await alice.run("document.activeElement?.blur()")
    await screenshot(alice, "desk-map", tmp_path)
    # No non-admin sees administration.
    assert await bob.run("document.getElementById('edit-mode') === null")
    assert unexpected(alice.errors, "/api/workstations") == []
    assert unexpected(bob.errors, "status of 409 (Conflict) ") == []


async def _call(node: RunningServer, token: str, method: str, path: str,
                body: object = None) -> tuple[int, object]:
    assert node.http is not None
    async with node.http.request(method, node.http_url + path, json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()
