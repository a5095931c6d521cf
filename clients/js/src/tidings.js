// Tidings JavaScript client for the native /ws protocol (seed 001 plus the Tidings
// extensions): auth, chats acknowledged once stored, acks, sync, presence, channels
// (subscribe with since, publish), keepalive, and the seed 001 §4.3 reconnect policy
// with resync. One ES module, no dependencies:
// JSON text frames by default, MessagePack binary frames when @msgpack/msgpack is
// loaded (pass it as `msgpack`, or load its browser build, which defines `MessagePack`).
// Works in browsers and in Node 20+ (`--experimental-websocket`, or pass `WebSocket`).
// The wire protocol is documented in docs/protocol.md; this file mirrors the Python
// client (tidings.client) so that both keep the same promises.

/** Wire type codes (src/tidings/protocol/codes.py). */
export const MsgType = Object.freeze({
  AUTH: 1, CHAT: 2, ACK: 3, SYNC_REQ: 4, PRESENCE: 5, PING: 6,
  SUBSCRIBE: 10, UNSUBSCRIBE: 11, PUBLISH: 12,
  AUTH_RSP: 101, CHAT_PUSH: 102, SYNC_RSP: 103, PRESENCE_PUSH: 104, PONG: 105, ERROR: 106,
  CHAT_ACK: 107, RECEIPT_PUSH: 108,
  SUBSCRIBE_RSP: 110, PUBLICATION: 111, PUBLISH_ACK: 112, UNSUBSCRIBE_RSP: 113,
  CHANNEL_PRESENCE_PUSH: 114,
});

/** Close codes a client acts on (docs/protocol.md, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, ABNORMAL: 1006, MESSAGE_TOO_BIG: 1009, INTERNAL_ERROR: 1011,
  AUTH_FAILED: 4401, AUTH_TIMEOUT: 4408, TOO_MANY_CONNECTIONS: 4409, IDLE_TIMEOUT: 4410,
  SLOW_CONSUMER: 4413,
  // Client-side only: our own close after a missing MsgPong (4000–4099 are private use).
  PING_TIMEOUT: 4000,
});

/** An error the server sent (its `code`, e.g. "WS_USER_NOT_FOUND"), or a client failure. */
export class TidingsError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "TidingsError";
    this.code = code;
    this.reason = message;
  }
}

/** The token was refused (WS_AUTH_FAILED / close 4401): no retry with the same token helps. */
export class AuthError extends TidingsError {
  constructor(code, message) {
    super(code, message);
    this.name = "AuthError";
  }
}

/** The connection was lost (or never opened) before the request was answered. */
export class ConnectionLostError extends TidingsError {
  constructor(message = "connection lost") {
    super("CONNECTION_LOST", message);
    this.name = "ConnectionLostError";
  }
}

/**
 * Exponential backoff between reconnection attempts, seed 001 §4.3: the n-th wait
 * (from 1) is initialInterval × backoffFactor^(n-1), capped at maxInterval — 1, 1.5,
 * 2.25, 3.4 … 30 s by default, attempts unlimited. `jitter` (0–1, off by default)
 * spreads each wait by ±jitter so many clients do not reconnect in step.
 */
export class ReconnectPolicy {
  constructor({ initialInterval = 1000, maxInterval = 30000, backoffFactor = 1.5,
                maxAttempts = Infinity, jitter = 0 } = {}) {
    if (!(initialInterval >= 0 && maxInterval >= initialInterval)) {
      throw new RangeError("need 0 <= initialInterval <= maxInterval");
    }
    if (!(backoffFactor >= 1)) throw new RangeError("backoffFactor must be >= 1");
    if (!(maxAttempts >= 0)) throw new RangeError("maxAttempts must be >= 0");
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("jitter must be in [0, 1]");
    Object.assign(this, { initialInterval, maxInterval, backoffFactor, maxAttempts, jitter });
    Object.freeze(this);
  }

  /** Milliseconds to wait before attempt `attempt` (1-based), or null when out of attempts. */
  delay(attempt, random = Math.random) {
    if (attempt > this.maxAttempts) return null;
    const base = Math.min(this.initialInterval * this.backoffFactor ** (attempt - 1),
                          this.maxInterval);
    if (!this.jitter) return base;
    return Math.min(base * (1 + this.jitter * (2 * random() - 1)), this.maxInterval);
  }
}

/** Text frames: the envelope as one JSON object, payload inline. */
export class JsonCodec {
  get binary() { return false; }

  encode(type, seq, payload) {
    return JSON.stringify(payload === undefined ? { type, seq } : { type, seq, payload });
  }

