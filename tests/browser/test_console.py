"""The issue's "done" line: a browser console in JSON mode can chat.

A real headless Chromium, on a page of the node's own origin, runs what a person
would type in its DevTools console: ``new WebSocket(...)``, JSON envelopes in text
frames. The other side is a raw Python client in binary MessagePack framing.
Every wait is bounded: the JavaScript ones by ``next()``'s own timer, the
DevTools calls by ``Page.run``'s, the Python ones by ``Wire``'s.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.conftest import Page
from tidings.protocol.codes import ErrorCode, MsgType

pytestmark = pytest.mark.asyncio

TEXT = "héllo 🙂"

# Typed once into the console of each test's tab. ``login`` opens a socket, sends
# MsgAuth and reads the backlog; ``ws.put`` sends an envelope; ``ws.next(type)``
# returns the next frame of that type, skipping presence pushes (104) and failing
# on anything else, on close, or after ``ms`` milliseconds.
HELPERS = r"""
function tidings(url) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.frames = [];  // every frame received, in order, each marked text or not
  ws.read = 0;     // frames before this index were consumed by next()
  ws.seq = 0;
  let wake = () => {};
  ws.onmessage = (e) => {
    const text = typeof e.data === "string";
    const frame = text ? JSON.parse(e.data) : {type: -1, bytes: e.data.byteLength};
    frame.text = text;
    ws.frames.push(frame);
    wake();
  };
  ws.closed = new Promise((ok) => ws.addEventListener("close", (e) => {
    wake();
    ok({code: e.code, reason: e.reason});
  }));
  ws.put = (type, payload) => {
    const seq = ++ws.seq;
    ws.send(JSON.stringify(payload === undefined ? {type, seq} : {type, seq, payload}));
    return seq;
  };
  ws.next = async (type, ms = 5000, skip = [104]) => {
    const deadline = Date.now() + ms;
    for (;;) {
      while (ws.read < ws.frames.length) {
        const frame = ws.frames[ws.read++];
        if (frame.type === type) return frame;
        if (!skip.includes(frame.type))
          throw new Error(`expected type ${type}, got ${JSON.stringify(frame)}`);
      }
      if (ws.readyState >= WebSocket.CLOSING)
        throw new Error(`socket closed while waiting for type ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame of type ${type} within ${ms} ms`);
      await new Promise((ok) => { wake = ok; setTimeout(ok, left); });
    }
  };
  return new Promise((ok, fail) => {
    ws.onopen = () => ok(ws);
    ws.onerror = () => fail(new Error(`cannot open ${url}`));
  });
}

async function login(url, token, deviceId) {
  const ws = await tidings(url);
  const seq = ws.put(1, deviceId ? {token, device_id: deviceId} : {token});
  ws.auth = await ws.next(101);
  if (ws.auth.seq !== seq || !ws.auth.payload.success || !ws.auth.text)
    throw new Error(`auth failed: ${JSON.stringify(ws.auth)}`);
  ws.backlog = [];
  for (;;) {
    const page = await ws.next(103);
    if (page.seq !== 0 || !page.text) throw new Error(`bad backlog: ${JSON.stringify(page)}`);
    ws.backlog.push(...page.payload.messages);
    if (!page.payload.has_more) return ws;
  }
}
"""


def js(value: Any) -> str:
    """A Python value as a JavaScript literal, as one would type it."""
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
async def browser(console: Page) -> Page:
    """The node's console, with the helpers typed in."""
    await console.run(HELPERS)
    return console


async def test_browser_chat_reaches_a_python_client(server, browser, connect):
    me_id, me_token = await server.quick_user()
    bob_id, bob_token = await server.quick_user()
    bob = await connect(bob_token)  # binary MessagePack
    got = await browser.run(f"""
        const ws = await login({js(server.ws_url)}, {js(me_token)});
        const seq = ws.put(2, {{to: {bob_id}, type: "text", content: {js(TEXT)}}});
        const ack = await ws.next(107);
        ({{auth: ws.auth, backlog: ws.backlog, seq, ack}})
    """)
    assert got["auth"]["type"] == MsgType.AUTH_RSP and got["auth"]["seq"] == 1
    assert got["auth"]["payload"]["user_id"] == me_id and got["auth"]["payload"]["device_id"]
    assert got["backlog"] == []
    ack = got["ack"]
    assert ack["text"] and ack["type"] == MsgType.CHAT_ACK and ack["seq"] == got["seq"] == 2
    assert ack["payload"]["message_id"] >= 1 and ack["payload"]["created_at"] > 0

    _, push = await bob.expect(MsgType.CHAT_PUSH)
    assert push == {"message_id": ack["payload"]["message_id"], "from": me_id, "to": bob_id,
                    "type": "text", "content": TEXT,
                    "created_at": ack["payload"]["created_at"], "status": "sent"}


