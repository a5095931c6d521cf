// The chat demo: one user, one device per browser tab, on the Tidings JavaScript client.
// Presence dots, delivered/read ticks, an offline banner with the reconnect countdown,
// and older history loaded on scroll from GET /api/v1/messages.
import { AuthError, Client } from "./tidings.js";
import { ApiFailure, api, clock, fill, h, wireLogin, wsUrl } from "./common.js";

const KEY = "tidings.chat";
const PAGE = 30;
const RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };
const $ = (id) => document.getElementById(id);

let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let client = null;
let current = null;                   // peer id of the open conversation
const contacts = new Map();           // peer id -> { id, name, status, unread }
const conversations = new Map();      // peer id -> { messages: Map key -> msg, nextBefore, done }
const early = new Map();              // message id -> receipt status that beat its ChatAck
let countdown = null;

// --- views

function show(view) {
  $("login-view").hidden = view !== "login";
  $("chat-view").hidden = view !== "chat";
  $("who").hidden = view !== "chat";
}

function conversation(peer) {
  if (!conversations.has(peer)) {
    conversations.set(peer, { messages: new Map(), nextBefore: null, done: false, loading: false });
  }
  return conversations.get(peer);
}

function statusText(status) {
  return { online: "online", away: "away", offline: "offline", unknown: "" }[status] ?? "";
}

function renderContacts() {
  const items = [...contacts.values()].sort((a, b) => a.name.localeCompare(b.name));
  fill($("contacts"), items.map((c) => h("li", {}, h("button", {
    type: "button", "aria-current": c.id === current ? "true" : "false",
    "data-peer": c.id, onclick: () => open(c.id),
    "aria-label": `${c.name}, ${statusText(c.status) || "status unknown"}` +
                  (c.unread ? `, ${c.unread} unread` : ""),
  }, h("span", { class: `dot ${c.status}`, "aria-hidden": "true" }), c.name,
     c.unread ? h("span", { class: "unread", "aria-hidden": "true" }, c.unread) : null))));
  const peer = contacts.get(current);
  $("peer-name").textContent = peer ? peer.name : "No conversation";
  $("peer-dot").className = `dot ${peer ? peer.status : "unknown"}`;
  $("peer-status").textContent = peer ? statusText(peer.status) : "";
  $("composer-text").disabled = $("send").disabled = !peer;
}