  decode(data) {
    if (typeof data !== "string") throw new TypeError("expected a text frame");
    const frame = JSON.parse(data);
    return { type: frame.type, seq: frame.seq ?? 0, payload: frame.payload ?? {} };
  }
}

/**
 * Binary frames (seed 001 §2.2.1): a MessagePack map whose `payload` is a bin holding
 * the MessagePack-encoded payload. `msgpack` is the @msgpack/msgpack module (or any
 * object with its `encode` and `decode`).
 */
export class MsgpackCodec {
  constructor(msgpack) {
    if (!msgpack || typeof msgpack.encode !== "function" || typeof msgpack.decode !== "function") {
      throw new TypeError("MsgpackCodec needs @msgpack/msgpack (an object with encode and decode)");
    }
    this.msgpack = msgpack;
  }

  get binary() { return true; }

  encode(type, seq, payload) {
    return this.msgpack.encode({ type, seq, payload: this.msgpack.encode(payload ?? {}) });
  }

  decode(data) {
    if (typeof data === "string") throw new TypeError("expected a binary frame");
    const frame = this.msgpack.decode(data instanceof Uint8Array ? data : new Uint8Array(data));
    const raw = frame.payload;
    const payload = raw && raw.byteLength ? this.msgpack.decode(raw) : {};
    return { type: frame.type, seq: Number(frame.seq ?? 0), payload };
  }
}

/** MessagePack when @msgpack/msgpack's browser build is loaded (global `MessagePack`), else JSON. */
export function defaultCodec() {
  const global = globalThis.MessagePack;
  return global && typeof global.encode === "function" ? new MsgpackCodec(global) : new JsonCodec();
}

/** A wire publication as the JavaScript API presents it (camelCase). */
export function fromWirePublication(p) {
  return { channel: p.channel, offset: p.offset, type: p.type, data: p.data,
           info: { userId: p.info?.user_id ?? null, deviceId: p.info?.device_id ?? null },
           createdAt: p.created_at };
}

/** A wire message object as the JavaScript API presents it (camelCase). */
export function fromWireMessage(m) {
  return { messageId: m.message_id, from: m.from, to: m.to, type: m.type, content: m.content,
           createdAt: m.created_at, status: m.status };
}

const OPEN = 1;

/**
 * One device of one user. Events (each a CustomEvent; `client.on(name, fn)` passes its
 * `detail`): "message", "receipt", "presence", "publication", "subscribed",
 * "channelpresence", "state", "ready", "disconnected", "reconnecting", "error",
 * "frame" (any other server frame).
 */
export class Client extends EventTarget {
  constructor(url, token, {
    deviceId = null, codec = null, msgpack = null, autoAck = true, pingInterval = 30000,
    pingTimeout = 10000, reconnect = new ReconnectPolicy(), connectTimeout = 10000,
    WebSocket: socketClass = globalThis.WebSocket,
  } = {}) {
    super();
    if (typeof socketClass !== "function") {
      throw new TypeError("no WebSocket: pass { WebSocket } (Node 20: --experimental-websocket)");
    }
    this.url = url;
    this.token = token;
    this.codec = codec ?? (msgpack ? new MsgpackCodec(msgpack) : defaultCodec());
    this.options = { autoAck, pingInterval, pingTimeout, connectTimeout };
    this.policy = reconnect || new ReconnectPolicy({ maxAttempts: 0 });
    this._WebSocket = socketClass;
    this.deviceId = deviceId;
    this.userId = null;
    this.state = "disconnected";        // connecting, authenticating, syncing, active, closed
    this.lastMessageId = 0;             // highest message id delivered to the application
    this.presenceStatus = null;         // chosen with setPresence, restored after reconnects
    this.nextAttemptAt = null;          // ms timestamp of the next reconnection attempt
    this._seq = Date.now() * 1000;      // never reused by this device, even across page loads
    this._ws = null;
    this._chats = new Map();            // seq -> unacknowledged chat (resent after reconnects)
    this._publishes = new Map();        // seq -> unacknowledged publish (resent, same key)
    this._channels = new Map();         // channel -> { lastOffset } of wanted subscriptions
    this._requests = new Map();         // seq -> pending ping / sync on the current socket
    this._failures = 0;                 // failed attempts since the last successful one
    this._hadSession = false;
    this._retryTimer = null;
    this._pingTimer = null;
    this._ackTimer = null;
    this._ackUpTo = 0;
    this._closedByUser = false;
    this._onOnline = () => { if (this.state === "disconnected") this.reconnectNow(); };
    globalThis.addEventListener?.("online", this._onOnline);
  }

