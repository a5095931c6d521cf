"""Desk administration in the desk map app, in real Chromium: a desk admin places a desk
on the plan, drags it, renames it, adds a department and deletes the desk, and a second
person's plan follows each step live; a user who is not a desk admin sees no admin
control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Page
from tests.browser.desk_map import desk, desk_map_built, open_app, text, unexpected
from tests.browser.tabs import NewTab, js, new_tab, screenshot, wait_for
from tests.desks.conftest import settle
from tests.support.server import RunningServer
from tidings.apps.desks.demo import load_demo

pytestmark = pytest.mark.usefixtures("desk_map_built")
__all__ = ["desk_map_built", "new_tab"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node on SQLite with the demo building, where "root" alone is a desk admin."""
    server = await RunningServer(f"sqlite:///{tmp_path / 'desks.db'}",
                                 desk_admins=["root"]).start()
    try:
        await load_demo(server.node.desks.db, floors=1, desks_per_floor=24)
        await settle(server)
        yield server
    finally:
        await server.stop()


async def me(node: RunningServer, token: str) -> tuple[int, Any]:
    assert node.http is not None
    async with node.http.get(node.http_url + "/api/v1/desks/me",
                             headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def drag(tab: Page, selector: str, dx: float, dy: float) -> None:
    """Press the mouse on an element's centre, move by (dx, dy) in steps, release."""
    box = await tab.run(f"(() => {{ const r = document.querySelector({js(selector)})"
                        ".getBoundingClientRect(); return [r.x + r.width / 2, "
                        "r.y + r.height / 2]; })()")
    x, y = box
    await tab.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y,
                                                "button": "left", "buttons": 1,
                                                "clickCount": 1})
    for step in range(1, 11):
        await tab.send("Input.dispatchMouseEvent", {
            "type": "mouseMoved", "x": x + dx * step / 10, "y": y + dy * step / 10,
            "button": "left", "buttons": 1})
    await tab.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x + dx,
                                                "y": y + dy, "button": "left", "buttons": 0,
                                                "clickCount": 1})


