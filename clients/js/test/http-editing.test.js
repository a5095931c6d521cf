// HttpApi and EditingSession against a real Tidings node, and the client's stop on a
// revoked token (close 4403).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { Client, HttpApi, HttpError, ReconnectPolicy } from "../src/tidings.js";
import { EditingSession } from "../src/tidings-editing.js";
import { TidingsNode, nextEvent } from "./server.js";

const PASSWORD = "correct horse battery";
let names = 0;

describe("HttpApi and EditingSession on a live node", () => {
  const node = new TidingsNode();
  const closers = [];
  /** A registered, logged-in HttpApi. */
  const user = async (prefix) => {
    const api = new HttpApi(node.httpUrl + "/");
    const name = `${prefix}${process.pid}_${++names}`;
    const { user_id: userId } = await api.register(name, PASSWORD);
    const login = await api.login(name, PASSWORD, "node-test");
    assert.equal(login.user_id, userId);
    return { api, userId, name };
  };

  before(() => node.start());
  after(async () => {
    for (const close of closers) close();
    await node.destroy();
  });

  test("accounts, history, publishing and errors with their codes", async () => {
    const alice = await user("ha");
    const bob = await user("hb");
    assert.equal(alice.api.wsUrl, node.wsUrl);
    await assert.rejects(alice.api.register(alice.name, PASSWORD), (err) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 409);
      assert.equal(err.code, "USERNAME_TAKEN");
      return true;
    });
    await assert.rejects(new HttpApi(node.httpUrl).history(bob.userId),
                         { status: 401, code: "UNAUTHORIZED" });
    const client = new Client(node.wsUrl, alice.api.token);
    closers.push(() => client.close());
    await client.connect();
    await client.sendChat(bob.userId, "one");
    await client.sendChat(bob.userId, "two");
    const statuses = await bob.api.presence([alice.userId, bob.userId]);
    assert.deepEqual(statuses.map((p) => p.user_id), [alice.userId, bob.userId]);
    assert.equal(statuses[0].status, "online");  // a peer now, connected
    const page = await bob.api.history(alice.userId, { limit: 1 });
    assert.deepEqual(page.messages.map((m) => m.content), ["two"]);
    const older = await bob.api.history(alice.userId, { before: page.next_before });
    assert.deepEqual(older.messages.map((m) => m.content), ["one"]);
    const channel = `room:http${process.pid}`;
    const first = await alice.api.publish(channel, [1], { idempotencyKey: "k" });
    const again = await alice.api.publish(channel, [1], { idempotencyKey: "k" });
    assert.equal(first.offset, 1);
    assert.equal(again.duplicate, true);
    await alice.api.publish(channel, { n: 2 }, { type: "note" });
    const history = await bob.api.channelHistory(channel, { since: 1 });
    assert.deepEqual(history.publications.map((p) => [p.type, p.data]), [["note", { n: 2 }]]);
    await assert.rejects(alice.api.publish("bad name", 1), { status: 422, code: "INVALID_BODY" });
  });

  test("a body that is not Tidings' error JSON becomes HTTP_<status>", async () => {
    const proxy = createServer((_, response) => {
      response.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad Gateway</h1>");
    });
    await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
    try {
      const api = new HttpApi(`http://127.0.0.1:${proxy.address().port}`, { token: "t" });
      await assert.rejects(api.request("GET", "/api/v1/tokens"),
                           { status: 502, code: "HTTP_502", reason: "<h1>Bad Gateway</h1>" });
    } finally {
      proxy.close();
    }
  });

  test("the editing lock: start, takeover over the socket, end", async () => {
    const alice = await user("ea");
    const bob = await user("eb");
    const workspace = await alice.api.request("POST", "/api/v1/workspaces", { name: "w" });
    await alice.api.request("PUT", `/api/v1/workspaces/${workspace.id}/members/${bob.userId}`,
                            { role: "editor" });
    const mine = await EditingSession.start(alice.api, workspace.id, 7);
    const theirs = await EditingSession.start(bob.api, workspace.id, 7);
    closers.push(() => mine.close(), () => theirs.close());
    assert.equal(mine.editing, true);
    assert.equal(theirs.editing, false);
    assert.equal(theirs.editor.session_id, mine.sessionId);
    const snapshot = await mine.listen();
    assert.equal(typeof snapshot, "object");
    await theirs.listen();
    assert.deepEqual(await theirs.heartbeat(), { editing: false, editor: theirs.editor });
    assert.equal((await mine.status()).editor.session_id, mine.sessionId);

    const asked = new Promise((ok) => { const off = mine.on("takeover_request", (d) => { off(); ok(d); }); });
    const answered = new Promise((ok) => theirs.on("takeover_response", ok));
    const request = await theirs.requestTakeover(mine.sessionId);
    assert.equal(request.status, "pending");
    assert.equal((await asked).request.id, request.id);
    assert.deepEqual((await mine.pendingRequests()).map((r) => r.id), [request.id]);
    assert.equal((await mine.respond(request.id, true)).status, "approved");
    assert.equal((await answered).approved, true);
    assert.equal(theirs.editing, true);
    assert.equal((await theirs.requestStatus(request.id)).status, "approved");
    await assert.rejects(mine.respond(request.id, true), { code: "REQUEST_NOT_PENDING" });
    const ended = await theirs.end();
    assert.deepEqual(ended, { ended: true, was_editing: true });
    assert.equal(theirs.socket, null);
  });

  test("a revoked token stops the client for good (close 4403)", async () => {
    const alice = await user("ra");
    const made = await alice.api.createToken({ name: "ws", scopes: ["subscribe:room:*"],
                                               expiresIn: 600, deviceId: "bot" });
    assert.deepEqual([made.status, made.scopes, made.device_id], ["active", ["subscribe:room:*"], "bot"]);
    assert.ok((await alice.api.tokens()).some((t) => t.id === made.id && !("token" in t)));
    const client = new Client(node.wsUrl, made.token,
                              { reconnect: new ReconnectPolicy({ initialInterval: 50 }) });
    closers.push(() => client.close());
    await client.connect();
    const gone = nextEvent(client, "disconnected");
    assert.deepEqual(await alice.api.revokeToken(made.id), [made.id]);
    const detail = await gone;
    assert.equal(detail.code, 4403);
    assert.equal(detail.willRetry, false);
    assert.equal(client.state, "closed");
    await assert.rejects(client.sendChat(alice.userId, "late"), { code: "CONNECTION_LOST" });
  });
});