async def test_python_chat_is_pushed_live_to_the_browser_which_acks(server, browser, connect):
    me_id, me_token = await server.quick_user()
    alice_id, alice_token = await server.quick_user()
    alice = await connect(alice_token)
    auth = await browser.run(f"""
        const ws = await login({js(server.ws_url)}, {js(me_token)});
        ws.auth.payload
    """)
    assert auth["success"] and auth["user_id"] == me_id

    ack = await alice.chat(me_id, f"from python: {TEXT}")
    push = await browser.run("""
        const push = await ws.next(102);
        ws.put(3, {message_id: push.payload.message_id, status: "delivered"});
        push
    """)
    assert push["text"] and push["type"] == MsgType.CHAT_PUSH
    assert push["payload"] == {"message_id": ack["message_id"], "from": alice_id, "to": me_id,
                               "type": "text", "content": f"from python: {TEXT}",
                               "created_at": ack["created_at"], "status": "sent"}

    _, receipt = await alice.expect(MsgType.RECEIPT_PUSH)
    assert receipt == {"message_ids": [ack["message_id"]], "status": "delivered", "by": me_id}
    # the ack produced nothing the browser did not ask for
    assert await browser.run("ws.frames.slice(ws.read).filter((f) => f.type !== 104)") == []


async def test_offline_browser_device_gets_exactly_what_it_missed(server, browser, connect):
    me_id, me_token = await server.quick_user()
    _, alice_token = await server.quick_user()
    alice = await connect(alice_token)
    url = js(server.ws_url)

    # online: one message, received live and acknowledged (the device's cursor moves)
    await browser.run(f"const first = await login({url}, {js(me_token)}); first.auth")
    before = await alice.chat(me_id, "before")
    await browser.run("""
        const seen = await first.next(102);
        first.put(3, {message_id: seen.payload.message_id, status: "delivered"});
    """)
    _, receipt = await alice.expect(MsgType.RECEIPT_PUSH)  # the cursor is stored by now
    assert receipt["message_ids"] == [before["message_id"]]
    device_id = await browser.run("""
        first.close();
        await first.closed;
        first.auth.payload.device_id
    """)
    assert device_id

    # offline: three more
    missed = [await alice.chat(me_id, f"missed {i} {TEXT}") for i in range(3)]

    # back, as the same device: exactly those three, in order, once
    back = await browser.run(f"""
        const again = await login({url}, {js(me_token)}, {js(device_id)});
        again.put(6);  // a ping: anything pushed after the backlog would come before the pong
        await again.next(105);
        ({{auth: again.auth.payload, backlog: again.backlog,
          types: again.frames.map((f) => f.type).filter((t) => t !== 104),
          allText: again.frames.every((f) => f.text)}})
    """)
    assert back["auth"]["device_id"] == device_id and back["auth"]["user_id"] == me_id
    assert [m["message_id"] for m in back["backlog"]] == [a["message_id"] for a in missed]
    assert [m["content"] for m in back["backlog"]] == [f"missed {i} {TEXT}" for i in range(3)]
    assert back["types"] == [MsgType.AUTH_RSP, MsgType.SYNC_RSP, MsgType.PONG]  # no live copies
    assert back["allText"]

    # a second browser "device" of the same user has confirmed nothing: it gets everything
    other = await browser.run(f"""
        const other = await login({url}, {js(me_token)}, "browser-second-device");
        ({{auth: other.auth.payload, backlog: other.backlog}})
    """)
    assert other["auth"]["device_id"] == "browser-second-device"
    assert [m["message_id"] for m in other["backlog"]] == [
        before["message_id"], *(a["message_id"] for a in missed)]


async def test_a_frame_that_is_not_json_is_answered_in_json_and_the_socket_stays(
        server, browser, connect):
    me_id, me_token = await server.quick_user()
    bob_id, bob_token = await server.quick_user()
    bob = await connect(bob_token)
    got = await browser.run(f"""
        const ws = await login({js(server.ws_url)}, {js(me_token)});
        ws.send("hello? this is not JSON");
        const error = await ws.next(106);
        const ping = ws.put(6);
        const pong = await ws.next(105);
        const seq = ws.put(2, {{to: {bob_id}, type: "text", content: "still here"}});
        const ack = await ws.next(107);
        ({{error, ping, pong, seq, ack, open: ws.readyState === WebSocket.OPEN}})
    """)
    error = got["error"]
    assert error["text"], "the error must come back as a TEXT frame"
    assert error["type"] == MsgType.ERROR and error["seq"] == 0
    assert error["payload"]["code"] == ErrorCode.INVALID_MESSAGE
    assert error["payload"]["message"]
    assert got["pong"]["text"] and got["pong"]["seq"] == got["ping"]
    assert got["ack"]["text"] and got["ack"]["seq"] == got["seq"]
    assert got["open"]
    _, push = await bob.expect(MsgType.CHAT_PUSH)
    assert push["message_id"] == got["ack"]["payload"]["message_id"]
    assert push["content"] == "still here" and push["from"] == me_id
