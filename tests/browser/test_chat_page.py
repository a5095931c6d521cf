"""The chat demo (/demo/chat) in real Chromium: two people in two browser contexts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import Page
from tests.browser.tabs import NewTab, click, js, new_tab, screenshot, type_into, wait_for
from tests.support.server import RunningServer
from tidings.client import Client, Receipt

pytestmark = pytest.mark.asyncio
__all__ = ["new_tab"]

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


async def sign_up(tab: Page, username: str) -> None:
    """Register through the page's form and wait until the chat is live."""
    await type_into(tab, "username", username)
    await type_into(tab, "password", "correct horse")
    await click(tab, "#register-button")
    await wait_for(tab, "!document.getElementById('chat-view').hidden")
    await wait_for(tab, "document.getElementById('offline').hidden && "
                        "document.getElementById('my-dot').className === 'dot online'")


async def start_chat(tab: Page, username: str) -> None:
    await type_into(tab, "start-name", username)
    await tab.run("document.getElementById('start-form').requestSubmit()")
    await wait_for(tab, f"document.getElementById('peer-name').textContent === {js(username)}")


async def say(tab: Page, text: str) -> None:
    await type_into(tab, "composer-text", text)
    await tab.run("document.getElementById('composer').requestSubmit()")


def last_bubble(attr: str = "data-status") -> str:
    return ("[...document.querySelectorAll('#messages .bubble.mine')]"
            f".at(-1)?.getAttribute({js(attr)})")


async def test_two_people_chat_and_see_presence_ticks_and_text_as_text(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    alice = await new_tab(node.http_url + "/demo/chat")
    bob = await new_tab(node.http_url + "/demo/chat")
    await sign_up(alice, "alice")
    await sign_up(bob, "bob")

    await start_chat(alice, "bob")
    await say(alice, "hi bob")
    # stored (ChatAck) → ✓; bob's client confirms it → ✓✓ delivered; bob is not looking yet
    await wait_for(alice, f"{last_bubble()} === 'delivered'")
    assert await alice.run(f"{last_bubble('data-id')} > 0")
    await wait_for(bob, "document.querySelector('#contacts .unread')?.textContent === '1'")

    # bob opens the conversation: the message is read, and alice's ticks turn blue
    await click(bob, "#contacts button[data-peer]")
    await wait_for(bob, "[...document.querySelectorAll('#messages .bubble .text')]"
                        ".some((e) => e.textContent === 'hi bob')")
    await wait_for(alice, f"{last_bubble()} === 'read'")
    assert await alice.run("document.querySelector('#messages .bubble.mine .ticks.read') !== null")

    # presence dots: each sees the other online (they are peers now)
    await wait_for(alice, "document.getElementById('peer-dot').className === 'dot online'")
    await wait_for(bob, "document.getElementById('peer-dot').className === 'dot online'")

    # hostile text is shown as text and never runs
    await say(bob, HOSTILE)
    await wait_for(alice, "[...document.querySelectorAll('#messages .bubble .text')]"
                          f".some((e) => e.textContent === {js(HOSTILE)})")
    injected = "document.querySelectorAll('#messages img, #messages script').length"
    assert await alice.run(injected) == 0
    assert await alice.run("window.pwned === undefined")
    # alice is looking at the conversation: bob's message is read at once
    await wait_for(bob, f"{last_bubble()} === 'read'")

    await screenshot(alice, "chat", tmp_path)

    # bob goes away: alice sees the dot change without reloading
    await bob.run("document.getElementById('logout').click()")
    await wait_for(alice, "document.getElementById('peer-dot').className === 'dot offline'")
    assert alice.errors == [] and bob.errors == []


async def test_offline_banner_counts_down_and_the_page_recovers_without_reload(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    alice = await new_tab(node.http_url + "/demo/chat")
    await sign_up(alice, "carol")
    user_id = await alice.run("JSON.parse(sessionStorage.getItem('tidings.chat')).userId")
    bob_id, bob_token = await node.quick_user()
    await alice.run("window.marker = 'same page'")

    # the network goes away: the socket is dropped and every new one fails
    await alice.send("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    assert await node.drop_connections(user_id) == 1
    text = await wait_for(alice, "!document.getElementById('offline').hidden && "
                                 "document.getElementById('offline-text').textContent")
    assert text.startswith("Offline")
    countdown = await wait_for(
        alice, "/reconnecting in \\d+ s/"
               ".exec(document.getElementById('offline-text').textContent)?.[0]")
    assert countdown.startswith("reconnecting in")
    await screenshot(alice, "chat-offline", tmp_path)

    # meanwhile a message arrives for carol
    async with Client(node.ws_url, bob_token) as bob:
        await bob.send_chat(to=user_id, content="sent while you were offline")

    # back online: no reload, the banner goes, the missed message shows up
    await alice.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    await wait_for(alice, "document.getElementById('offline').hidden", timeout=35)
    await wait_for(alice, f"!!document.querySelector('#contacts button[data-peer=\"{bob_id}\"]')")
    await click(alice, f"#contacts button[data-peer=\"{bob_id}\"]")
    await wait_for(alice, "[...document.querySelectorAll('#messages .bubble .text')]"
                          ".some((e) => e.textContent === 'sent while you were offline')")
    assert await alice.run("window.marker") == "same page"
    assert [e for e in alice.errors if "ERR_INTERNET_DISCONNECTED" not in e] == []


async def test_history_loads_older_pages_on_scroll(
        node: RunningServer, new_tab: NewTab) -> None:
    dave_id, dave_token = await node.quick_user()
    erin_id, erin_token = await node.quick_user()
    dave_name = (await node.node.store.get_user(dave_id)).username
    # 70 old messages, already received and confirmed by erin's browser device
    async with Client(node.ws_url, dave_token) as dave, \
            Client(node.ws_url, erin_token, device_id="web-erin") as erin:
        for i in range(70):
            await dave.send_chat(to=erin_id, content=f"old {i}")
        got = 0
        async for _ in erin.events():
            got += 1
            if got == 70:
                break
        async for event in dave.events():  # erin's cumulative ack is stored: receipt
            if isinstance(event, Receipt) and event.message_ids[-1] == got and got:
                break
    tab = await new_tab(node.http_url + "/demo/chat")
    await tab.run(f"""sessionStorage.setItem("tidings.chat", JSON.stringify({{
        token: {js(erin_token)}, userId: {erin_id}, username: "erin", deviceId: "web-erin"}}))""")
    await tab.goto(node.http_url + "/demo/chat")
    await wait_for(tab, "document.getElementById('offline').hidden && "
                        "document.getElementById('my-dot').className === 'dot online'")
    await start_chat(tab, dave_name)
    count = "document.querySelectorAll('#messages .bubble').length"
    await wait_for(tab, f"{count} === 30")  # the newest page first
    for expected in (60, 70):  # older pages as the reader scrolls up
        await tab.run("const box = document.getElementById('messages'); box.scrollTop = 0; "
                      "box.dispatchEvent(new Event('scroll'));")
        await wait_for(tab, f"{count} === {expected}")
    texts = await tab.run("[...document.querySelectorAll('#messages .bubble .text')]"
                          ".map((e) => e.textContent)")
    assert texts == [f"old {i}" for i in range(70)]
    await wait_for(tab, "document.querySelector('#messages .history-note').textContent === "
                        "'Beginning of the conversation'")
    assert tab.errors == []