  /** Subscribe to an event; `fn` gets its detail. Returns a function that unsubscribes. */
  on(name, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  /** True while authenticated and up to date (the backlog has been read). */
  get connected() { return this.state === "active"; }

  /**
   * Open and authenticate; resolves once the backlog is read. Rejects with AuthError for
   * a refused token. With `retry: false` (the default) a first attempt that cannot reach
   * the server rejects; with `retry: true` it goes on with the reconnect policy.
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

  /** Close for good: pending chats are rejected, no reconnection. */
  close() {
    this._closedByUser = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    clearTimeout(this._retryTimer);
    this.nextAttemptAt = null;
    const ws = this._ws;
    this._teardown(new ConnectionLostError("client closed"));
    if (ws) ws.close(CloseCode.NORMAL, "bye");
    for (const pending of [...this._chats.values(), ...this._publishes.values()]) {
      pending.reject(new ConnectionLostError("client closed"));
    }
    this._chats.clear();
    this._publishes.clear();
    this._channels.clear();
    this._setState("closed");
    this._settleFirst(new ConnectionLostError("client closed"));
  }

  /** Skip the wait: try to reconnect now (e.g. a "Retry now" button). */
  reconnectNow() {
    if (this._closedByUser || this.state !== "disconnected") return;
    clearTimeout(this._retryTimer);
    this._attemptNow();
  }

  /**
   * Send a chat; resolves with { messageId, createdAt } once the server has stored it.
   * Survives reconnects: an unacknowledged chat is resent with its original seq (the
   * server stores it once). Rejects with TidingsError carrying the server's code.
   */
  sendChat(to, content, type = "text") {
    if (this.state === "closed") return Promise.reject(new ConnectionLostError("client is closed"));
    const seq = this._nextSeq();
    return new Promise((resolve, reject) => {
      const chat = { seq, payload: { to, type, content }, resolve, reject };
      this._chats.set(seq, chat);
      if (this.state === "active") this._send(MsgType.CHAT, seq, chat.payload);
    });
  }

  /**
   * Subscribe to a channel; resolves with { channel, offset, recovered, publications }.
   * With `since` (the last offset you have) everything after it is replayed first, then
   * live publications follow, each once, in offset order, as "publication" events. The
   * subscription is renewed after every reconnect from the last offset delivered.
   */
  subscribe(channel, { since } = {}) {
    if (this.state !== "active") return Promise.reject(new ConnectionLostError("not connected"));
    const wanted = { lastOffset: since ?? null };
    this._channels.set(channel, wanted);
    return this._subscribeNow(channel, wanted, false).catch((err) => {
      if (this._channels.get(channel) === wanted) this._channels.delete(channel);
      throw err;
    });
  }

  /** Stop a subscription; resolves once the server confirms. */
  unsubscribe(channel) {
    this._channels.delete(channel);
    return this._request(MsgType.UNSUBSCRIBE, { channel }).then(() => undefined);
  }

  /**
   * Publish to a channel; resolves with { channel, offset, createdAt, duplicate } once
   * stored. Every publish carries an idempotency key (yours, or one made from this
   * device and the request's seq), so the resend after a reconnect publishes once.
   */
  publish(channel, data, { type = "message", idempotencyKey } = {}) {
    if (this.state === "closed") return Promise.reject(new ConnectionLostError("client is closed"));
    const seq = this._nextSeq();
    const key = idempotencyKey ?? `js-${seq}-${Math.random().toString(36).slice(2, 10)}`;
    return new Promise((resolve, reject) => {
      const pending = { seq, payload: { channel, type, data, idempotency_key: key },
                        resolve, reject };
      this._publishes.set(seq, pending);
      if (this.state === "active") this._send(MsgType.PUBLISH, seq, pending.payload);
    });
  }

  /** `delivered` confirms every message up to messageId; `read` also marks that one read. */
  ack(messageId, status = "delivered") {
    if (this.state !== "active" && this.state !== "syncing") return false;
    return this._send(MsgType.ACK, this._nextSeq(), { message_id: messageId, status });
  }

  /** One page of this device's stream after an id: { messages, hasMore }. */
  sync(lastMessageId = 0) {
    return this._request(MsgType.SYNC_REQ, { last_message_id: lastMessageId })
      .then((p) => ({ messages: p.messages.map(fromWireMessage), hasMore: p.has_more }));
  }

  /** Choose a status (online, away, offline); it is restored after every reconnect. */
  setPresence(status) {
    this.presenceStatus = status;
    if (this.state === "active") this._send(MsgType.PRESENCE, this._nextSeq(), { status });
  }

  /** Round trip of one MsgPing, in milliseconds. */
  async ping() {
    const started = performance.now();
    await this._request(MsgType.PING, undefined);
    return performance.now() - started;
  }

  // --- sending

  _nextSeq() { return ++this._seq; }

  _send(type, seq, payload) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(this.codec.encode(type, seq, payload));
    return true;
  }