async def test_a_desk_admin_places_moves_edits_and_deletes_a_desk_seen_live(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    root_id, root_token = await node.new_user("root")
    bob_id, bob_token = await node.new_user("bob")
    status, rights = await me(node, root_token)
    assert status == 200 and rights["desk_admin"] is True, rights
    assert (await me(node, bob_token))[1]["desk_admin"] is False
    root = await open_app(new_tab, node, root_token, root_id, "root")
    bob = await open_app(new_tab, node, bob_token, bob_id, "bob")
    assert await bob.run("document.getElementById('edit-mode') === null")
    before = await bob.run("document.querySelectorAll('#map .desk').length")

    # Place a desk: "Place a desk", then a click on an empty spot of the plan.
    await root.run("document.getElementById('edit-mode').click()")
    await wait_for(root, "document.getElementById('place-desk') !== null")
    await root.run("document.getElementById('place-desk').click()")
    spot = await root.run("(() => { const r = document.querySelector('#map .shape.aisle rect')"
                          ".getBoundingClientRect(); return [r.x + r.width * 0.3, "
                          "r.y + r.height / 2]; })()")  # in the aisle between the zones
    for kind in ("mousePressed", "mouseReleased"):
        await root.send("Input.dispatchMouseEvent", {"type": kind, "x": spot[0], "y": spot[1],
                                                     "button": "left", "clickCount": 1})
    await wait_for(bob, f"document.querySelectorAll('#map .desk').length === {before + 1}",
                   timeout=5)
    new_id = await wait_for(root, "Number(document.querySelector('#map .desk.selected')"
                                  "?.dataset.id)")
    x0 = float(await bob.run(f"document.querySelector('#map .desk[data-id=\"{new_id}\"] .body')"
                             ".getAttribute('x')"))

    # Drag it to the right: bob's plan shows it moved.
    await drag(root, f"#map .desk[data-id=\"{new_id}\"] .body", 80, 0)
    await wait_for(root, f"{text('plan-note')} === 'Desk moved.'")
    await wait_for(bob, f"Number(document.querySelector('#map .desk[data-id=\"{new_id}\"] .body')"
                        f".getAttribute('x')) > {x0 + 20}", timeout=5)

    # Resize it by its corner handle, and nudge it with the keyboard.
    width = f"Number(document.querySelector('#map .desk[data-id=\"{new_id}\"] .body')" \
            ".getAttribute('width'))"
    w0 = await bob.run(width)
    await drag(root, f"#map .desk[data-id=\"{new_id}\"] .handle", 40, 0)
    await wait_for(root, f"{text('plan-note')} === 'Desk resized.'")
    await wait_for(bob, f"{width} > {w0}", timeout=5)
    x1 = float(await bob.run(f"document.querySelector('#map .desk[data-id=\"{new_id}\"] .body')"
                             ".getAttribute('x')"))
    await root.run(f"""const g = document.querySelector('#map .desk[data-id="{new_id}"]');
        g.focus();
        g.dispatchEvent(new KeyboardEvent('keydown', {{key: 'ArrowDown', bubbles: true}}));
        g.dispatchEvent(new KeyboardEvent('keydown', {{key: 'ArrowRight', bubbles: true}}));""")
    await wait_for(bob, f"Number(document.querySelector('#map .desk[data-id=\"{new_id}\"] .body')"
                        f".getAttribute('x')) === {x1 + 10}", timeout=5)

    # Rename it in the details' editor.
    await wait_for(root, "document.getElementById('desk-editor') !== null")
    await root.run("""const n = document.getElementById('edit-name'); n.value = 'Window seat';
        n.dispatchEvent(new Event('input', {bubbles: true}));
        document.getElementById('desk-editor').requestSubmit();""")
    await wait_for(bob, f"document.querySelector('#map .desk[data-id=\"{new_id}\"] .name')"
                        "?.textContent === 'Window seat'", timeout=5)
    await screenshot(root, "desk-map-admin", tmp_path)

    # A new department from the organisation panel reaches bob's filter.
    await root.run("document.querySelector('#details button[aria-label^=Close]').click()")
    await root.run("document.getElementById('tab-org').click()")
    await root.run("""const d = document.getElementById('new-dept-name'); d.value = 'Research';
        d.dispatchEvent(new Event('input', {bubbles: true}));
        d.form.requestSubmit();""")
    await wait_for(root, f"{text('org-message')}.includes('Research added')")
    await wait_for(bob, "[...document.querySelectorAll('#dept option')]"
                        ".some((o) => o.textContent === 'Research')", timeout=5)

    # Rename the floor: bob's floor picker follows.
    await root.run("""const f = document.querySelector('#org-admin input[id^=floor-name-]');
        f.value = 'Ground floor'; f.dispatchEvent(new Event('input', {bubbles: true}));
        f.form.requestSubmit();""")
    await wait_for(bob, "[...document.querySelectorAll('#floor option')]"
                        ".some((o) => o.textContent.includes('Ground floor'))", timeout=5)

    # Delete the desk: gone from bob's plan.
    await root.run(f"""window.confirm = () => true;
        document.querySelector('#map .desk[data-id="{new_id}"]').dispatchEvent(
            new MouseEvent('pointerdown', {{bubbles: true}}));""")
    await root.run(f"document.querySelector('#map .desk[data-id=\"{new_id}\"]')"
                   ".dispatchEvent(new PointerEvent('pointerup', {bubbles: true}))")
    await wait_for(root, "document.getElementById('delete-desk') !== null")
    await root.run("document.getElementById('delete-desk').click()")
    await wait_for(bob, f"{desk(new_id)} === undefined", timeout=5)
    assert unexpected(root.errors) == [] and unexpected(bob.errors) == []
