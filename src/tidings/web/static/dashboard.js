// The operator dashboard: polls GET /api/v1/admin/overview once a second and draws it.
// Every figure shown comes from that answer; nothing is computed from guesses.
import { ApiFailure, api, fill, h, login } from "./common.js";
import { startConsole, stopConsole } from "./console.js";

const KEY = "tidings.admin";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let timer = null;
let consoleOn = false;

function show(view) {
  $("login-view").hidden = view !== "login";
  $("board").hidden = view !== "board";
  $("who").hidden = view !== "board";
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "–"
    : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${number(value, value < 10 ? 2 : 1)} ms`;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function rows(tbody, entries, columns) {
  fill(tbody, entries.length ? entries.map((entry) => h("tr", {},
    columns.map((col, i) => h("td", { class: i ? "num" : null }, col(entry)))))
    : h("tr", {}, h("td", { class: "empty", colspan: columns.length }, "none")));
}

function drawChart(series) {
  const svg = $("chart");
  const W = 600, H = 220, PAD = 24;
  const peak = Math.max(1, ...series.map((s) => Math.max(s.messages_in, s.messages_out)));
  const x = (i) => PAD + (i * (W - 2 * PAD)) / Math.max(1, series.length - 1);
  const y = (v) => H - PAD - (v / peak) * (H - 2 * PAD);
  const line = (key) => series.map((s, i) => `${x(i).toFixed(1)},${y(s[key]).toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const last = series.at(-1);
  const desc = el("desc", { id: "chart-desc" }, last
    ? `Now ${last.messages_in} in and ${last.messages_out} out per second; peak ${peak}.`
    : "No samples yet.");
  svg.replaceChildren(desc,
    el("line", { class: "axis", x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }),
    el("line", { class: "axis", x1: PAD, y1: PAD, x2: W - PAD, y2: PAD }),
    el("text", { x: 2, y: PAD + 4 }, number(peak, 1)),
    el("text", { x: 2, y: H - PAD + 4 }, "0"));
  if (series.length > 1) {
    svg.append(el("polyline", { class: "in", points: line("messages_in") }),
               el("polyline", { class: "out", points: line("messages_out") }));
  }
}

function render(data) {
  const last = data.series.at(-1) ?? { messages_in: 0, messages_out: 0 };
  $("connections").textContent = number(data.connections);
  $("users-online").textContent = number(data.users_online);
  $("rate-in").textContent = number(last.messages_in, 1);
  $("rate-out").textContent = number(last.messages_out, 1);
  $("total-in").textContent = number(data.totals.messages_in);
  $("total-out").textContent = number(data.totals.messages_out);
  $("stored").textContent = number(data.totals.messages_stored);
  $("p50").textContent = ms(data.ack_latency_ms.p50);
  $("p99").textContent = ms(data.ack_latency_ms.p99);
  $("ack-samples").textContent = number(data.ack_latency_ms.samples);
  drawChart(data.series);
  const byCount = (obj) => Object.entries(obj).sort((a, b) => b[1] - a[1]);
  rows($("errors"), byCount(data.errors), [(e) => e[0], (e) => number(e[1])]);
  rows($("disconnects"), byCount(data.disconnects), [(e) => e[0], (e) => number(e[1])]);
  rows($("channels"), data.channels, [(c) => c.channel, (c) => number(c.subscribers),
                                      (c) => number(c.publications)]);
  rows($("nodes"), data.nodes, [(n) => `${n.url}${n.self ? " (this node)" : ""}${n.error ? ` (${n.error})` : ""}`,
                                (n) => number(n.connections), (n) => duration(n.uptime_seconds)]);
  const badge = (status) => h("span", { class: `badge ${status === "ok" ? "ok" : "bad"}` }, status);
  $("store-backend").textContent = data.store.backend;
  fill($("store-status"), badge(data.store.status),
       data.store.ping_ms !== undefined ? ` ping ${ms(data.store.ping_ms)}` : ` ${data.store.detail ?? ""}`);
  $("bus-backend").textContent = data.bus.backend;
  fill($("bus-status"), badge(data.bus.status));
  $("version").textContent = `tidings ${data.node.version}, up ${duration(data.node.uptime_seconds)}`;
  $("live").textContent = `Live · ${data.node.url} · updated ${new Date().toLocaleTimeString()}`;
}

async function poll() {
  clearTimeout(timer);
  try {
    render(await api("/api/v1/admin/overview", { token: session.token }));
    if (!consoleOn) {  // only once the node has accepted this user as an admin
      consoleOn = true;
      startConsole(session);
    }
  } catch (err) {
    if (err instanceof ApiFailure && (err.status === 401 || err.status === 403)) {
      logout(err.status === 403 ? "This user is not an admin (admin_users setting)."
                                : "Your session has expired: log in again.");
      return;
    }
    $("live").textContent = `Server unreachable (${err.message}); retrying…`;
  }
  timer = setTimeout(poll, POLL_MS);
}

function start() {
  $("who-name").textContent = `Signed in as ${session.username}`;
  show("board");
  poll();
}

function logout(message = "") {
  clearTimeout(timer);
  consoleOn = false;
  stopConsole();
  session = null;
  sessionStorage.removeItem(KEY);
  $("login-error").textContent = message;
  show("login");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = $("username").value.trim();
  $("login-error").textContent = "";
  try {
    const answer = await login(username, $("password").value);
    session = { token: answer.token, username };
    sessionStorage.setItem(KEY, JSON.stringify(session));
    $("password").value = "";
    start();
  } catch (err) {
    $("login-error").textContent = err instanceof ApiFailure ? err.reason : String(err);
  }
});
$("logout").addEventListener("click", () => logout());

if (session) start(); else show("login");
