"""Seed 002's takeover flow on /demo/editing in real Chromium: two people, the editor's
dialog with its countdown, approval, rejection, expiry, and the polling fallback when
the browser has no WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.conftest import Page
from tests.browser.tabs import NewTab, click, js, new_tab, screenshot, type_into, wait_for
from tests.support.server import RunningServer

__all__ = ["new_tab"]
NO_WEBSOCKET = "delete window.WebSocket;"  # as behind a proxy that blocks upgrades


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for node in started:
        await node.stop()


async def start_node(nodes: list[RunningServer], tmp_path: Path, **settings) -> RunningServer:
    node = await RunningServer(f"sqlite:///{tmp_path / 'editing.db'}", **settings).start()
    nodes.append(node)
    return node


async def person(node: RunningServer, new_tab: NewTab, *, websocket: bool = True
                 ) -> tuple[Page, str]:
    """A user logged in on /demo/editing in a browser context of their own."""
    user_id, token = await node.quick_user()
    name = (await node.node.store.get_user(user_id)).username
    tab = await new_tab("about:blank")
    if not websocket:
        await tab.send("Page.addScriptToEvaluateOnNewDocument", {"source": NO_WEBSOCKET})
    await tab.goto(node.http_url + "/demo/editing")
    await tab.run(f"""sessionStorage.setItem("tidings.editing", JSON.stringify({{
        token: {js(token)}, userId: {user_id}, username: {js(name)}}}))""")
    await tab.goto(node.http_url + "/demo/editing")
    await wait_for(tab, "!document.getElementById('editing-view').hidden")
    return tab, name


async def share_document(owner: Page, other: str) -> None:
    """The owner creates a workspace, adds ``other`` as an editor and opens document 1."""
    await type_into(owner, "new-workspace", "Specs <b>2027</b>")
    await owner.run("document.getElementById('new-workspace-form').requestSubmit()")
    await wait_for(owner, "document.getElementById('workspace')?.options.length === 1")
    await type_into(owner, "member", other)
    await owner.run("document.getElementById('member-form').requestSubmit()")
    await wait_for(owner, "document.getElementById('result').textContent.includes('may now edit')")
    await open_document(owner)


async def open_document(tab: Page) -> None:
    await tab.run("document.getElementById('open-form').requestSubmit()")
    await wait_for(tab, "document.getElementById('editor-line').textContent !== ''")


def text(element_id: str) -> str:
    return f"document.getElementById({js(element_id)}).textContent"


async def test_takeover_approved_then_rejected_with_the_30_second_countdown(
        nodes: list[RunningServer], new_tab: NewTab, tmp_path: Path) -> None:
    node = await start_node(nodes, tmp_path)
    alice, alice_name = await person(node, new_tab)
    bob, bob_name = await person(node, new_tab)
    await share_document(alice, bob_name)
    await wait_for(alice, f"{text('editor-line')} === 'You are editing this document.'")
    await wait_for(alice, f"{text('transport')}.startsWith('Live')")
    assert await alice.run(f"{text('doc-title')}.includes('Specs <b>2027</b>')")  # text, not HTML

    await bob.goto(node.http_url + "/demo/editing")  # bob is a member now
    await wait_for(bob, "document.getElementById('workspace')?.options.length === 1")
    await open_document(bob)
    await wait_for(bob, f"{text('editor-line')}.startsWith({js(alice_name)} + ' is editing')")
    assert await bob.run("document.getElementById('text').disabled")

    # bob asks; alice's dialog counts down from 30 s; she hands over
    await click(bob, "#request")
    await wait_for(bob, "document.getElementById('waiting').open")
    await wait_for(alice, "document.getElementById('incoming').open")
    assert await alice.run(f"{text('incoming-text')}") == f"{bob_name} asks to take over editing."
    left = int(await alice.run(text("incoming-left")))
    assert 25 <= left <= 30, left
    assert 25 <= int(await bob.run(text("waiting-left"))) <= 30
    await screenshot(alice, "editing-request", tmp_path)
    await click(alice, "#approve")
    await wait_for(bob, f"{text('waiting-result')}.includes('you are editing now')")
    assert await bob.run("document.getElementById('waiting-countdown').hidden")
    await wait_for(bob, "!document.getElementById('text').disabled")
    await wait_for(alice, f"{text('editor-line')}.startsWith({js(bob_name)} + ' is editing')")
    assert await alice.run("!document.getElementById('incoming').open")
    await screenshot(bob, "editing-result", tmp_path)
    await click(bob, "#waiting-close")

    # alice asks back; bob keeps editing
    await click(alice, "#request")
    await wait_for(bob, "document.getElementById('incoming').open")
    assert not await alice.run("document.getElementById('waiting-countdown').hidden")
    await click(bob, "#reject")
    await wait_for(alice, f"{text('waiting-result')}.includes('declined')")
    await wait_for(bob, f"{text('editor-line')} === 'You are editing this document.'")
    assert alice.errors == [] and bob.errors == []


async def test_expiry_and_the_polling_fallback_without_websocket(
        nodes: list[RunningServer], new_tab: NewTab, tmp_path: Path) -> None:
    node = await start_node(nodes, tmp_path, takeover_timeout=4.0)
    alice, _ = await person(node, new_tab, websocket=False)
    bob, bob_name = await person(node, new_tab, websocket=False)
    await share_document(alice, bob_name)
    await wait_for(alice, f"{text('transport')}.startsWith('Polling')")
    await bob.goto(node.http_url + "/demo/editing")
    await wait_for(bob, "document.getElementById('workspace')?.options.length === 1")
    await open_document(bob)
    await wait_for(bob, f"{text('transport')}.startsWith('Polling')")

    # nobody answers: the request expires on both sides (found by polling)
    await click(bob, "#request")
    await wait_for(alice, "document.getElementById('incoming').open")  # pending-requests poll
    assert int(await alice.run(text("incoming-left"))) <= 4
    await wait_for(alice, "!document.getElementById('incoming').open", timeout=10)
    await wait_for(bob, f"{text('waiting-result')}.includes('expired')", timeout=10)
    await wait_for(alice, f"{text('editor-line')} === 'You are editing this document.'")
    await click(bob, "#waiting-close")

    # asked again and approved: request-status polling tells bob
    await click(bob, "#request")
    await wait_for(alice, "document.getElementById('incoming').open")
    await click(alice, "#approve")
    await wait_for(bob, f"{text('waiting-result')}.includes('you are editing now')", timeout=10)
    await wait_for(alice, f"{text('editor-line')}.startsWith({js(bob_name)} + ' is editing')",
                   timeout=10)
    assert alice.errors == [] and bob.errors == []
