// Seed 002's takeover flow: who edits a document, "request takeover", the editor's
// approve/reject dialog with its 30 s countdown, and the requester's result. Events come
// over the editing WebSocket; without one (blocked by a proxy, or down) the page polls
// request-status and pending-requests instead, and keeps its session alive by heartbeat.
import { ApiFailure, api, clock, fill, h, wireLogin } from "./common.js";

const KEY = "tidings.editing";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let workspaces = [];
let doc = null;          // { workspaceId, resourceId, sessionId, editing, editor, heartbeatMs }
let socket = null;
let pollTimer = null;
let retryTimer = null;
let incoming = null;     // { request, deadline, timer }: a request we must answer
let waiting = null;      // { request, deadline, timer }: our own request

const base = () => `/api/v1/workspaces/${doc.workspaceId}/resources/${doc.resourceId}/editing`;
const call = (method, path, body) => api(path, { method, token: session.token, body });

function show(view) {
  $("login-view").hidden = view !== "login";
  $("editing-view").hidden = view !== "editing";
  $("who").hidden = view !== "editing";
}

function say(text) { $("result").textContent = text; }

function failure(err) { return err instanceof ApiFailure ? err.reason : String(err); }

// --- what the page shows

function render() {
  const workspace = workspaces.find((w) => w.id === doc?.workspaceId);
  $("doc-title").textContent = doc ? `Document ${doc.resourceId} · ${workspace?.name ?? ""}`
                                   : "No document open";
  let line = "";
  if (doc?.editing) line = "You are editing this document.";
  else if (doc?.editor) {
    line = doc.editor.same_user
      ? `You are editing it in another tab (since ${clock(doc.editor.since)}).`
      : `${doc.editor.user_name} is editing (since ${clock(doc.editor.since)}).`;
  } else if (doc) line = "Nobody is editing.";
  $("editor-line").textContent = line;
  $("text").disabled = !doc?.editing;
  $("take").hidden = !doc || doc.editing || !!doc.editor;
  $("request").hidden = !doc || doc.editing || !doc.editor;
  $("request").disabled = !!waiting;
  $("close-doc").hidden = !doc;
}

function setEditor(editing, editor) {
  doc.editing = editing;
  doc.editor = editing ? null : editor;
  render();
}

function countdown(state, labelId, onZero) {
  clearInterval(state.timer);
  const tick = () => {
    const left = Math.max(0, Math.ceil((state.deadline - performance.now()) / 1000));
    $(labelId).textContent = String(left);
    if (left === 0) { clearInterval(state.timer); onZero(); }
  };
  tick();
  state.timer = setInterval(tick, 250);
}

// --- the editor's dialog

function showIncoming(request) {
  if (!doc?.editing || request.status !== "pending" || incoming?.request.id === request.id) return;
  incoming = { request, deadline: performance.now() + request.expires_in_ms, timer: null };
  $("incoming-text").textContent = request.same_user
    ? "This document is open in another of your tabs, which asks to continue editing there."
    : `${request.requester.user_name} asks to take over editing.`;
  const dialog = $("incoming");
  if (!dialog.open) dialog.showModal();
  $("reject").focus();
  countdown(incoming, "incoming-left", () => closeIncoming("The request expired: you keep editing."));
}

function closeIncoming(text) {
  if (!incoming) return;
  clearInterval(incoming.timer);
  incoming = null;
  if ($("incoming").open) $("incoming").close();
  if (text) say(text);
}

async function answer(approved) {
  if (!incoming) return;
  const request = incoming.request;
  try {
    const rsp = await call("POST", `${base()}/takeover-response`,
                           { request_id: request.id, approved, session_id: doc.sessionId });
    closeIncoming(approved ? `You handed over to ${request.requester.user_name}.`
                           : `You declined: you keep editing.`);
    if (approved) {
      setEditor(false, null);
      refreshStatus();
    }
    return rsp;
  } catch (err) {
    closeIncoming(err.code === "REQUEST_NOT_PENDING" ? "Too late: the request had expired."
                                                     : failure(err));
    refreshStatus();
  }
}

// --- the requester's dialog

async function requestTakeover() {
  try {
    const { request } = await call("POST", `${base()}/takeover-request`,
                                   { requester_session_id: doc.sessionId });
    showWaiting(request);
  } catch (err) {
    say(err.code === "TAKEOVER_PENDING" ? "Someone already asked: try again in a moment."
                                        : failure(err));
    refreshStatus();
  }
}

