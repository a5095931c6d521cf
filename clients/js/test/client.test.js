// The client against a real Tidings node (`tidings serve`, SQLite), over real sockets.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as msgpack from "@msgpack/msgpack";

import { AuthError, Client, ConnectionLostError, ReconnectPolicy, TidingsError }
  from "../src/tidings.js";
import { TidingsNode, collect, nextEvent, waitFor } from "./server.js";

const FAST = new ReconnectPolicy({ initialInterval: 100, maxInterval: 400 });

/** A WebSocket that records whether each frame it sends is text or binary. */
function recordingSocket(kinds) {
  return class extends WebSocket {
    send(data) {
      kinds.push(typeof data === "string" ? "text" : "binary");
      super.send(data);
    }
  };
}

describe("a client on a live node", () => {
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

  test("chats are acknowledged once stored, pushed, and receipted delivered then read",
       async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice, { deviceId: "alice-laptop" });
    const b = await open(bob);
    assert.equal(a.userId, alice.userId);
    assert.equal(a.deviceId, "alice-laptop");
    assert.ok(b.deviceId, "the server chose a device id");
    assert.equal(a.state, "active");

    const delivered = nextEvent(a, "receipt", (r) => r.status === "delivered");
    const arrived = nextEvent(b, "message");
    const ack = await a.sendChat(bob.userId, "héllo 🙂");
    assert.ok(ack.messageId >= 1 && ack.createdAt > 0);
    const message = await arrived;
    assert.deepEqual(message, { messageId: ack.messageId, from: alice.userId, to: bob.userId,
                                type: "text", content: "héllo 🙂", createdAt: ack.createdAt,
                                status: "sent" });
    // bob's client acknowledged it by itself (autoAck)
    assert.deepEqual(await delivered, { messageIds: [ack.messageId], status: "delivered",
                                        by: bob.userId });
    const read = nextEvent(a, "receipt", (r) => r.status === "read");
    assert.equal(b.ack(ack.messageId, "read"), true);
    assert.deepEqual(await read, { messageIds: [ack.messageId], status: "read", by: bob.userId });

    const history = await node.get(`/api/v1/messages?peer=${bob.userId}`, alice.token);
    assert.equal(history.body.messages[0].status, "read");
  });

  test("MessagePack framing: binary frames both ways, same results", async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const kinds = [];
    const a = await open(alice, { msgpack, WebSocket: recordingSocket(kinds) });
    const b = await open(bob, { msgpack });
    assert.equal(a.codec.binary, true);
    const arrived = nextEvent(b, "message");
    const ack = await a.sendChat(bob.userId, "packed", "text");
    assert.equal((await arrived).messageId, ack.messageId);
    assert.ok(await a.ping() >= 0);
    const page = await b.sync(0);
    assert.deepEqual(page.messages.map((m) => m.content), ["packed"]);
    assert.ok(kinds.length >= 3 && kinds.every((k) => k === "binary"), kinds.join());
  });

  test("an offline device gets its backlog once, in order, and sync re-reads it", async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice);
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await a.sendChat(bob.userId, `m${i}`));
    const b = new Client(node.wsUrl, bob.token, { deviceId: "bob-phone", reconnect: FAST });
    clients.push(b);
    const got = collect(b, "message");
    const ready = nextEvent(b, "ready");
    await b.connect();
    assert.equal((await ready).reconnected, false);
    assert.deepEqual(got.map((m) => m.messageId), acks.map((x) => x.messageId));
    assert.equal(b.lastMessageId, acks[4].messageId);

    const page = await b.sync(acks[1].messageId);
    assert.deepEqual(page.messages.map((m) => m.content), ["m2", "m3", "m4"]);
    assert.equal(page.hasMore, false);

    // the same device again: the autoAck moved its cursor, so nothing is replayed
    await nextEvent(a, "receipt", (r) => r.messageIds.includes(acks[4].messageId));
    b.close();
    const again = new Client(node.wsUrl, bob.token, { deviceId: "bob-phone" });
    clients.push(again);
    const replayed = collect(again, "message");
    await again.connect();
    assert.deepEqual(replayed, []);
  });

  test("presence: peers see a chosen status, and the user's own connections too", async () => {
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = await open(alice);
    const b = await open(bob);
    await a.sendChat(bob.userId, "now we are peers");
    const seen = nextEvent(a, "presence", (p) => p.userId === bob.userId && p.status === "away");
    const own = nextEvent(b, "presence", (p) => p.userId === bob.userId && p.status === "away");
    b.setPresence("away");
    await Promise.all([seen, own]);
    assert.equal(b.presenceStatus, "away");
  });

  test("a refused token is an AuthError, and no retry follows", async () => {
    const client = new Client(node.wsUrl, "tdg_" + "x".repeat(43), { reconnect: FAST });
    clients.push(client);
    const disconnected = nextEvent(client, "disconnected");
    await assert.rejects(client.connect(), (err) => {
      assert.ok(err instanceof AuthError, String(err));
      assert.equal(err.code, "WS_AUTH_FAILED");
      return true;
    });
    const event = await disconnected;
    assert.equal(event.code, 4401);
    assert.equal(event.willRetry, false);
    assert.equal(client.state, "closed");
    await assert.rejects(client.sendChat(1, "x"), ConnectionLostError);
  });

  test("the server's error codes reject the request they answer", async () => {
    const alice = await node.newUser();
    const a = await open(alice);
    await assert.rejects(a.sendChat(987654, "nobody"), (err) => {
      assert.ok(err instanceof TidingsError);
      assert.equal(err.code, "WS_USER_NOT_FOUND");
      return true;
    });
    const errors = collect(a, "error");
    assert.equal(a.ack(10 ** 9), true);  // an id this connection never received
    const error = await nextEvent(a, "error");
    assert.equal(error.code, "WS_MESSAGE_NOT_FOUND");
    assert.ok(error.seq > 0);
    assert.equal(errors.length, 1);
    assert.equal(a.state, "active", "an error leaves the connection up");
  });
});