  _subscribeNow(channel, wanted, renewal) {
    const payload = { channel };
    if (wanted.lastOffset !== null) payload.since = wanted.lastOffset;
    // Handled as the answer arrives, not in a later .then(): frames that arrive together
    // are dispatched in one go, and a live publication must not overtake the replay.
    return this._request(MsgType.SUBSCRIBE, payload, (rsp) => {
      if (this._channels.get(channel) !== wanted) return rsp;  // unsubscribed meanwhile
      if (wanted.lastOffset === null) wanted.lastOffset = rsp.offset;
      const publications = rsp.publications.map(fromWirePublication);
      this._emit("subscribed", { channel, offset: rsp.offset, recovered: rsp.recovered,
                                 renewal });
      for (const p of publications) this._publication(p);
      return { channel, offset: rsp.offset, recovered: rsp.recovered, publications };
    });
  }

  _publication(p) {
    // After a reconnect the replay may repeat what was delivered: drop it.
    const wanted = this._channels.get(p.channel);
    if (!wanted) return;
    if (wanted.lastOffset !== null && p.offset <= wanted.lastOffset) return;
    wanted.lastOffset = p.offset;
    this._emit("publication", p);
  }

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

  _authenticated(payload) {
    if (!payload.success) {
      const [code, ...rest] = String(payload.error ?? "WS_AUTH_FAILED").split(": ");
      this._refusal = { code, message: rest.join(": ") };
      return;  // the server closes with 4401 or 4409 next; _lost acts on it
    }
    this.userId = payload.user_id;
    this.deviceId = payload.device_id;
    this._setState("syncing");
  }

  _abandon(ws, reason, code = CloseCode.PING_TIMEOUT) {
    // A socket that does not answer: stop waiting for its close handshake.
    if (this._ws !== ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(CloseCode.PING_TIMEOUT, reason); } catch { /* already closing */ }
    this._lost({ code, reason });
  }

  _backlogDone() {
    const reconnected = this._hadSession;
    this._failures = 0;
    this._hadSession = true;
    this._setState("active");
    this._startPings();
    for (const chat of this._chats.values()) this._send(MsgType.CHAT, chat.seq, chat.payload);
    for (const p of this._publishes.values()) this._send(MsgType.PUBLISH, p.seq, p.payload);
    if (reconnected) {
      for (const [channel, wanted] of this._channels) {
        this._subscribeNow(channel, wanted, true).catch((err) => this._emit("error", {
          code: err.code ?? "CONNECTION_LOST", message: err.reason ?? String(err), seq: 0 }));
      }
    }
    if (this.presenceStatus) this._send(MsgType.PRESENCE, this._nextSeq(),
                                        { status: this.presenceStatus });
    this._emit("ready", { userId: this.userId, deviceId: this.deviceId, reconnected });
    this._settleFirst(null);
  }

  // --- receiving

  _decode(data) {
    try {
      return this.codec.decode(data);
    } catch (err) {
      this._emit("error", { code: "CLIENT_DECODE_ERROR", message: String(err), seq: 0 });
      return null;
    }
  }