function showWaiting(request) {
  if (waiting?.request.id === request.id) return;
  waiting = { request, deadline: performance.now() + request.expires_in_ms, timer: null };
  $("waiting-text").textContent = `Asking ${request.target.user_name} to hand over editing…`;
  $("waiting-result").textContent = "";
  $("waiting-countdown").hidden = false;
  $("waiting-close").hidden = true;
  if (!$("waiting").open) $("waiting").showModal();
  countdown(waiting, "waiting-left", () => pollRequest());
  render();
}

function concluded(request, editor = null) {
  if (!waiting || waiting.request.id !== request.id) return;
  clearInterval(waiting.timer);
  const who = request.target.user_name;
  const text = {
    approved: `${who} handed over: you are editing now.`,
    rejected: `${who} declined: they keep editing.`,
    expired: request.reason === "timeout" ? `No answer from ${who} in time: the request expired.`
      : request.reason === "editor_left" ? `${who} left: the document is free.`
        : "The request expired.",
  }[request.status] ?? request.status;
  $("waiting-result").textContent = text;
  $("waiting-countdown").hidden = true; // answered: no time is left to count
  $("waiting-close").hidden = false;
  $("waiting-close").focus();
  say(text);
  waiting = null;
  if (request.status === "approved") setEditor(true, null);
  else if (editor !== undefined) refreshStatus();
  render();
}

async function pollRequest() {
  if (!waiting) return;
  try {
    const { request } = await call("GET", `${base()}/request-status/${waiting.request.id}`);
    if (request.status !== "pending") concluded(request);
  } catch (err) {
    say(failure(err));
  }
}

// --- events (WebSocket) and polling (fallback)

function onEvent({ type, data }) {
  if (!doc) return;
  if (type === "connected") {
    setEditor(data.editing, data.editor);
    for (const r of data.pending_requests) showIncoming(r);
    for (const r of data.my_requests) if (r.status === "pending") showWaiting(r);
  } else if (type === "takeover_request") {
    showIncoming(data.request);
  } else if (type === "takeover_response") {
    if (waiting?.request.id === data.request.id) concluded(data.request, data.editor);
    if (incoming?.request.id === data.request.id) closeIncoming("");
    if (data.approved) setEditor(data.editor?.session_id === doc.sessionId, data.editor);
  } else if (type === "takeover_expired") {
    if (waiting?.request.id === data.request.id) concluded(data.request);
    if (incoming?.request.id === data.request.id) {
      closeIncoming("The request expired: you keep editing.");
    }
  } else if (type === "editing_ended") {
    if (data.session_id === doc.sessionId) setEditor(false, data.editor);
    else setEditor(data.editor?.session_id === doc.sessionId, data.editor);
  }
}

function transport(text) { $("transport").textContent = text; }

