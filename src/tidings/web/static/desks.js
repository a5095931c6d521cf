// The desk map of seed 000: desks coloured by status on a floor plan, a department filter,
// click (or Enter) to occupy or release, and live updates over Socket.IO exactly as the
// seed's Vue client receives them (socket.io-client v4, rooms by floor and department).
import { io } from "./socket.io.esm.min.js";
import { ApiFailure, api, fill, h, wireLogin } from "./common.js";

const KEY = "tidings.desks";
const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["available", "occupied", "reserved", "maintenance", "disabled"];
const $ = (id) => document.getElementById(id);

let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let socket = null;
let map = null;                 // GET /api/map answer: buildings, floors, departments
const desks = new Map();        // id -> workstation, of the shown floor
let floorId = null;

function show(view) {
  $("login-view").hidden = view !== "login";
  $("desks-view").hidden = view !== "desks";
  $("who").hidden = view !== "desks";
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function deptFilter() { return $("dept").value; }

function visible(desk) {
  return desk.floor_id === floorId &&
    (!deptFilter() || String(desk.department_id) === deptFilter());
}

function describe(desk) {
  const who = desk.status === "occupied"
    ? (desk.occupied_by === session.userId ? " by you" : ` by user ${desk.occupied_by}`) : "";
  return `${desk.name}, ${desk.department ?? "no department"}, ${desk.status}${who}`;
}

function render() {
  const box = $("map");
  const shown = [...desks.values()].filter(visible);
  const floor = map.floors.find((f) => f.id === floorId);
  const width = floor?.width || Math.max(800, ...shown.map((d) => d.x_position + d.width + 20));
  const height = floor?.height || Math.max(400, ...shown.map((d) => d.y_position + d.height + 20));
  box.setAttribute("viewBox", `0 0 ${width} ${height}`);
  box.replaceChildren(...shown.map((desk) => {
    const mine = desk.occupied_by === session.userId;
    const g = svg("g", { class: `desk ${desk.status}${mine ? " mine" : ""}`, tabindex: 0,
                         role: "button", "data-id": desk.id, "data-status": desk.status,
                         "aria-label": describe(desk) });
    g.append(svg("title", {}, describe(desk)),
             svg("rect", { x: desk.x_position, y: desk.y_position, width: desk.width,
                           height: desk.height, rx: 8 }),
             svg("text", { x: desk.x_position + desk.width / 2, y: desk.y_position + desk.height / 2 },
                 desk.name),
             svg("text", { class: "sub", x: desk.x_position + desk.width / 2,
                           y: desk.y_position + desk.height / 2 + 18 }, mine ? "you" : desk.status));
    g.addEventListener("click", () => act(desk.id));
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); act(desk.id); }
    });
    return g;
  }));
  $("empty").hidden = shown.length > 0;
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const d of shown) counts[d.status] = (counts[d.status] ?? 0) + 1;
  fill($("legend"), STATUSES.map((s) => h("li", {},
    h("span", { class: `swatch ${s}`, "aria-hidden": "true" }), `${s} `,
    h("strong", { "data-status-count": s }, counts[s]))));
}

async function act(id) {
  const desk = desks.get(id);
  if (!desk) return;
  let action = null;
  if (desk.status === "available") action = "occupy";
  else if (desk.status === "occupied" && desk.occupied_by === session.userId) action = "release";
  if (!action) {
    $("live").textContent = `${desk.name} is ${desk.status}.`;
    return;
  }
  try {
    const updated = await api(`/api/workstations/${id}/${action}`, { method: "POST",
                                                                    token: session.token });
    desks.set(updated.id, updated);
    $("live").textContent = `${updated.name}: ${action === "occupy" ? "occupied by you" : "released"}.`;
    render();
  } catch (err) {
    $("live").textContent = err instanceof ApiFailure ? `${desk.name}: ${err.reason}` : String(err);
  }
}

async function loadFloor() {
  const answer = await api(`/api/map?floor_id=${floorId}`, { token: session.token });
  desks.clear();
  for (const desk of answer.workstations) desks.set(desk.id, desk);
  render();
}

function onEvent(message) {
  const data = message.data ?? {};
  if (message.type === "workstation_deleted" || data.deleted) desks.delete(data.id);
  else if (data.floor_id === floorId) desks.set(data.id, data);
  else desks.delete(data.id);  // it moved to another floor
  render();
}

function connect() {
  socket = io(location.origin, { auth: { token: session.token, floor: floorId },
                                 transports: ["websocket"] });
  for (const name of ["workstation_update", "workstation_created", "workstation_deleted"]) {
    socket.on(name, onEvent);
  }
  socket.on("connect", () => {
    $("offline").hidden = true;
    loadFloor();  // after a reconnect, REST tells what changed meanwhile (as the seed does)
  });
  socket.on("disconnect", () => {
    $("offline").hidden = false;
    $("offline-text").textContent = "Offline — reconnecting…";
  });
  socket.on("connect_error", (err) => {
    if (err?.data?.code === "UNAUTHORIZED") logout("Your session has expired: log in again.");
  });
}

async function switchFloor(next) {
  if (socket && floorId !== null) socket.emit("leave", { floor: floorId });
  floorId = next;
  if (socket) socket.emit("join", { floor: floorId });
  await loadFloor();
}

async function start() {
  $("who-name").textContent = session.username;
  show("desks");
  try {
    map = await api("/api/map", { token: session.token });
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) return logout("Log in again.");
    $("live").textContent = `Cannot load the map: ${err.message}`;
    return;
  }
  fill($("floor"), map.floors.map((f) => h("option", { value: f.id },
    `${map.buildings.find((b) => b.id === f.building_id)?.name ?? ""} · ${f.name || `floor ${f.number}`}`)));
  fill($("dept"), h("option", { value: "" }, "All departments"),
       map.departments.map((d) => h("option", { value: d.id }, d.name)));
  floorId = map.floors[0]?.id ?? null;
  if (floorId === null) {
    $("empty").hidden = false;
    $("empty").textContent = "No floors yet: load the demo building with `tidings desks demo`.";
    return;
  }
  connect();
}

function logout(message = "") {
  socket?.disconnect();
  socket = null;
  session = null;
  sessionStorage.removeItem(KEY);
  $("login-error").textContent = message;
  show("login");
}

wireLogin(KEY, (started) => { session = started; start(); });
$("logout").addEventListener("click", () => logout());
$("floor").addEventListener("change", () => switchFloor(Number($("floor").value)));
$("dept").addEventListener("change", render);
$("filters").addEventListener("submit", (e) => e.preventDefault());

if (session) start(); else show("login");