describe("reconnecting (seed 001 §4.3)", () => {
  test("across a server restart: backoff, resend of unacknowledged chats, resync, once each",
       async () => {
    const node = new TidingsNode();
    await node.start();
    const [alice, bob] = [await node.newUser(), await node.newUser()];
    const a = new Client(node.wsUrl, alice.token, { deviceId: "a1", reconnect: FAST });
    const b = new Client(node.wsUrl, bob.token, { deviceId: "b1", reconnect: FAST });
    try {
      await a.connect();
      await b.connect();
      const received = collect(b, "message");
      const first = await a.sendChat(bob.userId, "before the restart");
      await nextEvent(a, "receipt", (r) => r.messageIds.includes(first.messageId));
      a.setPresence("away");

      const reconnecting = collect(a, "reconnecting");
      const down = nextEvent(a, "disconnected");
      await node.stop();
      const lost = await down;
      assert.equal(lost.code, 1001, "the server said it was going away");
      assert.equal(lost.willRetry, true);
      assert.equal(lost.delay, 100);

      // sent while offline: held, then resent with its seq once the node is back
      const offline = a.sendChat(bob.userId, "while the server was down");
      await new Promise((ok) => setTimeout(ok, 700));  // a few failed attempts
      const back = nextEvent(a, "ready", () => true, 10000);
      await node.start();
      assert.equal((await back).reconnected, true);
      const ack = await offline;
      assert.ok(ack.messageId > first.messageId);
      await waitFor(() => received.some((m) => m.messageId === ack.messageId), 15000);
      assert.deepEqual(received.map((m) => m.content),
                       ["before the restart", "while the server was down"]);

      const delays = reconnecting.map((r) => r.delay);
      assert.ok(delays.length >= 2, JSON.stringify(reconnecting));
      assert.deepEqual(delays.slice(0, 3), [100, 150, 225].slice(0, Math.min(3, delays.length)));
      assert.deepEqual(reconnecting.map((r) => r.attempt), delays.map((_, i) => i + 1));
      assert.equal(a.presenceStatus, "away");
    } finally {
      a.close();
      b.close();
      await node.destroy();
    }
  });

  test("a first attempt fails at once, unless asked to retry until the node is up", async () => {
    const node = new TidingsNode();
    await node.start();
    const user = await node.newUser();
    await node.stop();  // the port is known and closed now
    try {
      const once = new Client(node.wsUrl, user.token, { reconnect: FAST });
      await assert.rejects(once.connect(), ConnectionLostError);
      assert.equal(once.state, "closed");

      const patient = new Client(node.wsUrl, user.token, { reconnect: FAST });
      const retried = nextEvent(patient, "reconnecting", (r) => r.attempt >= 2);
      const connected = patient.connect({ retry: true });
      await retried;
      await node.start();
      await connected;
      assert.equal(patient.userId, user.userId);
      patient.close();
      assert.equal(patient.state, "closed");
    } finally {
      await node.destroy();
    }
  });
});
