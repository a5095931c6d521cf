// Tidings JavaScript client for the native /ws protocol (seed 001 plus the Tidings
// extensions): auth, chats acknowledged once stored, acks, sync, presence, channels
// (subscribe with since, publish), keepalive, and the seed 001 §4.3 reconnect policy
// with resync. ES modules, no dependencies: JSON text frames by default, MessagePack
// binary frames when @msgpack/msgpack is loaded (pass it as `msgpack`, or load its
// browser build, which defines `MessagePack`). Works in browsers and in Node 20+
// (`--experimental-websocket`, or pass `WebSocket`). The wire protocol is documented in
// docs/protocol.md; this client mirrors the Python one (tidings_client) so that both
// keep the same promises. Its connection half is tidings-connection.js.

import { Connection } from "./tidings-connection.js";
import {
  ConnectionLostError, MsgType, TidingsError, fromWireMessage, fromWirePublication,
} from "./tidings-protocol.js";

export * from "./tidings-protocol.js";
export * from "./tidings-types.js";  // types only: ChatMessage, Publication, ClientEvents …
export { HttpApi, HttpError } from "./tidings-http.js";
export { Connection };

/**
 * @import { ChatAck, MessageType, PresenceStatus, Publication, PublishAck, Subscribed,
 *           SyncPage, WireMessage } from "./tidings-types.js"
 * @import { ClientOptions } from "./tidings-connection.js"
 */

/**
 * @typedef {object} Pending
 * @property {number} seq
 * @property {Record<string, unknown>} payload
 * @property {(value: any) => void} resolve
 * @property {(error: Error) => void} reject
 */

/**
 * One device of one user. Events (each a CustomEvent; `client.on(name, fn)` passes its
 * `detail`): "message", "receipt", "presence", "publication", "subscribed",
 * "channelpresence", "state", "ready", "disconnected", "reconnecting", "error",
 * "frame" (any other server frame).
 */
export class Client extends Connection {
  /**
   * @param {string} url the server's /ws URL, e.g. "ws://127.0.0.1:8443/ws"
   * @param {string | null} token from POST /api/v1/auth/login, /api/v1/auth/token or
   *   /api/v1/tokens; null or "" with `options.getToken`
   * @param {ClientOptions} [options]
   */
  constructor(url, token, options = {}) {
    super(url, token, options);
    this.lastMessageId = 0;             // highest message id delivered to the application
    /** @type {Map<number, Pending>} unacknowledged chats, resent after reconnects */
    this._chats = new Map();
    /** @type {Map<number, Pending>} unacknowledged publishes, resent with the same key */
    this._publishes = new Map();
    /** @type {Map<string, {lastOffset: number | null}>} wanted subscriptions */
    this._channels = new Map();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._ackTimer = null;
    this._ackUpTo = 0;
  }

  /**
   * Send a chat; resolves with { messageId, createdAt } once the server has stored it.
   * Survives reconnects: an unacknowledged chat is resent with its original seq (the
   * server stores it once). Rejects with TidingsError carrying the server's code.
   * @param {number} to a user id
   * @param {string} content
   * @param {MessageType} [type]
   * @returns {Promise<ChatAck>}
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
   * @param {string} channel
   * @param {{since?: number}} [options]
   * @returns {Promise<Subscribed>}
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

  /**
   * Stop a subscription; resolves once the server confirms.
   * @param {string} channel
   * @returns {Promise<void>}
   */
  unsubscribe(channel) {
    this._channels.delete(channel);
    return this._request(MsgType.UNSUBSCRIBE, { channel }).then(() => undefined);
  }

  /**
   * Publish to a channel; resolves with { channel, offset, createdAt, duplicate } once
   * stored. Every publish carries an idempotency key (yours, or one made from this
   * device and the request's seq), so the resend after a reconnect publishes once.
   * @param {string} channel
   * @param {unknown} data any JSON value
   * @param {{type?: string, idempotencyKey?: string}} [options]
   * @returns {Promise<PublishAck>}
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

  /**
   * `delivered` confirms every message up to messageId; `read` also marks that one read.
   * @param {number} messageId
   * @param {"delivered" | "read"} [status]
   * @returns {boolean} false when not connected (nothing sent)
   */
  ack(messageId, status = "delivered") {
    if (this.state !== "active" && this.state !== "syncing") return false;
    return this._send(MsgType.ACK, this._nextSeq(), { message_id: messageId, status });
  }

  /**
   * One page of this device's stream after an id.
   * @param {number} [lastMessageId]
   * @returns {Promise<SyncPage>}
   */
  sync(lastMessageId = 0) {
    return this._request(MsgType.SYNC_REQ, { last_message_id: lastMessageId })
      .then((p) => ({ messages: p.messages.map(fromWireMessage), hasMore: p.has_more }));
  }