function connectSocket() {
  clearTimeout(retryTimer);
  if (typeof WebSocket !== "function") {
    startPolling("Polling every 2 s: this browser has no WebSocket.");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws/editing/` +
                           `${encodeURIComponent(doc.sessionId)}?token=${encodeURIComponent(session.token)}`);
  socket = ws;
  ws.onopen = () => { stopPolling(); transport("Live: WebSocket connected."); };
  ws.onmessage = (e) => onEvent(JSON.parse(e.data));
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    if (!doc) return;
    startPolling("Polling every 2 s: the WebSocket is unavailable; retrying it.");
    retryTimer = setTimeout(connectSocket, 5000);
  };
}

function startPolling(text) {
  transport(text);
  if (pollTimer) return;
  const poll = async () => {
    if (!doc) return;
    try {
      const beat = await call("POST", `${base()}/heartbeat`, { session_id: doc.sessionId });
      if (!socket) setEditor(beat.editing, beat.editor);
      if (beat.editing && !socket) {
        const { requests } = await call(
          "GET", `${base()}/pending-requests?session_id=${encodeURIComponent(doc.sessionId)}`);
        for (const r of requests) showIncoming(r);
      }
      if (waiting) await pollRequest();
    } catch (err) {
      if (err.code === "SESSION_NOT_FOUND") {
        say("Your session ended: open the document again.");
        closeDoc(false);
        return;
      }
      say(failure(err));
    }
  };
  poll();
  pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

async function refreshStatus() {
  if (!doc) return;
  try {
    const status = await call("GET", `${base()}/status`);
    setEditor(status.editor?.session_id === doc.sessionId, status.editor);
  } catch { /* the next event or poll corrects it */ }
}

// --- documents and workspaces

async function openDoc(workspaceId, resourceId) {
  await closeDoc(true);
  doc = { workspaceId, resourceId, sessionId: null, editing: false, editor: null };
  try {
    const started = await call("POST", `${base()}/start`);
    Object.assign(doc, { sessionId: started.session_id, heartbeatMs: started.heartbeat_interval_ms });
    setEditor(started.editing, started.editor);
    say("");
    connectSocket();
  } catch (err) {
    doc = null;
    $("side-error").textContent = failure(err);
    render();
  }
}

async function closeDoc(tellServer) {
  const closing = doc;
  doc = null;
  stopPolling();
  clearTimeout(retryTimer);
  closeIncoming("");
  if (socket) { const s = socket; socket = null; s.close(1000); }
  transport("");
  render();
  if (tellServer && closing?.sessionId) {
    const path = `/api/v1/workspaces/${closing.workspaceId}/resources/${closing.resourceId}/editing/end`;
    await api(path, { method: "POST", token: session.token, body: { session_id: closing.sessionId } })
      .catch(() => {});
  }
}

async function loadWorkspaces(select = null) {
  ({ workspaces } = await call("GET", "/api/v1/workspaces"));
  fill($("workspace"), workspaces.map((w) => h("option", { value: w.id }, `${w.name} (${w.role})`)));
  if (select !== null) $("workspace").value = String(select);
  $("member-form").hidden = !workspaces.find((w) => String(w.id) === $("workspace").value &&
                                                      w.role === "owner");
}

async function start() {
  $("who-name").textContent = session.username;
  show("editing");
  try {
    await loadWorkspaces();
  } catch (err) {
    if (err.status === 401) return logout("Log in again.");
    $("side-error").textContent = failure(err);
  }
  render();
}

function logout(message = "") {
  closeDoc(true);
  session = null;
  sessionStorage.removeItem(KEY);
  $("login-error").textContent = message;
  show("login");
}

// --- wiring

wireLogin(KEY, (started) => { session = started; start(); });
$("logout").addEventListener("click", () => logout());
$("workspace").addEventListener("change", () => loadWorkspaces(Number($("workspace").value)));
$("new-workspace-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("side-error").textContent = "";
  try {
    const created = await call("POST", "/api/v1/workspaces", { name: $("new-workspace").value.trim() });
    $("new-workspace").value = "";
    await loadWorkspaces(created.id);
  } catch (err) { $("side-error").textContent = failure(err); }
});
$("member-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("side-error").textContent = "";
  try {
    const name = $("member").value.trim();
    const user = await call("GET", `/api/v1/users/${encodeURIComponent(name)}`);
    await call("PUT", `/api/v1/workspaces/${$("workspace").value}/members/${user.user_id}`,
               { role: "editor" });
    $("member").value = "";
    say(`${user.username} may now edit documents of this workspace.`);
  } catch (err) { $("side-error").textContent = failure(err); }
});
$("open-form").addEventListener("submit", (e) => {
  e.preventDefault();
  $("side-error").textContent = "";
  if (!$("workspace").value) { $("side-error").textContent = "Create a workspace first."; return; }
  openDoc(Number($("workspace").value), Number($("resource").value));
});
$("take").addEventListener("click", () => openDoc(doc.workspaceId, doc.resourceId));
$("request").addEventListener("click", requestTakeover);
$("close-doc").addEventListener("click", () => closeDoc(true));
$("approve").addEventListener("click", () => answer(true));
$("reject").addEventListener("click", () => answer(false));
$("incoming").addEventListener("cancel", (e) => e.preventDefault());  // Esc: answer, not dismiss
$("waiting-close").addEventListener("click", () => $("waiting").close());
window.addEventListener("pagehide", () => {
  if (!doc?.sessionId) return;
  fetch(`${base()}/end`, { method: "POST", keepalive: true,
                           headers: { authorization: `Bearer ${session.token}`,
                                      "content-type": "application/json" },
                           body: JSON.stringify({ session_id: doc.sessionId }) });
});

if (session) start(); else show("login");
