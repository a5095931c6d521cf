// Helpers shared by the Tidings pages. User text only ever reaches the DOM through
// textContent or attribute values set here (never innerHTML): it is shown, not run.

/** Build an element: h("button", {class: "x", onclick: fn}, "text", child, …). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) if (child) node.append(child);
}

/** `fetch` of the Tidings HTTP API: JSON in and out; throws ApiFailure on an error body. */
export async function api(path, { method = "GET", token = null, body = undefined } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers,
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error ?? { code: `HTTP_${response.status}`, message: response.statusText };
    throw new ApiFailure(response.status, error.code, error.message);
  }
  return data;
}

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.reason = message;
  }
}

/** Log in (or register then log in): { token, user_id, expires_at }. */
export async function login(username, password, { register = false, deviceId } = {}) {
  if (register) await api("/api/v1/auth/register", { method: "POST", body: { username, password } });
  const body = { username, password };
  if (deviceId) body.device_id = deviceId;
  return api("/api/v1/auth/login", { method: "POST", body });
}

/**
 * Wire a page's login view (#login-form with #username and #password, #register-button,
 * #login-error): log in, or register then log in, keep the session
 * ({ token, userId, username[, deviceId] }) in sessionStorage under `key`, clear the
 * password and call `started(session)`. A refusal is shown in #login-error.
 * `newDeviceId`, if given, names the device of each new login.
 */
export function wireLogin(key, started, { newDeviceId = null } = {}) {
  const $ = (id) => document.getElementById(id);
  async function submit(register) {
    $("login-error").textContent = "";
    if (!$("login-form").reportValidity()) return;
    const username = $("username").value.trim();
    const deviceId = newDeviceId ? newDeviceId() : undefined;
    try {
      const answer = await login(username, $("password").value, { register, deviceId });
      const session = { token: answer.token, userId: answer.user_id, username };
      if (deviceId) session.deviceId = deviceId;
      sessionStorage.setItem(key, JSON.stringify(session));
      $("password").value = "";
      started(session);
    } catch (err) {
      $("login-error").textContent = err instanceof ApiFailure ? err.reason : String(err);
    }
  }
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); submit(false); });
  $("register-button").addEventListener("click", () => submit(true));
}

/** The WebSocket URL of this page's own server. */
export function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** "14:03" for a ms timestamp. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