  _dispatch(data) {
    const frame = this._decode(data);
    if (!frame) return;
    const { type, seq, payload } = frame;
    switch (type) {
      case MsgType.SYNC_RSP:
        if (seq === 0) {
          this._deliver(payload.messages);
          if (!payload.has_more && this.state === "syncing") this._backlogDone();
        } else {
          this._answer(seq, payload);
        }
        break;
      case MsgType.CHAT_PUSH: this._deliver([payload]); break;
      case MsgType.CHAT_ACK: {
        const chat = this._chats.get(seq);
        if (chat) {
          this._chats.delete(seq);
          chat.resolve({ messageId: payload.message_id, createdAt: payload.created_at });
        }
        break;
      }
      case MsgType.PONG: this._answer(seq, payload); break;
      case MsgType.SUBSCRIBE_RSP:
      case MsgType.UNSUBSCRIBE_RSP: this._answer(seq, payload); break;
      case MsgType.PUBLICATION:
        // The SubscribeRsp always comes first, and its handler runs (a microtask)
        // before the next frame's: offsets reach the application in order.
        this._publication(fromWirePublication(payload));
        break;
      case MsgType.PUBLISH_ACK: {
        const pending = this._publishes.get(seq);
        if (pending) {
          this._publishes.delete(seq);
          pending.resolve({ channel: payload.channel, offset: payload.offset,
                            createdAt: payload.created_at, duplicate: payload.duplicate });
        }
        break;
      }
      case MsgType.CHANNEL_PRESENCE_PUSH:
        this._emit("channelpresence", { channel: payload.channel, event: payload.event,
                                        userId: payload.user_id, deviceId: payload.device_id });
        break;
      case MsgType.RECEIPT_PUSH:
        this._emit("receipt", { messageIds: payload.message_ids, status: payload.status,
                                by: payload.by });
        break;
      case MsgType.PRESENCE_PUSH:
        this._emit("presence", { userId: payload.user_id, status: payload.status });
        break;
      case MsgType.ERROR: this._failed(seq, payload); break;
      default: this._emit("frame", frame);
    }
  }

  _deliver(messages) {
    // Re-deliveries after a reconnect (ids at or below the last one delivered) are
    // dropped: the application sees each message once, in id order.
    // The ack names the highest id this connection received: always a valid ack.
    let highest = 0;
    for (const wire of messages) {
      highest = Math.max(highest, wire.message_id);
      if (wire.message_id <= this.lastMessageId) continue;
      this.lastMessageId = wire.message_id;
      this._emit("message", fromWireMessage(wire));
    }
    if (this.options.autoAck && highest) this._scheduleAck(highest);
  }

  _scheduleAck(upTo) {
    // One cumulative ack per burst of messages.
    this._ackUpTo = Math.max(this._ackUpTo, upTo);
    if (this._ackTimer !== null) return;
    this._ackTimer = setTimeout(() => {
      this._ackTimer = null;
      if (this._ackUpTo) this.ack(this._ackUpTo, "delivered");
    }, 0);
  }

  _answer(seq, payload) {
    const request = this._requests.get(seq);
    if (!request) return;
    this._requests.delete(seq);
    try {
      request.resolve(request.handle(payload));
    } catch (err) {
      request.reject(err);
    }
  }

  _failed(seq, payload) {
    const error = new TidingsError(payload.code, payload.message);
    const chat = this._chats.get(seq);
    if (chat) {
      this._chats.delete(seq);
      chat.reject(error);
      return;
    }
    const request = this._requests.get(seq);
    if (request) {
      this._requests.delete(seq);
      request.reject(error);
      return;
    }
    this._emit("error", { code: payload.code, message: payload.message, seq });
  }

  // --- keepalive

  _startPings() {
    clearInterval(this._pingTimer);
    const ws = this._ws;
    this._pingTimer = setInterval(() => {
      const timer = setTimeout(() => this._abandon(ws, "no MsgPong"), this.options.pingTimeout);
      this._request(MsgType.PING, undefined).then(() => clearTimeout(timer),
                                                  () => clearTimeout(timer));
    }, this.options.pingInterval);
  }

  // --- losing the connection, and coming back

  _teardown(error) {
    clearInterval(this._pingTimer);
    clearTimeout(this._deadline);
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    this._ackUpTo = 0;
    this._pingTimer = null;
    if (this._ws) {
      this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = null;
    }
    this._ws = null;
    for (const request of this._requests.values()) request.reject(error);
    this._requests.clear();
  }

  _lost({ code, reason }) {
    const refusal = this._refusal;
    this._refusal = null;
    this._teardown(new ConnectionLostError(`connection lost (${code})`));
    if (this._closedByUser) return;
    const authFailed = code === CloseCode.AUTH_FAILED ||
      (refusal && refusal.code === "WS_AUTH_FAILED");
    const first = this._firstConnect && !this._firstConnect.retry;
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
      for (const chat of this._chats.values()) chat.reject(error);
      this._chats.clear();
      this._settleFirst(error);
      return;
    }
    this.nextAttemptAt = Date.now() + delay;
    this._emit("reconnecting", { attempt: this._failures, delay, at: this.nextAttemptAt });
    this._retryTimer = setTimeout(() => this._attemptNow(), delay);
  }

  _settleFirst(error) {
    const first = this._firstConnect;
    if (!first) return;
    this._firstConnect = null;
    if (error) first.reject(error);
    else first.resolve(this);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}
