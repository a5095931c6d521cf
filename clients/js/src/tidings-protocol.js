// The native /ws protocol of Tidings, without sockets: type and close codes, errors, the
// reconnect policy, the two framings (JSON text, MessagePack binary) and the mapping of
// wire objects (snake_case) to what the API hands out (camelCase). The wire format is
// that of tidings_client.protocol (clients/python), documented in docs/protocol.md.

/** @import { ChatMessage, Frame, Publication, WireMessage, WirePublication } from "./tidings-types.js" */

/** Wire type codes (tidings_client/protocol/codes.py). */
export const MsgType = Object.freeze({
  AUTH: 1, CHAT: 2, ACK: 3, SYNC_REQ: 4, PRESENCE: 5, PING: 6,
  SUBSCRIBE: 10, UNSUBSCRIBE: 11, PUBLISH: 12, RPC: 13, REFRESH: 14,
  AUTH_RSP: 101, CHAT_PUSH: 102, SYNC_RSP: 103, PRESENCE_PUSH: 104, PONG: 105, ERROR: 106,
  CHAT_ACK: 107, RECEIPT_PUSH: 108,
  SUBSCRIBE_RSP: 110, PUBLICATION: 111, PUBLISH_ACK: 112, UNSUBSCRIBE_RSP: 113,
  CHANNEL_PRESENCE_PUSH: 114, RPC_RSP: 115, REFRESH_RSP: 116,
});

/** Close codes a client acts on (docs/protocol.md, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, ABNORMAL: 1006, MESSAGE_TOO_BIG: 1009, INTERNAL_ERROR: 1011,
  AUTH_FAILED: 4401, TOKEN_EXPIRED: 4402, TOKEN_REVOKED: 4403, AUTH_TIMEOUT: 4408, TOO_MANY_CONNECTIONS: 4409,
  IDLE_TIMEOUT: 4410, SLOW_CONSUMER: 4413,
  DISCONNECTED: 4000,  // closed by an operator (server API, console); reconnect per policy
  // Client-side only: our own close after a missing MsgPong. 4100 and not 4000, which the
  // server sends when an operator disconnects a client.
  PING_TIMEOUT: 4100,
});

/** An error the server sent (its `code`, e.g. "WS_USER_NOT_FOUND"), or a client failure. */
export class TidingsError extends Error {
  /**
   * @param {string} code machine-readable, e.g. "WS_USER_NOT_FOUND" or "CONNECTION_LOST"
   * @param {string} message in words
   */
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "TidingsError";
    this.code = code;
    this.reason = message;
  }
}

/** The token was refused (WS_AUTH_FAILED / close 4401): no retry with the same token helps. */
export class AuthError extends TidingsError {
  /**
   * @param {string} code
   * @param {string} message
   */
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
  /**
   * @param {{initialInterval?: number, maxInterval?: number, backoffFactor?: number,
   *          maxAttempts?: number, jitter?: number}} [options] times in milliseconds
   */
  constructor({ initialInterval = 1000, maxInterval = 30000, backoffFactor = 1.5,
                maxAttempts = Infinity, jitter = 0 } = {}) {
    if (!(initialInterval >= 0 && maxInterval >= initialInterval)) {
      throw new RangeError("need 0 <= initialInterval <= maxInterval");
    }
    if (!(backoffFactor >= 1)) throw new RangeError("backoffFactor must be >= 1");
    if (!(maxAttempts >= 0)) throw new RangeError("maxAttempts must be >= 0");
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("jitter must be in [0, 1]");
    /** @readonly */ this.initialInterval = initialInterval;
    /** @readonly */ this.maxInterval = maxInterval;
    /** @readonly */ this.backoffFactor = backoffFactor;
    /** @readonly */ this.maxAttempts = maxAttempts;
    /** @readonly */ this.jitter = jitter;
    Object.freeze(this);
  }

