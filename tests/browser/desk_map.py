"""Helpers for the desk map app's browser tests: open the built app at /desks/ logged in
as a user, find and click desks, and tell expected refusals from real console errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import Page
from tests.browser.tabs import NewTab, js, wait_for
from tests.support.server import RunningServer
from tidings.web.desk_map_app import BUILT

APP = Path(__file__).resolve().parents[2] / "clients" / "desk-map"


@pytest.fixture(scope="session")
def desk_map_built() -> Path:
    """The built app (``make test`` builds it first; a bare pytest run builds it here)."""
    if not (BUILT / "index.html").is_file():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to build the desk map app: apt-get install nodejs npm")
        if not (APP / "node_modules").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=APP, check=True, timeout=600)
        subprocess.run(["npm", "run", "build", "--", "--logLevel", "warn"], cwd=APP, check=True,
                       timeout=600)
    return BUILT


async def open_app(new_tab: NewTab, node: RunningServer, token: str, user_id: int,
                   username: str, *, path: str = "/desks/", block_websocket: bool = False
                   ) -> Page:
    """A tab of its own browser context on the app, logged in, with the floor shown and
    the live connection up. ``block_websocket`` removes ``window.WebSocket`` before any
    script runs, as a browser behind a proxy that refuses upgrades would experience."""
    tab = await new_tab(node.http_url + "/desks/login")  # the origin, for sessionStorage
    await tab.run(f"""sessionStorage.setItem("tidings.desks", JSON.stringify({{
        token: {js(token)}, userId: {user_id}, username: {js(username)}}}))""")
    if block_websocket:
        await tab.send("Page.addScriptToEvaluateOnNewDocument",
                       {"source": "delete window.WebSocket; delete window.MozWebSocket;"})
    await tab.goto(node.http_url + path)
    await wait_for(tab, "document.getElementById('live-state')?.dataset.state === 'connected'",
                   timeout=15)
    if path == "/desks/":
        await wait_for(tab, "document.querySelectorAll('#map .desk').length > 0", timeout=15)
    return tab


def desk(desk_id: int, attr: str = "data-status") -> str:
    """A JavaScript expression: an attribute of desk ``desk_id`` on the plan."""
    return (f"document.querySelector('#map .desk[data-id=\"{desk_id}\"]')"
            f"?.getAttribute({js(attr)})")


def text(element_id: str) -> str:
    return f"(document.getElementById({js(element_id)})?.textContent ?? '')"


async def click_desk(tab: Page, desk_id: int) -> None:
    """Click a desk, then wait for its details to be shown."""
    await tab.run(f"document.querySelector('#map .desk[data-id=\"{desk_id}\"]').dispatchEvent("
                  "new MouseEvent('click', {bubbles: true}))")
    await wait_for(tab, f"document.getElementById('details') && {text('details-title')} === "
                        f"document.querySelector('#map .desk[data-id=\"{desk_id}\"] .name')"
                        ".textContent")


def unexpected(errors: list[str], *allowed: str) -> list[str]:
    """Console errors but the refusals a test provoked on purpose: the browser logs every
    4xx answer (``…status of 409 (Conflict) URL``); ``allowed`` are fragments of those.
    A node without the organisation API answers 404 to ``/api/v1/desks/me``, and the
    operator check 403 for non-operators: both are expected, the app carries on."""
    expected = ("status of 404 (Not Found) ", "/api/v1/desks/me",
                "status of 403 (Forbidden) ", "/api/v1/admin/overview")
    fragments = [*allowed]
    kept = []
    for error in errors:
        if error.endswith(expected[1]) and expected[0] in error:
            continue
        if error.endswith(expected[3]) and expected[2] in error:
            continue
        if any(f in error for f in fragments):
            continue
        kept.append(error)
    return kept
