// The connection half of the Tidings client (the base class of Client): open the
// WebSocket, authenticate, keep it alive with pings, and reconnect with the seed 001
// §4.3 backoff when it drops. What the frames mean is the Client's business
// (tidings.js): it overrides _dispatch, and _stopped to fail what it holds.

import {
  AuthError, CloseCode, ConnectionLostError, MsgType, MsgpackCodec, ReconnectPolicy,
  TidingsError, defaultCodec,
} from "./tidings-protocol.js";

/**
 * @import { ClientEvents, ClientState, Frame, PresenceStatus } from "./tidings-types.js"
 * @import { Codec, MsgpackModule } from "./tidings-protocol.js"
 */

/**
 * @typedef {object} ClientOptions
 * @property {string | null} [deviceId] stable per installation: it names the server-side cursor
 * @property {Codec | null} [codec]
 * @property {MsgpackModule | null} [msgpack] the module "@msgpack/msgpack": binary MessagePack frames
 * @property {boolean} [autoAck] acknowledge messages as delivered once emitted (default true)
 * @property {number} [pingInterval] ms between MsgPing (default 30000)
 * @property {number} [pingTimeout] ms to wait for MsgPong before the connection counts as dead (default 10000)
 * @property {ReconnectPolicy | false} [reconnect] the backoff policy; false disables reconnection
 * @property {number} [connectTimeout] ms for opening and authenticating (default 10000)
 * @property {typeof WebSocket} [WebSocket] a WebSocket class (default: the global one)
 * @property {(() => Promise<string>) | null} [getToken] a fresh token for this user: called
 *   when there is none, on reconnects once the last one expired (or after close 4402), and
 *   `refreshMargin` ms before the credential expires, to renew it in-band (Refresh). Reject
 *   with AuthError if the user may no longer connect; other failures are retried.
 * @property {number} [refreshMargin] ms before expiry to refresh (default 30000; at most
 *   half the remaining lifetime)
 */

/**
 * @typedef {object} PendingRequest
 * @property {(value: any) => void} resolve
 * @property {(error: Error) => void} reject
 * @property {(answer: any) => any} handle
 */

const OPEN = 1;

/** A WebSocket session that outlives its connections. Use {@link Client}. */
export class Connection extends EventTarget {
  /**
   * @param {string} url the server's /ws URL, e.g. "ws://127.0.0.1:8443/ws"
   * @param {string | null} token from POST /api/v1/auth/login, /api/v1/auth/token or
   *   /api/v1/tokens; null or "" with `getToken`
   * @param {ClientOptions} [options]
   */
  constructor(url, token, {
    deviceId = null, codec = null, msgpack = null, autoAck = true, pingInterval = 30000,
    pingTimeout = 10000, reconnect = new ReconnectPolicy(), connectTimeout = 10000,
    WebSocket: socketClass = globalThis.WebSocket, getToken = null, refreshMargin = 30000,
  } = {}) {
    super();
    if (typeof socketClass !== "function") {
      throw new TypeError("no WebSocket: pass { WebSocket } (Node 20: --experimental-websocket)");
    }
    if (!token && !getToken) throw new TypeError("give a token or a getToken callback");
    this.url = url;
    this.token = token ?? "";
    this.getToken = getToken;
    this.refreshMargin = refreshMargin;
    /** @type {number | null} when the connection's credential expires (ms since the epoch) */
    this.expiresAt = null;
    this._tokenRefused = false;         // closed with 4402: ask getToken before reconnecting
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._refreshTimer = undefined;
    /** @type {Codec} */
    this.codec = codec ?? (msgpack ? new MsgpackCodec(msgpack) : defaultCodec());
    this.options = { autoAck, pingInterval, pingTimeout, connectTimeout };
    this.policy = reconnect || new ReconnectPolicy({ maxAttempts: 0 });
    this._WebSocket = socketClass;
    /** @type {string | null} */
    this.deviceId = deviceId;
    /** @type {number | null} */
    this.userId = null;
    /** @type {ClientState} */
    this.state = "disconnected";
    /** @type {PresenceStatus | null} chosen with setPresence, restored after reconnects */
    this.presenceStatus = null;
    /** @type {number | null} Date.now() of the next reconnection attempt while waiting */
    this.nextAttemptAt = null;
    this._seq = Date.now() * 1000;      // never reused by this device, even across page loads
    /** @type {WebSocket | null} */
    this._ws = null;
    /** @type {Map<number, PendingRequest>} pending ping / sync / subscribe on this socket */
    this._requests = new Map();
    this._failures = 0;                 // failed attempts since the last successful one
    this._hadSession = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._deadline = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._pingTimer = undefined;
    this._closedByUser = false;
    /** @type {{code: string, message: string} | null} a failed MsgAuthRsp */
    this._refusal = null;
    /** @type {{resolve: (c: any) => void, reject: (e: Error) => void, retry: boolean} | null} */
    this._firstConnect = null;
    this._onOnline = () => { if (this.state === "disconnected") this.reconnectNow(); };
    globalThis.addEventListener?.("online", this._onOnline);
  }