function ticks(msg) {
  const label = { sending: "sending", sent: "sent", delivered: "delivered", read: "read" }[msg.status];
  const marks = { sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓" }[msg.status];
  return h("span", { class: `ticks ${msg.status}`, role: "img", "aria-label": label,
                     title: label }, marks);
}

function bubble(msg) {
  const mine = msg.from === session.userId;
  return h("div", { class: `bubble${mine ? " mine" : ""}`, "data-id": msg.messageId ?? "",
                    "data-status": msg.status },
    h("div", { class: "text" }, msg.content),
    h("div", { class: "meta" }, clock(msg.createdAt ?? Date.now()), mine ? ticks(msg) : null));
}

function renderMessages({ keepOffset = false } = {}) {
  const box = $("messages");
  if (current === null) {
    fill(box, h("p", { class: "placeholder" }, "Choose a conversation, or start one on the left."));
    return;
  }
  const conv = conversation(current);
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const sorted = [...conv.messages.values()].sort((a, b) =>
    (a.messageId ?? Infinity) - (b.messageId ?? Infinity) || a.local - b.local);
  const note = conv.done ? "Beginning of the conversation"
    : conv.loading ? "Loading older messages…" : "Scroll up for older messages";
  fill(box, h("p", { class: "history-note" }, note), sorted.map(bubble));
  if (keepOffset) box.scrollTop = box.scrollHeight - fromBottom;
  else if (nearBottom || !keepOffset) box.scrollTop = box.scrollHeight;
}

// --- contacts and presence

async function ensureContact(id, name = null) {
  if (contacts.has(id)) return contacts.get(id);
  const contact = { id, name: name ?? `user ${id}`, status: "unknown", unread: 0 };
  contacts.set(id, contact);
  if (name === null) {
    const found = await api(`/api/v1/users?ids=${id}`, { token: session.token }).catch(() => null);
    if (found?.users?.[0]) contact.name = found.users[0].username;
  }
  saveContacts();
  refreshPresence([id]);
  renderContacts();
  return contact;
}

function saveContacts() {
  localStorage.setItem(`${KEY}.contacts.${session.userId}`,
                       JSON.stringify([...contacts.values()].map((c) => [c.id, c.name])));
}

async function refreshPresence(ids) {
  if (!ids.length) return;
  try {
    const { presence } = await api(`/api/v1/presence?user_ids=${ids.join(",")}`,
                                   { token: session.token });
    for (const p of presence) {
      const c = contacts.get(p.user_id);
      if (c) c.status = p.status;
    }
    renderContacts();
  } catch { /* shown as unknown; live pushes correct it */ }
}

// --- conversations

async function open(peer) {
  current = peer;
  const contact = contacts.get(peer);
  if (contact) contact.unread = 0;
  renderContacts();
  const conv = conversation(peer);
  renderMessages();
  if (!conv.nextBefore && !conv.done && !conv.loaded) await loadOlder(peer);
  markRead(peer);
  $("composer-text").focus();
}

async function loadOlder(peer) {
  const conv = conversation(peer);
  if (conv.loading || conv.done) return;
  conv.loading = true;
  const before = conv.nextBefore ? `&before=${conv.nextBefore}` : "";
  try {
    const page = await api(`/api/v1/messages?peer=${peer}&limit=${PAGE}${before}`,
                           { token: session.token });
    for (const wire of page.messages) {
      if (!conv.messages.has(wire.message_id)) {
        conv.messages.set(wire.message_id, {
          messageId: wire.message_id, from: wire.from, to: wire.to, content: wire.content,
          createdAt: wire.created_at, status: wire.status });
      }
    }
    conv.loaded = true;
    conv.nextBefore = page.next_before;
    conv.done = page.next_before === null;
  } finally {
    conv.loading = false;
  }
  if (peer === current) renderMessages({ keepOffset: conv.messages.size > PAGE });
}

function markRead(peer) {
  if (peer !== current || document.visibilityState !== "visible" || !client?.connected) return;
  for (const msg of conversation(peer).messages.values()) {
    if (msg.from === peer && msg.status !== "read" && msg.messageId <= client.lastMessageId) {
      client.ack(msg.messageId, "read");
      msg.status = "read";
    }
  }
}

function bump(msg, status) {
  if (RANK[status] > RANK[msg.status]) msg.status = status;
}

async function received(msg) {
  const mine = msg.from === session.userId;
  const peer = mine ? msg.to : msg.from;
  const contact = await ensureContact(peer);
  const conv = conversation(peer);
  if (!conv.messages.has(msg.messageId)) conv.messages.set(msg.messageId, { ...msg });
  if (peer === current && document.visibilityState === "visible") markRead(peer);
  else if (!mine) contact.unread += 1;
  renderContacts();
  if (peer === current) renderMessages();
}

let localKeys = 0;
async function send(text) {
  const peer = current;
  const msg = { messageId: null, local: ++localKeys, from: session.userId, to: peer,
                content: text, createdAt: Date.now(), status: "sending" };
  const conv = conversation(peer);
  const key = `local${msg.local}`;
  conv.messages.set(key, msg);
  renderMessages();
  try {
    const ack = await client.sendChat(peer, text);
    conv.messages.delete(key);
    msg.messageId = ack.messageId;
    msg.createdAt = ack.createdAt;
    msg.status = "sent";
    if (early.has(ack.messageId)) bump(msg, early.get(ack.messageId));
    early.delete(ack.messageId);
    const known = conv.messages.get(ack.messageId);  // history may have it by now
    conv.messages.set(ack.messageId, known ? (bump(known, msg.status), known) : msg);
    // A first message makes us peers: from now on we may see each other's presence.
    if (contacts.get(peer)?.status === "unknown") refreshPresence([peer]);
  } catch (err) {
    msg.status = "sending";
    msg.content = `${text}  (not sent: ${err.code ?? err.message})`;
  }
  if (peer === current) renderMessages();
}

function receipt({ messageIds, status, by }) {
  const conv = conversation(by);
  for (const id of messageIds) {
    const msg = conv.messages.get(id);
    if (msg) bump(msg, status);
    else early.set(id, RANK[status] > RANK[early.get(id) ?? "sent"] ? status : early.get(id));
  }
  if (by === current) renderMessages();
}

// --- connection state: the offline banner and its countdown

function offline(text) {
  $("offline").hidden = false;
  $("offline-text").textContent = text;
  $("my-dot").className = "dot offline";
}

function tick() {
  clearInterval(countdown);
  const update = () => {
    if (!client || client.nextAttemptAt === null) return;
    const left = Math.max(0, Math.ceil((client.nextAttemptAt - Date.now()) / 1000));
    offline(`Offline — reconnecting in ${left} s`);
  };
  update();
  countdown = setInterval(update, 250);
}

function connect() {
  client = new Client(wsUrl(), session.token, { deviceId: session.deviceId });
  client.on("message", received);
  client.on("receipt", receipt);
  client.on("presence", ({ userId, status }) => {
    if (userId === session.userId) {
      $("my-dot").className = `dot ${status}`;
      return;
    }
    const c = contacts.get(userId);
    if (c) { c.status = status; renderContacts(); }
  });
  client.on("reconnecting", tick);
  client.on("state", ({ state }) => {
    if (state === "connecting" || state === "authenticating" || state === "syncing") {
      clearInterval(countdown);
      offline("Offline — connecting…");
    }
  });
  client.on("disconnected", ({ willRetry }) => {
    if (!willRetry) offline("Disconnected. Reload the page or log in again.");
  });
  client.on("ready", ({ deviceId }) => {
    clearInterval(countdown);
    $("offline").hidden = true;
    $("my-dot").className = "dot online";
    session.deviceId = deviceId;
    sessionStorage.setItem(KEY, JSON.stringify(session));
    refreshPresence([...contacts.keys()]);
    if (current !== null) markRead(current);
  });
  client.connect({ retry: true }).catch((err) => {
    if (err instanceof AuthError) logout("Your session has expired: log in again.");
  });
}

function start() {
  $("who-name").textContent = session.username;
  const saved = JSON.parse(localStorage.getItem(`${KEY}.contacts.${session.userId}`) || "[]");
  for (const [id, name] of saved) contacts.set(id, { id, name, status: "unknown", unread: 0 });
  show("chat");
  renderContacts();
  refreshPresence([...contacts.keys()]);
  connect();
}

function logout(message = "") {
  client?.close();
  client = null;
  clearInterval(countdown);
  session = null;
  sessionStorage.removeItem(KEY);
  contacts.clear();
  conversations.clear();
  current = null;
  $("offline").hidden = true;
  $("login-error").textContent = message;
  show("login");
}

// --- wiring

wireLogin(KEY, (started) => { session = started; start(); },
          { newDeviceId: () => `web-${crypto.randomUUID().slice(0, 8)}` });
$("logout").addEventListener("click", () => logout());
$("retry").addEventListener("click", () => client?.reconnectNow());

$("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("start-name").value.trim();
  $("start-error").textContent = "";
  try {
    const user = await api(`/api/v1/users/${encodeURIComponent(name)}`, { token: session.token });
    if (user.user_id === session.userId) throw new Error("that is you");
    await ensureContact(user.user_id, user.username);
    $("start-name").value = "";
    open(user.user_id);
  } catch (err) {
    $("start-error").textContent = err instanceof ApiFailure ? err.reason : err.message;
  }
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("composer-text").value;
  if (!text.trim() || current === null) return;
  $("composer-text").value = "";
  send(text);
});
$("composer-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("messages").addEventListener("scroll", () => {
  if (current !== null && $("messages").scrollTop < 40) loadOlder(current);
});
document.addEventListener("visibilitychange", () => { if (current !== null) markRead(current); });

if (session) start(); else show("login");
