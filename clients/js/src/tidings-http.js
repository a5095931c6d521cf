// The HTTP API of Tidings (docs/protocol.md, "HTTP API") from JavaScript, with fetch: accounts, chat
// history, presence, publishing, channel history and access tokens. Errors come back as HttpError with the
// server's status and code; every answer is the server's JSON, camelCase left to the
// caller (the field names are those of docs/protocol.md).

import { TidingsError } from "./tidings-protocol.js";

/** The HTTP API answered an error: `status`, and the body's `code` and message. */
export class HttpError extends TidingsError {
  /**
   * @param {number} status
   * @param {string} code e.g. "USERNAME_TAKEN", or "HTTP_502" for a body that is not ours
   * @param {string} message
   */
  constructor(status, code, message) {
    super(code, message);
    this.name = "HttpError";
    this.status = status;
  }
}

/**
 * An access token as /api/v1/tokens shows it (times in ms since the epoch).
 * @typedef {object} TokenInfo
 * @property {number} id
 * @property {number} user_id
 * @property {string} name
 * @property {string[] | null} scopes null: every right of the user
 * @property {string | null} device_id
 * @property {number} created_at
 * @property {number | null} expires_at
 * @property {"active" | "expired" | "revoked"} status
 */

/**
 * @typedef {object} HttpApiOptions
 * @property {string | null} [token] sent as `Authorization: Bearer`; login() sets it
 * @property {typeof fetch} [fetch] a fetch function (default: the global one)
 */

/** One user's calls to one server's HTTP API. */
export class HttpApi {
  /**
   * @param {string} baseUrl the server's root, e.g. "http://127.0.0.1:8443" ("" in its pages)
   * @param {HttpApiOptions} [options]
   */
  constructor(baseUrl, { token = null, fetch: fetchFn = globalThis.fetch } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    /** @type {string | null} */
    this.token = token;
    this._fetch = fetchFn;
  }

  /** The /ws URL of the same server (ws: or wss:, as the base URL's scheme). */
  get wsUrl() {
    return `${this.baseUrl.replace(/^http/, "ws")}/ws`;
  }

  /**
   * Create an account.
   * @param {string} username
   * @param {string} password at least 8 characters
   * @returns {Promise<{user_id: number, username: string}>}
   */
  register(username, password) {
    return this.request("POST", "/api/v1/auth/register", { username, password });
  }

  /**
   * Log in; the token is kept for later calls (and for a Client: `api.token`).
   * @param {string} username
   * @param {string} password
   * @param {string} [deviceId] the device the token is for
   * @returns {Promise<{token: string, user_id: number, expires_at: number | null}>}
   */
  async login(username, password, deviceId) {
    const body = deviceId === undefined ? { username, password }
                                        : { username, password, device_id: deviceId };
    const answer = await this.request("POST", "/api/v1/auth/login", body);
    this.token = answer.token;
    return answer;
  }

  /**
   * One page of the chat history with user `peer`, newest first.
   * @param {number} peer
   * @param {{before?: number, limit?: number}} [options]
   * @returns {Promise<{messages: import("./tidings-types.js").WireMessage[], next_before: number | null}>}
   */
  history(peer, { before, limit = 50 } = {}) {
    const query = new URLSearchParams({ peer: String(peer), limit: String(limit) });
    if (before !== undefined) query.set("before", String(before));
    return this.request("GET", `/api/v1/messages?${query}`);
  }

  /**
   * Publish `data` (any JSON value) on a channel; resolves once stored.
   * @param {string} channel
   * @param {unknown} data
   * @param {{type?: string, idempotencyKey?: string}} [options]
   * @returns {Promise<{channel: string, offset: number, created_at: number, duplicate: boolean}>}
   */
  publish(channel, data, { type = "message", idempotencyKey } = {}) {
    /** @type {Record<string, unknown>} */
    const body = { channel, data, type };
    if (idempotencyKey !== undefined) body.idempotency_key = idempotencyKey;
    return this.request("POST", "/api/v1/publish", body);
  }

  /**
   * Retained publications of a channel after offset `since`, oldest first.
   * @param {string} channel
   * @param {{since?: number, limit?: number}} [options]
   * @returns {Promise<{channel: string, offset: number, first_offset: number, recovered: boolean,
   *                    publications: import("./tidings-types.js").WirePublication[], has_more: boolean}>}
   */
  channelHistory(channel, { since = 0, limit = 100 } = {}) {
    const query = new URLSearchParams({ since: String(since), limit: String(limit) });
    return this.request("GET", `/api/v1/channels/${encodeURIComponent(channel)}/history?${query}`);
  }

  /**
   * The statuses of these users (yourself and your peers; others are "unknown").
   * @param {number[]} userIds
   * @returns {Promise<{user_id: number, status: string}[]>}
   */
  async presence(userIds) {
    const query = new URLSearchParams({ user_ids: userIds.join(",") });
    return (await this.request("GET", `/api/v1/presence?${query}`)).presence;
  }

  /**
   * Create an access token; its secret (`token`) is in the answer, this once.
   * @param {{name?: string, scopes?: string[], expiresIn?: number, deviceId?: string}} [options]
   *   `scopes` absent: every right of the user; `expiresIn` in seconds
   * @returns {Promise<TokenInfo & {token: string}>}
   */
  createToken({ name = "", scopes, expiresIn, deviceId } = {}) {
    /** @type {Record<string, unknown>} */
    const body = { name };
    if (scopes !== undefined) body.scopes = scopes;
    if (expiresIn !== undefined) body.expires_in = expiresIn;
    if (deviceId !== undefined) body.device_id = deviceId;
    return this.request("POST", "/api/v1/tokens", body);
  }

  /**
   * Your tokens (never their secrets).
   * @returns {Promise<TokenInfo[]>}
   */
  async tokens() {
    return (await this.request("GET", "/api/v1/tokens")).tokens;
  }

  /**
   * Revoke a token: connections using it close with 4403. Resolves with the ids revoked now.
   * @param {number} tokenId
   * @returns {Promise<number[]>}
   */
  async revokeToken(tokenId) {
    return (await this.request("DELETE", `/api/v1/tokens/${tokenId}`)).revoked;
  }

  /**
   * Any call of the API: its JSON answer, or an HttpError.
   * @param {string} method
   * @param {string} path from the root, with its query
   * @param {unknown} [body] sent as JSON
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await this._fetch(this.baseUrl + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.ok) return text ? JSON.parse(text) : null;
    let error = null;
    try {
      error = JSON.parse(text).error;
    } catch { /* not our JSON: a proxy's page */ }
    if (error && typeof error.code === "string") {
      throw new HttpError(response.status, error.code, String(error.message));
    }
    throw new HttpError(response.status, `HTTP_${response.status}`,
                        text.slice(0, 200) || response.statusText);
  }
}