  /**
   * Subscribe to an event; `fn` gets its detail. Returns a function that unsubscribes.
   * @template {keyof ClientEvents} K
   * @param {K} name
   * @param {(detail: ClientEvents[K]) => void} fn
   * @returns {() => void}
   */
  on(name, fn) {
    /** @param {Event} event */
    const listener = (event) => fn(/** @type {CustomEvent<ClientEvents[K]>} */ (event).detail);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  /** True while authenticated and up to date (the backlog has been read). */
  get connected() { return this.state === "active"; }

  /**
   * Open and authenticate; resolves once the backlog is read. Rejects with AuthError for
   * a refused token. With `retry: false` (the default) a first attempt that cannot reach
   * the server rejects; with `retry: true` it goes on with the reconnect policy.
   * @param {{retry?: boolean}} [options]
   * @returns {Promise<this>}
   */
  connect({ retry = false } = {}) {
    this._closedByUser = false;
    if (this.state === "active") return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      this._firstConnect = { resolve, reject, retry };
      clearTimeout(this._retryTimer);
      this._attemptNow();
    });
  }

  /** Close for good: pending requests are rejected, no reconnection. */
  close() {
    this._closedByUser = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    clearTimeout(this._retryTimer);
    this.nextAttemptAt = null;
    const ws = this._ws;
    const closed = new ConnectionLostError("client closed");
    this._teardown(closed);
    if (ws) ws.close(CloseCode.NORMAL, "bye");
    this._stopped(closed);
    this._setState("closed");
    this._settleFirst(closed);
  }

  /** Skip the wait: try to reconnect now (e.g. a "Retry now" button). */
  reconnectNow() {
    if (this._closedByUser || this.state !== "disconnected") return;
    clearTimeout(this._retryTimer);
    this._attemptNow();
  }

  // --- hooks of the Client

  /**
   * Handle one server message once authenticated (overridden by Client).
   * @param {unknown} data
   */
  _dispatch(data) { void data; }

  /**
   * The client stopped for good with `error`: fail what waits (overridden by Client).
   * @param {Error} error
   */
  _stopped(error) { void error; }

  // --- sending

  _nextSeq() { return ++this._seq; }

  /**
   * @param {number} type
   * @param {number} seq
   * @param {object} [payload]
   * @returns {boolean} false when there is no open socket
   */
  _send(type, seq, payload) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(this.codec.encode(type, seq, payload));
    return true;
  }

  /**
   * Send a request on the current socket; resolves with `handle(answer)`.
   * @template T
   * @param {number} type
   * @param {object | undefined} payload
   * @param {(answer: any) => T} [handle]
   * @returns {Promise<T>}
   */
  _request(type, payload, handle = (answer) => answer) {
    if (this.state !== "active") return Promise.reject(new ConnectionLostError("not connected"));
    const seq = this._nextSeq();
    return new Promise((resolve, reject) => {
      this._requests.set(seq, { resolve, reject, handle });
      this._send(type, seq, payload);
    });
  }

  // --- one connection attempt: open, MsgAuth, backlog

  _attemptNow() {
    this.nextAttemptAt = null;
    this._setState("connecting");
    const stale = this.expiresAt !== null && Date.now() >= this.expiresAt - 1000;
    if (this.getToken && (!this.token || stale || this._tokenRefused)) {
      this._callGetToken().then((token) => {
        if (this._closedByUser || this.state !== "connecting") return;
        this.token = token;
        this.expiresAt = null;
        this._tokenRefused = false;
        this._openSocket();
      }, (err) => {
        if (this._closedByUser) return;
        const refused = err instanceof AuthError;
        this._lost({ code: refused ? CloseCode.AUTH_FAILED : CloseCode.ABNORMAL,
                     reason: `getToken failed: ${err.reason ?? err.message ?? err}` });
      });
      return;
    }
    this._openSocket();
  }

  /** @returns {Promise<string>} */
  async _callGetToken() {
    if (!this.getToken) throw new AuthError("WS_AUTH_FAILED", "no getToken callback");
    const token = await this.getToken();
    if (typeof token !== "string" || !token) {
      throw new AuthError("WS_AUTH_FAILED", "getToken returned no token");
    }
    return token;
  }

  /**
   * Get a token from getToken and send it as Refresh now; resolves with the new expiry
   * (ms since the epoch, null: none). Rejects with TidingsError (WS_AUTH_FAILED) if the
   * server refuses it: the old credential then runs on until it expires (close 4402).
   * @returns {Promise<number | null>}
   */
  async refresh() {
    const token = await this._callGetToken();
    const answer = await this._request(MsgType.REFRESH, { token });
    this.token = answer.token || token;
    this.expiresAt = answer.expires_at ?? null;
    this._emit("refreshed", { expiresAt: this.expiresAt });
    this._scheduleRefresh();
    return this.expiresAt;
  }

  /** Arm the refresh ahead of the credential's expiry (with getToken only). */
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = undefined;
    if (!this.getToken || this.expiresAt === null) return;
    const remaining = this.expiresAt - Date.now();
    const delay = Math.max(0, remaining - Math.min(this.refreshMargin, remaining / 2));
    const ws = this._ws;
    this._refreshTimer = setTimeout(() => {
      if (this._ws !== ws || this.state !== "active") return;
      this.refresh().catch((/** @type {any} */ err) => {
        this._emit("error", { code: err.code ?? "CLIENT_REFRESH_FAILED",
                              message: err.reason ?? String(err), seq: 0 });
        // Try again while the credential lasts; at its end the server closes (4402).
        const left = (this.expiresAt ?? 0) - Date.now();
        if (this._ws === ws && left > 0) {
          this._refreshTimer = setTimeout(() => this._scheduleRefresh(),
                                          Math.min(5000, Math.max(500, left / 4)));
        }
      });
    }, delay);
  }

  _openSocket() {
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (err) {
      this._lost({ code: CloseCode.ABNORMAL, reason: String(err) });
      return;
    }
    this._ws = ws;
    ws.binaryType = "arraybuffer";
    const deadline = setTimeout(() => this._abandon(ws, "connect timeout"),
                                this.options.connectTimeout);
    this._deadline = deadline;
    ws.onopen = () => {
      this._setState("authenticating");
      /** @type {{token: string, device_id?: string}} */
      const auth = { token: this.token };
      if (this.deviceId) auth.device_id = this.deviceId;
      this._send(MsgType.AUTH, this._nextSeq(), auth);
    };
    ws.onmessage = (event) => {
      if (this.state === "active" || this.state === "syncing") {
        this._dispatch(event.data);
        return;
      }
      const frame = this._decode(event.data);
      if (!frame || frame.type !== MsgType.AUTH_RSP) return;
      clearTimeout(deadline);
      this._authenticated(frame.payload);
    };
    ws.onclose = (event) => {
      clearTimeout(deadline);
      if (this._ws === ws) this._lost({ code: event.code, reason: event.reason });
    };
    // While connecting, an error is the failure (Node 20's WebSocket fires no close
    // event then); later a close event follows the error and carries its code.
    ws.onerror = () => {
      if (ws.readyState === 0) this._abandon(ws, "cannot connect", CloseCode.ABNORMAL);
    };
  }

  /** @param {Record<string, any>} payload a MsgAuthRsp */
  _authenticated(payload) {
    if (!payload.success) {
      const [code, ...rest] = String(payload.error ?? "WS_AUTH_FAILED").split(": ");
      this._refusal = { code, message: rest.join(": ") };
      return;  // the server closes with 4401 or 4409 next; _lost acts on it
    }
    this.userId = payload.user_id;
    this.deviceId = payload.device_id;
    this.expiresAt = payload.expires_at ?? null;
    this._setState("syncing");
  }

  /**
   * A socket that does not answer: stop waiting for its close handshake.
   * @param {WebSocket} ws
   * @param {string} reason
   * @param {number} [code]
   */
  _abandon(ws, reason, code = CloseCode.PING_TIMEOUT) {
    if (this._ws !== ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(CloseCode.PING_TIMEOUT, reason); } catch { /* already closing */ }
    this._lost({ code, reason });
  }

  /**
   * @param {unknown} data
   * @returns {Frame | null}
   */
  _decode(data) {
    try {
      return this.codec.decode(data);
    } catch (err) {
      this._emit("error", { code: "CLIENT_DECODE_ERROR", message: String(err), seq: 0 });
      return null;
    }
  }

  // --- keepalive

  _startPings() {
    clearInterval(this._pingTimer);
    const ws = this._ws;
    if (!ws) return;
    this._pingTimer = setInterval(() => {
      const timer = setTimeout(() => this._abandon(ws, "no MsgPong"), this.options.pingTimeout);
      this._request(MsgType.PING, undefined).then(() => clearTimeout(timer),
                                                  () => clearTimeout(timer));
    }, this.options.pingInterval);
  }

  // --- losing the connection, and coming back

  /** @param {Error} error what pending requests of this socket are rejected with */
  _teardown(error) {
    clearInterval(this._pingTimer);
    clearTimeout(this._refreshTimer);
    this._refreshTimer = undefined;
    clearTimeout(this._deadline);
    this._pingTimer = undefined;
    if (this._ws) {
      this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = null;
    }
    this._ws = null;
    for (const request of this._requests.values()) request.reject(error);
    this._requests.clear();
  }

  /** @param {{code: number, reason: string}} closed */
  _lost({ code, reason }) {
    const refusal = this._refusal;
    this._refusal = null;
    this._teardown(new ConnectionLostError(`connection lost (${code})`));
    if (this._closedByUser) return;
    // 4402: the credential expired. With getToken, reconnect with a new one; without,
    // the same token would only be refused.
    const expired = code === CloseCode.TOKEN_EXPIRED;
    if (expired) this._tokenRefused = true;
    const authFailed = code === CloseCode.AUTH_FAILED || code === CloseCode.TOKEN_REVOKED ||
      refusal?.code === "WS_AUTH_FAILED" || (expired && !this.getToken);
    const first = this._firstConnect && !this._firstConnect.retry;
    /** @type {number | null} */
    let delay = null;
    this._failures += 1;
    if (!authFailed && !first) delay = this.policy.delay(this._failures);
    this._setState(delay === null ? "closed" : "disconnected");
    this._emit("disconnected", { code, reason: refusal ? refusal.message : reason,
                                 willRetry: delay !== null, delay });
    if (delay === null) {
      const error = authFailed
        ? new AuthError(refusal?.code ?? "WS_AUTH_FAILED", refusal?.message || reason)
        : refusal ? new TidingsError(refusal.code, refusal.message)
          : new ConnectionLostError(`cannot connect to ${this.url} (${code})`);
      this._stopped(error);
      this._settleFirst(error);
      return;
    }
    this.nextAttemptAt = Date.now() + delay;
    this._emit("reconnecting", { attempt: this._failures, delay, at: this.nextAttemptAt });
    this._retryTimer = setTimeout(() => this._attemptNow(), delay);
  }

  /** @param {Error | null} error */
  _settleFirst(error) {
    const first = this._firstConnect;
    if (!first) return;
    this._firstConnect = null;
    if (error) first.reject(error);
    else first.resolve(this);
  }

  /** @param {ClientState} state */
  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} name
   * @param {ClientEvents[K]} detail
   */
  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}
