// Channels (the broker): subscribe with since, publish, presence, across a reconnect.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as msgpack from "@msgpack/msgpack";

import { Client, ReconnectPolicy, TidingsError } from "../src/tidings.js";
import { TidingsNode, collect, nextEvent, waitFor } from "./server.js";

const FAST = new ReconnectPolicy({ initialInterval: 100, maxInterval: 400 });
let rooms = 0;
const room = () => `room:js${process.pid}_${++rooms}`;

describe("channels on a live node", () => {
  const node = new TidingsNode();
  const clients = [];
  const open = async (user, options = {}) => {
    const client = new Client(node.wsUrl, user.token, { reconnect: FAST, ...options });
    clients.push(client);
    await client.connect();
    return client;
  };

  before(() => node.start());
  after(async () => {
    for (const client of clients) client.close();
    await node.destroy();
  });

  test("a publication reaches subscribers once, with its offset, type, data and author",
       async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice, { deviceId: "alice-desk" });
    const b = await open(bob, { msgpack });
    const channel = room();
    const got = collect(b, "publication");
    const rsp = await b.subscribe(channel);
    assert.deepEqual(rsp, { channel, offset: 0, recovered: true, publications: [] });

    const ack = await a.publish(channel, { text: "hello", n: [1, 2] }, { type: "chat" });
    assert.equal(ack.channel, channel);
    assert.equal(ack.offset, 1);
    assert.equal(ack.duplicate, false);
    await waitFor(() => got.length === 1);
    assert.deepEqual(got[0], { channel, offset: 1, type: "chat", data: { text: "hello", n: [1, 2] },
                               info: { userId: alice.userId, deviceId: "alice-desk" },
                               createdAt: ack.createdAt });

    // the same idempotency key publishes once
    const first = await a.publish(channel, "once", { idempotencyKey: "k-1" });
    const again = await a.publish(channel, "once", { idempotencyKey: "k-1" });
    assert.equal(again.duplicate, true);
    assert.equal(again.offset, first.offset);
    await waitFor(() => got.length === 2);
    await new Promise((ok) => setTimeout(ok, 200));
    assert.deepEqual(got.map((p) => p.offset), [1, 2]);

    await b.unsubscribe(channel);
    await a.publish(channel, "after unsubscribe");
    await new Promise((ok) => setTimeout(ok, 200));
    assert.equal(got.length, 2);
  });

  test("subscribe with since replays what was missed, HTTP publications included", async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice);
    const channel = room();
    for (let i = 1; i <= 3; i++) await a.publish(channel, `ws ${i}`);
    const http = await node.post("/api/v1/publish", { channel, data: "from http" }, alice.token);
    assert.equal(http.status, 200);
    assert.equal(http.body.offset, 4);

    const b = await open(bob);
    const got = collect(b, "publication");
    const rsp = await b.subscribe(channel, { since: 1 });
    assert.equal(rsp.offset, 4);
    assert.equal(rsp.recovered, true);
    assert.deepEqual(rsp.publications.map((p) => p.data), ["ws 2", "ws 3", "from http"]);
    assert.deepEqual(got.map((p) => p.offset), [2, 3, 4]);  // also as events, once
    assert.equal(got[2].info.deviceId, "http");
  });

  test("join presence in a room, and refusals carry the server's code", async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice, { deviceId: "a-desk" });
    const b = await open(bob);
    const channel = room();
    await a.subscribe(channel);
    const joined = nextEvent(a, "channelpresence", (p) => p.userId === bob.userId);
    await b.subscribe(channel);
    assert.deepEqual(await joined, { channel, event: "join", userId: bob.userId,
                                     deviceId: b.deviceId });
    await assert.rejects(b.subscribe(`user:${alice.userId}`), (err) => {
      assert.ok(err instanceof TidingsError);
      assert.equal(err.code, "WS_PERMISSION_DENIED");
      return true;
    });
    await assert.rejects(b.subscribe("nosuchns:x"), { code: "WS_UNKNOWN_CHANNEL" });
    await assert.rejects(b.subscribe(channel), { code: "WS_ALREADY_SUBSCRIBED" });
  });
});

// Holds every SubscribeRsp (110) until the next Publication (111), then dispatches both
// in one go, as Node's WebSocket does with frames that arrive in one TCP read.
function coalescingSocket(held) {
  return class extends WebSocket {
    set onmessage(fn) {
      super.onmessage = fn === null ? null : (event) => {
        const type = typeof event.data === "string" ? JSON.parse(event.data).type : 0;
        if (type === 110) {
          held.push(event);
          return;
        }
        if (type === 111) for (const e of held.splice(0)) fn(e);
        fn(event);
      };
    }

    get onmessage() { return super.onmessage; }
  };
}

describe("a replay answered together with a live publication", () => {
  test("the replayed publication is delivered before the live one, not dropped", async () => {
    const node = new TidingsNode();
    await node.start();
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const held = [];
    const a = new Client(node.wsUrl, alice.token,
                         { reconnect: FAST, WebSocket: coalescingSocket(held) });
    const b = new Client(node.wsUrl, bob.token, { reconnect: FAST });
    try {
      await a.connect();
      await b.connect();
      const channel = room();
      await b.publish(channel, 1);
      const got = collect(a, "publication");
      const subscribed = a.subscribe(channel, { since: 0 });  // its answer replays 1
      await waitFor(() => held.length === 1);
      await b.publish(channel, 2);  // live: dispatched right after the held answer
      assert.deepEqual((await subscribed).publications.map((p) => p.data), [1]);
      await waitFor(() => got.length === 2);
      assert.deepEqual(got.map((p) => p.offset), [1, 2]);
    } finally {
      a.close();
      b.close();
      await node.destroy();
    }
  });
});

describe("channels across a reconnect", () => {
  test("the subscription is renewed from the last offset: every publication once, in order",
       async () => {
    const node = new TidingsNode();
    await node.start();
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = new Client(node.wsUrl, alice.token, { reconnect: FAST });
    const b = new Client(node.wsUrl, bob.token, { reconnect: FAST });
    try {
      await a.connect();
      await b.connect();
      const channel = room();
      const got = collect(a, "publication");
      const renewals = collect(a, "subscribed");
      await a.subscribe(channel);
      await b.publish(channel, 1);
      await b.publish(channel, 2);
      await waitFor(() => got.length === 2);

      await node.stop();
      const late = b.publish(channel, 3);  // waits for the node, then is published once
      const back = nextEvent(a, "ready", () => true, 15000);
      await node.start();
      await back;
      await late;
      await b.publish(channel, 4);
      await waitFor(() => got.length === 4, 15000);
      await new Promise((ok) => setTimeout(ok, 300));
      assert.deepEqual(got.map((p) => p.data), [1, 2, 3, 4]);
      assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4]);
      const renewal = renewals.find((r) => r.renewal);
      assert.ok(renewal, JSON.stringify(renewals));
      assert.equal(renewal.recovered, true);
    } finally {
      a.close();
      b.close();
      await node.destroy();
    }
  });
});
