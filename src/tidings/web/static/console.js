// The dashboard's console: what an operator does rather than watches (issue 21).
// Every action is a call of the server API (docs/protocol.md "Server API"), which writes
// it to the audit log shown at the bottom. User text is shown through h()/textContent.
import { ApiFailure, api, fill, h } from "./common.js";

const $ = (id) => document.getElementById(id);
let token = null;
let selected = null; // { user_id, username } of the user shown

function say(text, bad = false) {
  const status = $("console-status");
  status.textContent = text;
  status.classList.toggle("error", bad);
}

async function act(label, work) {
  try {
    const result = await work();
    if (label) say(label);
    return result;
  } catch (err) {
    say(err instanceof ApiFailure ? `${err.code}: ${err.reason}` : String(err), true);
    return null;
  } finally {
    refreshAudit();
  }
}

const call = (path, options = {}) => api(path, { token, ...options });

function rows(tbody, entries, columns) {
  fill(tbody, entries.length ? entries.map((entry) => h("tr", {},
    columns.map((col) => h("td", {}, col(entry)))))
    : h("tr", {}, h("td", { class: "empty", colspan: columns.length }, "none")));
}

const time = (ms) => new Date(ms).toLocaleTimeString();

// users

async function search(q) {
  const answer = await act("", () => call(`/api/v1/admin/users?q=${encodeURIComponent(q)}`));
  if (!answer) return;
  fill($("user-results"), answer.users.length ? answer.users.map((u) => h("li", {},
    h("button", { type: "button", class: "secondary", "data-user": u.user_id,
                  onclick: () => show(u) }, `${u.username} (#${u.user_id})`)))
    : h("li", {}, "no such user"));
}

async function show(user) {
  selected = user;
  $("user-panel").hidden = false;
  $("user-title").textContent = `${user.username} (#${user.user_id})`;
  $("token-secret").textContent = "";
  await Promise.all([loadConnections(), loadTokens()]);
}

async function loadConnections() {
  const answer = await act("", () => call(`/api/v1/admin/users/${selected.user_id}/connections`));
  if (!answer) return;
  rows($("user-conns"), answer.connections, [
    (c) => c.node, (c) => c.transport, (c) => c.device_id || "–", (c) => c.remote,
    (c) => c.channels.join(", ") || "–",
    (c) => h("button", { type: "button", "data-key": c.key, onclick: () => disconnect(c.key) },
             "Disconnect")]);
  if (answer.missing_nodes.length) {
    say(`No answer from ${answer.missing_nodes.join(", ")}: the list may be incomplete`, true);
  }
}

async function disconnect(key) {
  const body = { user_id: selected.user_id };
  if (key) body.connection = key;
  const answer = await act("", () => call("/api/v1/admin/disconnect", { method: "POST", body }));
  if (answer) say(`Closed ${answer.closed} connection(s)`);
  await loadConnections();
}

async function loadTokens() {
  const answer = await act("", () => call(`/api/v1/tokens?user_id=${selected.user_id}`));
  if (!answer) return;
  rows($("user-tokens"), answer.tokens, [
    (t) => String(t.id), (t) => t.name || "–", (t) => t.scopes === null ? "all" : t.scopes.join(", "),
    (t) => t.status,
    (t) => t.status === "active" ? h("button", { type: "button", "data-token": t.id,
                                                 onclick: () => revoke(t.id) }, "Revoke") : ""]);
}

async function revoke(id) {
  await act(`Token ${id} revoked`, () => call(`/api/v1/tokens/${id}`, { method: "DELETE" }));
  await loadTokens();
}

async function createToken() {
  const raw = $("token-scopes").value.trim();
  const body = { name: $("token-name").value.trim(), user_id: selected.user_id };
  if (raw) body.scopes = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const made = await act("Token created", () => call("/api/v1/tokens", { method: "POST", body }));
  if (made) $("token-secret").textContent = made.token;
  await loadTokens();
}

// channels

function channel() {
  return encodeURIComponent($("channel-name").value.trim());
}

async function loadChannel() {
  const [page, presence] = await Promise.all([
    act("", () => call(`/api/v1/admin/channels/${channel()}/history?limit=100`)),
    act("", () => call(`/api/v1/admin/channels/${channel()}/presence`))]);
  if (page) {
    rows($("channel-history"), page.publications, [
      (p) => String(p.offset), (p) => p.type, (p) => h("span", { class: "data" }, JSON.stringify(p.data)),
      (p) => `#${p.info.user_id} ${p.info.device_id}`]);
  }
  if (presence) {
    rows($("channel-presence"), presence.clients, [(c) => `#${c.user_id}`, (c) => c.device_id || "–",
                                                   (c) => c.node]);
  }
}

async function publish() {
  let data;
  try {
    data = JSON.parse($("publish-data").value);
  } catch (err) {
    say(`The data is not JSON: ${err.message}`, true);
    return;
  }
  const body = { channel: $("channel-name").value.trim(), data };
  const ack = await act("", () => call("/api/v1/admin/publish", { method: "POST", body }));
  if (ack) say(`Published at offset ${ack.offset}`);
  await loadChannel();
}

// webhooks

async function loadWebhooks() {
  const answer = await act("", () => call("/api/v1/admin/webhooks?state=dead&limit=100"));
  if (!answer) return;
  rows($("webhooks"), answer.webhooks, [
    (w) => String(w.id), (w) => w.event, (w) => String(w.attempts), (w) => w.last_error,
    (w) => h("button", { type: "button", "data-webhook": w.id, onclick: () => replay([w.id]) },
             "Replay")]);
}

async function replay(ids) {
  const body = ids ? { ids } : { dead: true };
  const answer = await act("", () => call("/api/v1/admin/webhooks/replay", { method: "POST", body }));
  if (answer) say(`Replayed ${answer.replayed} webhook(s)`);
  await loadWebhooks();
}

// the audit log

async function refreshAudit() {
  if (!token) return;
  try {
    const answer = await call("/api/v1/admin/audit?limit=50");
    rows($("audit"), answer.entries, [
      (e) => time(e.at), (e) => e.actor, (e) => e.action, (e) => e.target,
      (e) => h("span", { class: "data" }, JSON.stringify(e.details))]);
  } catch (err) {
    say(`Audit log: ${err.message}`, true);
  }
}

function on(id, event, handler) {
  $(id).addEventListener(event, (e) => {
    if (event === "submit") e.preventDefault();
    handler();
  });
}

let wired = false;

/** Show the console for an operator's session ({ token }). It stays hidden until then:
 *  a form sent before its handler is wired would reload the page instead. */
export function startConsole(session) {
  token = session.token;
  $("console").hidden = false;
  if (!wired) {
    wired = true;
    on("user-search", "submit", () => search($("user-q").value.trim()));
    on("conns-refresh", "click", () => loadConnections());
    on("disconnect-all", "click", () => disconnect(null));
    on("token-form", "submit", () => createToken());
    on("channel-form", "submit", () => loadChannel());
    on("publish-form", "submit", () => publish());
    on("webhooks-refresh", "click", () => loadWebhooks());
    on("replay-dead", "click", () => replay(null));
    on("audit-refresh", "click", () => refreshAudit());
  }
  refreshAudit();
  loadWebhooks();
}

/** Forget the session (logout). */
export function stopConsole() {
  token = null;
  selected = null;
  $("user-panel").hidden = true;
  $("console").hidden = true;
}