  /**
   * Choose a status; it is restored after every reconnect.
   * @param {PresenceStatus} status
   */
  setPresence(status) {
    this.presenceStatus = status;
    if (this.state === "active") this._send(MsgType.PRESENCE, this._nextSeq(), { status });
  }

  /**
   * Call `method` of the application's backend through the server (Rpc); resolves with the
   * `data` of its answer. Rejects with TidingsError: WS_REFUSED_BY_BACKEND (the backend's
   * message), WS_BACKEND_UNAVAILABLE, or ConnectionLostError (not re-sent: a call may not
   * be safe to repeat).
   * @param {string} method
   * @param {unknown} [data] any JSON value
   * @returns {Promise<unknown>}
   */
  rpc(method, data = null) {
    return this._request(MsgType.RPC, { method, data }, (rsp) => rsp.data);
  }

  /**
   * Round trip of one MsgPing, in milliseconds.
   * @returns {Promise<number>}
   */
  async ping() {
    const started = performance.now();
    await this._request(MsgType.PING, undefined);
    return performance.now() - started;
  }

  // --- channels

  /**
   * @param {string} channel
   * @param {{lastOffset: number | null}} wanted
   * @param {boolean} renewal
   * @returns {Promise<Subscribed>}
   */
  _subscribeNow(channel, wanted, renewal) {
    /** @type {{channel: string, since?: number}} */
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

  /** @param {Publication} p */
  _publication(p) {
    // After a reconnect the replay may repeat what was delivered: drop it.
    const wanted = this._channels.get(p.channel);
    if (!wanted) return;
    if (wanted.lastOffset !== null && p.offset <= wanted.lastOffset) return;
    wanted.lastOffset = p.offset;
    this._emit("publication", p);
  }

  // --- the backlog read: up to date again

  _backlogDone() {
    const reconnected = this._hadSession;
    this._failures = 0;
    this._hadSession = true;
    this._setState("active");
    this._startPings();
    this._scheduleRefresh();
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
    this._emit("ready", { userId: this.userId ?? 0, deviceId: this.deviceId ?? "",
                          reconnected });
    this._settleFirst(null);
  }

  // --- receiving

  /** @param {unknown} data */
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
      case MsgType.CHAT_PUSH: this._deliver([/** @type {WireMessage} */ (payload)]); break;
      case MsgType.CHAT_ACK: {
        const chat = this._chats.get(seq);
        if (chat) {
          this._chats.delete(seq);
          chat.resolve({ messageId: payload.message_id, createdAt: payload.created_at });
        }
        break;
      }
      case MsgType.PONG:
      case MsgType.RPC_RSP:
      case MsgType.REFRESH_RSP: this._answer(seq, payload); break;
      case MsgType.SUBSCRIBE_RSP:
      case MsgType.UNSUBSCRIBE_RSP: this._answer(seq, payload); break;
      case MsgType.PUBLICATION:
        // The SubscribeRsp always comes first, and its handler runs (a microtask)
        // before the next frame's: offsets reach the application in order.
        this._publication(fromWirePublication(/** @type {any} */ (payload)));
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

  /** @param {WireMessage[]} messages */
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

  /** @param {number} upTo */
  _scheduleAck(upTo) {
    // One cumulative ack per burst of messages.
    this._ackUpTo = Math.max(this._ackUpTo, upTo);
    if (this._ackTimer !== null) return;
    this._ackTimer = setTimeout(() => {
      this._ackTimer = null;
      if (this._ackUpTo) this.ack(this._ackUpTo, "delivered");
    }, 0);
  }

  /**
   * @param {number} seq
   * @param {Record<string, any>} payload
   */
  _answer(seq, payload) {
    const request = this._requests.get(seq);
    if (!request) return;
    this._requests.delete(seq);
    try {
      request.resolve(request.handle(payload));
    } catch (err) {
      request.reject(/** @type {Error} */ (err));
    }
  }

  /**
   * @param {number} seq
   * @param {Record<string, any>} payload a MsgError
   */
  _failed(seq, payload) {
    const error = new TidingsError(payload.code, payload.message);
    for (const pending of [this._chats, this._publishes, this._requests]) {
      const request = pending.get(seq);
      if (request) {
        pending.delete(seq);
        request.reject(error);
        return;
      }
    }
    this._emit("error", { code: payload.code, message: payload.message, seq });
  }

  // --- hooks of Connection

  /** @param {Error} error */
  _teardown(error) {
    super._teardown(error);
    clearTimeout(this._ackTimer ?? undefined);
    this._ackTimer = null;
    this._ackUpTo = 0;
  }

  /** @param {Error} error */
  _stopped(error) {
    for (const pending of [...this._chats.values(), ...this._publishes.values()]) {
      pending.reject(error);
    }
    this._chats.clear();
    this._publishes.clear();
    if (this._closedByUser) this._channels.clear();
  }
}
