// Tidings from Node with the npm package: two users, a chat, a channel, an editing lock.
//
//   node --experimental-websocket quickstart.mjs [http://127.0.0.1:8443]
//
// (Node 22 has WebSocket without the flag.) Registers two fresh users on the server
// given, then: Alice sends Bob a chat over /ws; Bob publishes on a channel Alice
// subscribed to; Alice takes the editing lock of a document and listens on its socket.
// Prints what happens, and exits non-zero if something did not.
import { Client, HttpApi } from "tidings-client";
import { EditingSession } from "tidings-client/editing";

const base = process.argv[2] ?? "http://127.0.0.1:8443";
const suffix = Math.random().toString(36).slice(2, 8);
const password = "correct horse battery";

/**
 * @param {string} name
 * @returns {Promise<{api: HttpApi, userId: number}>}
 */
async function user(name) {
  const api = new HttpApi(base);
  const { user_id: userId } = await api.register(`${name}-${suffix}`, password);
  await api.login(`${name}-${suffix}`, password);
  return { api, userId };
}

/**
 * @template T
 * @param {import("tidings-client").Client} client
 * @param {"message" | "publication"} name
 * @returns {Promise<any>}
 */
function next(client, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within 10 s`)), 10000);
    const off = client.on(name, (detail) => { clearTimeout(timer); off(); resolve(detail); });
  });
}

const alice = await user("alice");
const bob = await user("bob");
const aliceWs = new Client(alice.api.wsUrl, alice.api.token ?? "", { deviceId: "node" });
const bobWs = new Client(bob.api.wsUrl, bob.api.token ?? "", { deviceId: "node" });
try {
  await aliceWs.connect();
  await bobWs.connect();

  // A chat: sendChat resolves once the server stored it.
  const arrival = next(bobWs, "message");
  const { messageId } = await aliceWs.sendChat(bob.userId, "hello from node");
  const message = await arrival;
  console.log(`bob got #${message.messageId} (sent as #${messageId}): ${message.content}`);
  if (message.content !== "hello from node") throw new Error("wrong message");

  // A channel: Alice subscribes over /ws, Bob publishes over HTTP.
  const channel = `room:js-${suffix}`;
  await aliceWs.subscribe(channel);
  const published = next(aliceWs, "publication");
  const stored = await bob.api.publish(channel, { text: "standup in 5" }, { type: "notice" });
  const publication = await published;
  console.log(`alice got ${publication.type} #${publication.offset} (stored at ${stored.offset})`);
  if (JSON.stringify(publication.data) !== '{"text":"standup in 5"}') throw new Error("wrong data");

  // An editing lock (seed 002): a workspace, a document, its session and socket.
  const workspace = await alice.api.request("POST", "/api/v1/workspaces", { name: "docs" });
  const session = await EditingSession.start(alice.api, workspace.id, 1);
  const snapshot = await session.listen();
  console.log(`editing: holds the lock ${session.editing}, socket says ${JSON.stringify(snapshot).length} bytes`);
  if (!session.editing) throw new Error("the first session should hold the lock");
  const ended = await session.end();
  if (!ended.was_editing) throw new Error("the session should have been editing");
  console.log("quickstart: ok");
} finally {
  aliceWs.close();
  bobWs.close();
}
