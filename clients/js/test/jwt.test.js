// getToken (a token at connect, Refresh before expiry, a new token after close 4402) and
// rpc(), against a real `tidings serve` issuing 3-second JWTs and forwarding Rpc to a
// small HTTP backend on 127.0.0.1.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { AuthError, Client, CloseCode, ReconnectPolicy, TidingsError } from "../src/tidings.js";
import { TidingsNode, collect, nextEvent, waitFor } from "./server.js";

const FAST = new ReconnectPolicy({ initialInterval: 100, maxInterval: 400 });
let names = 0;

/** The application's rpc backend: "add" sums, anything else is refused. */
function startBackend(calls) {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => {
      const call = JSON.parse(body);
      calls.push(call);
      const answer = call.method === "add"
        ? { result: { data: { sum: call.data.reduce((a, b) => a + b, 0) } } }
        : { error: { message: `no ${call.method} for you` } };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer));
    });
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

describe("JWTs and rpc on a live node", () => {
  const calls = [];
  let backend;
  let node;
  const clients = [];

  before(async () => {
    backend = await startBackend(calls);
    node = new TidingsNode(["--jwt-secret", "an-hs256-secret-of-32-bytes-min!", "--jwt-ttl", "3",
                            "--proxy-rpc-url",
                            `http://127.0.0.1:${backend.address().port}/rpc`]);
    await node.start();
  });
  after(async () => {
    for (const client of clients) client.close();
    await node.destroy();
    await new Promise((ok) => backend.close(ok));
  });

  /** Register a user and get a JWT pair: { userId, token, refreshToken }. */
  async function jwtUser() {
    const creds = { username: `jwt${process.pid}_${++names}`, password: "correct horse" };
    assert.equal((await node.post("/api/v1/auth/register", creds)).status, 201);
    const { status, body } = await node.post("/api/v1/auth/token", creds);
    assert.equal(status, 200);
    return { userId: body.user_id, token: body.token, refreshToken: body.refresh_token };
  }

  /** getToken as an application writes it: refresh tokens over HTTP. */
  function tokenSource(user) {
    const source = {
      calls: 0,
      failWhile: () => false,
      getToken: async () => {
        source.calls += 1;
        if (source.failWhile()) throw new Error("the auth backend is down");
        const { status, body } = await node.post("/api/v1/auth/refresh",
                                                 { refresh_token: user.refreshToken });
        if (status !== 200) throw new AuthError(body.error.code, body.error.message);
        user.refreshToken = body.refresh_token;
        return body.token;
      },
    };
    return source;
  }

  test("getToken gives the first token and refreshes in-band before each expiry", async () => {
    const user = await jwtUser();
    const source = tokenSource(user);
    const client = new Client(node.wsUrl, null, { getToken: source.getToken,
                                                  refreshMargin: 1000, reconnect: FAST });
    clients.push(client);
    const disconnects = collect(client, "disconnected");
    const refreshed = collect(client, "refreshed");
    await client.connect();
    assert.equal(client.userId, user.userId);
    const first = client.expiresAt;
    assert.ok(first > Date.now());
    await waitFor(() => refreshed.length >= 3, 12000);  // past two 3 s lifetimes
    assert.ok(client.expiresAt > first + 1000);
    assert.ok((await client.ping()) >= 0);
    assert.deepEqual(disconnects, []);
    client.close();
  });

  test("without getToken an expired JWT closes 4402 and the client stops", async () => {
    const user = await jwtUser();
    const client = new Client(node.wsUrl, user.token, { reconnect: FAST });
    clients.push(client);
    await client.connect();
    const gone = await nextEvent(client, "disconnected", () => true, 10000);
    assert.equal(gone.code, CloseCode.TOKEN_EXPIRED);
    assert.equal(gone.willRetry, false);
    assert.equal(client.state, "closed");
  });

  test("a refresh that keeps failing ends in 4402 and a reconnect with a new token",
       async () => {
    const user = await jwtUser();
    const source = tokenSource(user);
    const client = new Client(node.wsUrl, null, { getToken: source.getToken,
                                                  refreshMargin: 1000, reconnect: FAST });
    clients.push(client);
    client.on("error", () => {});  // the failed refreshes are reported here
    await client.connect();
    source.failWhile = () => client.state === "active";
    const gone = await nextEvent(client, "disconnected", () => true, 10000);
    assert.equal(gone.code, CloseCode.TOKEN_EXPIRED);
    assert.equal(gone.willRetry, true);
    const ready = await nextEvent(client, "ready", () => true, 10000);
    assert.equal(ready.reconnected, true);
    client.close();
  });

  test("rpc reaches the backend and returns its answer", async () => {
    const user = await jwtUser();
    const client = new Client(node.wsUrl, null, { getToken: tokenSource(user).getToken,
                                                  reconnect: FAST });
    clients.push(client);
    await client.connect();
    assert.deepEqual(await client.rpc("add", [1, 2, 39]), { sum: 42 });
    await assert.rejects(client.rpc("forbidden"), (err) => err instanceof TidingsError &&
      err.code === "WS_REFUSED_BY_BACKEND" && /no forbidden for you/.test(err.message));
    assert.deepEqual(calls.slice(-2).map((c) => [c.method, c.user_id]),
                     [["add", user.userId], ["forbidden", user.userId]]);
    client.close();
  });

  test("a client needs a token or getToken", () => {
    assert.throws(() => new Client(node.wsUrl, null), /token or a getToken/);
  });
});