  /**
   * Milliseconds to wait before attempt `attempt` (1-based), or null when out of attempts.
   * @param {number} attempt
   * @param {() => number} [random] a source of numbers in [0, 1)
   * @returns {number | null}
   */
  delay(attempt, random = Math.random) {
    if (attempt > this.maxAttempts) return null;
    const base = Math.min(this.initialInterval * this.backoffFactor ** (attempt - 1),
                          this.maxInterval);
    if (!this.jitter) return base;
    return Math.min(base * (1 + this.jitter * (2 * random() - 1)), this.maxInterval);
  }
}

/**
 * How envelopes become WebSocket messages and back.
 * @typedef {object} Codec
 * @property {boolean} binary true: binary frames
 * @property {(type: number, seq: number, payload?: object) => string | Uint8Array} encode
 * @property {(data: unknown) => Frame} decode throws on a malformed frame
 */

/**
 * The part of @msgpack/msgpack the client uses.
 * @typedef {object} MsgpackModule
 * @property {(value: unknown) => Uint8Array} encode
 * @property {(data: ArrayLike<number> | ArrayBuffer) => unknown} decode
 */

/**
 * Text frames: the envelope as one JSON object, payload inline.
 * @implements {Codec}
 */
export class JsonCodec {
  get binary() { return false; }

  /**
   * @param {number} type
   * @param {number} seq
   * @param {object} [payload]
   * @returns {string}
   */
  encode(type, seq, payload) {
    return JSON.stringify(payload === undefined ? { type, seq } : { type, seq, payload });
  }

  /**
   * @param {unknown} data
   * @returns {Frame}
   */
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
 * @implements {Codec}
 */
export class MsgpackCodec {
  /** @param {MsgpackModule} msgpack */
  constructor(msgpack) {
    if (!msgpack || typeof msgpack.encode !== "function" || typeof msgpack.decode !== "function") {
      throw new TypeError("MsgpackCodec needs @msgpack/msgpack (an object with encode and decode)");
    }
    this.msgpack = msgpack;
  }

  get binary() { return true; }

  /**
   * @param {number} type
   * @param {number} seq
   * @param {object} [payload]
   * @returns {Uint8Array}
   */
  encode(type, seq, payload) {
    return this.msgpack.encode({ type, seq, payload: this.msgpack.encode(payload ?? {}) });
  }

  /**
   * @param {unknown} data
   * @returns {Frame}
   */
  decode(data) {
    if (typeof data === "string") throw new TypeError("expected a binary frame");
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(/** @type {ArrayBuffer} */ (data));
    const frame = /** @type {{type: number, seq?: number, payload?: Uint8Array}} */ (
      this.msgpack.decode(bytes));
    const raw = frame.payload;
    const payload = raw && raw.byteLength ? /** @type {Record<string, any>} */ (
      this.msgpack.decode(raw)) : {};
    return { type: frame.type, seq: Number(frame.seq ?? 0), payload };
  }
}

/**
 * MessagePack when @msgpack/msgpack's browser build is loaded (global `MessagePack`), else JSON.
 * @returns {Codec}
 */
export function defaultCodec() {
  const global = /** @type {{MessagePack?: MsgpackModule}} */ (globalThis).MessagePack;
  return global && typeof global.encode === "function" ? new MsgpackCodec(global) : new JsonCodec();
}

/**
 * A wire publication as the JavaScript API presents it (camelCase).
 * @param {WirePublication} p
 * @returns {Publication}
 */
export function fromWirePublication(p) {
  return { channel: p.channel, offset: p.offset, type: p.type, data: p.data,
           info: { userId: p.info?.user_id ?? null, deviceId: p.info?.device_id ?? null },
           createdAt: p.created_at };
}

/**
 * A wire message object as the JavaScript API presents it (camelCase).
 * @param {WireMessage} m
 * @returns {ChatMessage}
 */
export function fromWireMessage(m) {
  return { messageId: m.message_id, from: m.from, to: m.to, type: m.type, content: m.content,
           createdAt: m.created_at, status: m.status };
}
