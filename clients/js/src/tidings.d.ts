// Types of the Tidings JavaScript client (tidings.js). Wire protocol: docs/protocol.md.

export declare const MsgType: Readonly<{
  AUTH: 1; CHAT: 2; ACK: 3; SYNC_REQ: 4; PRESENCE: 5; PING: 6;
  SUBSCRIBE: 10; UNSUBSCRIBE: 11; PUBLISH: 12;
  AUTH_RSP: 101; CHAT_PUSH: 102; SYNC_RSP: 103; PRESENCE_PUSH: 104; PONG: 105; ERROR: 106;
  CHAT_ACK: 107; RECEIPT_PUSH: 108;
  SUBSCRIBE_RSP: 110; PUBLICATION: 111; PUBLISH_ACK: 112; UNSUBSCRIBE_RSP: 113;
  CHANNEL_PRESENCE_PUSH: 114;
}>;

export declare const CloseCode: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; ABNORMAL: 1006; MESSAGE_TOO_BIG: 1009; INTERNAL_ERROR: 1011;
  AUTH_FAILED: 4401; AUTH_TIMEOUT: 4408; TOO_MANY_CONNECTIONS: 4409; IDLE_TIMEOUT: 4410;
  SLOW_CONSUMER: 4413; PING_TIMEOUT: 4000;
}>;

/** An error code sent by the server (e.g. "WS_USER_NOT_FOUND") or "CONNECTION_LOST". */
export declare class TidingsError extends Error {
  constructor(code: string, message: string);
  readonly code: string;
  readonly reason: string;
}
/** The token was refused: get a new one. */
export declare class AuthError extends TidingsError {}
/** The connection was lost, or never opened, before an answer came. */
export declare class ConnectionLostError extends TidingsError {
  constructor(message?: string);
}

export interface ReconnectPolicyOptions {
  /** ms before the first attempt (default 1000) */
  initialInterval?: number;
  /** cap, ms (default 30000) */
  maxInterval?: number;
  /** growth per failed attempt (default 1.5) */
  backoffFactor?: number;
  /** default Infinity; 0 disables reconnection */
  maxAttempts?: number;
  /** 0–1: each wait spread by ±jitter (default 0) */
  jitter?: number;
}

/** Seed 001 §4.3 exponential backoff: 1, 1.5, 2.25 … 30 s, unlimited attempts. */
export declare class ReconnectPolicy {
  constructor(options?: ReconnectPolicyOptions);
  readonly initialInterval: number;
  readonly maxInterval: number;
  readonly backoffFactor: number;
  readonly maxAttempts: number;
  readonly jitter: number;
  /** ms to wait before `attempt` (1-based), or null once out of attempts. */
  delay(attempt: number, random?: () => number): number | null;
}

export interface Frame {
  type: number;
  seq: number;
  payload: Record<string, unknown>;
}

export interface Codec {
  readonly binary: boolean;
  encode(type: number, seq: number, payload: unknown): string | Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): Frame;
}

export declare class JsonCodec implements Codec {
  readonly binary: false;
  encode(type: number, seq: number, payload: unknown): string;
  decode(data: string | ArrayBuffer | Uint8Array): Frame;
}

/** The subset of @msgpack/msgpack the codec uses. */
export interface MessagePackModule {
  encode(value: unknown): Uint8Array;
  decode(data: ArrayLike<number> | BufferSource): unknown;
}

export declare class MsgpackCodec implements Codec {
  constructor(msgpack: MessagePackModule);
  readonly binary: true;
  encode(type: number, seq: number, payload: unknown): Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): Frame;
}

/** MsgpackCodec when the global `MessagePack` (@msgpack/msgpack's browser build) exists, else JsonCodec. */
export declare function defaultCodec(): Codec;

export type MessageType = "text" | "voice" | "image";
export type MessageStatus = "sent" | "delivered" | "read";
export type PresenceStatus = "online" | "away" | "offline";
export type ClientState =
  "disconnected" | "connecting" | "authenticating" | "syncing" | "active" | "closed";

/** A chat message of this device's stream. */
export interface ChatMessage {
  messageId: number;
  from: number;
  to: number;
  type: MessageType;
  content: string;
  createdAt: number;
  status: MessageStatus;
}

export declare function fromWireMessage(wire: Record<string, unknown>): ChatMessage;

export interface ChatAck { messageId: number; createdAt: number }

/** One publication of a channel. `data` is any JSON value. */
export interface Publication {
  channel: string;
  offset: number;
  type: string;
  data: unknown;
  info: { userId: number | null; deviceId: string | null };
  createdAt: number;
}
export declare function fromWirePublication(wire: Record<string, unknown>): Publication;

export interface Subscribed {
  channel: string;
  /** the channel's last offset when the subscription started */
  offset: number;
  /** false when retention dropped part of what was asked for */
  recovered: boolean;
  publications: Publication[];
}
export interface PublishAck { channel: string; offset: number; createdAt: number; duplicate: boolean }
export interface Receipt { messageIds: number[]; status: "delivered" | "read"; by: number }
export interface PresenceChange { userId: number; status: PresenceStatus }
export interface SyncPage { messages: ChatMessage[]; hasMore: boolean }

export interface ClientEvents {
  message: ChatMessage;
  receipt: Receipt;
  presence: PresenceChange;
  state: { state: ClientState };
  /** Authenticated and up to date; `reconnected` after a drop. */
  ready: { userId: number; deviceId: string; reconnected: boolean };
  /** `delay` is the ms until the next attempt, null when no retry follows. */
  disconnected: { code: number; reason: string; willRetry: boolean; delay: number | null };
  /** `at` is the Date.now() of the next attempt. */
  reconnecting: { attempt: number; delay: number; at: number };
  /** Each publication of a subscribed channel once, in offset order (replay, then live). */
  publication: Publication;
  /** A subscription started or (renewal: true) was renewed after a reconnect. */
  subscribed: { channel: string; offset: number; recovered: boolean; renewal: boolean };
  /** Join/leave in a channel whose namespace keeps presence. */
  channelpresence: { channel: string; event: "join" | "leave"; userId: number; deviceId: string };
  /** An error frame that answers no pending request. */
  error: { code: string; message: string; seq: number };
  /** A server frame of a type this client does not handle itself. */
  frame: Frame;
}

export interface ClientOptions {
  /** Stable per installation: it names the server-side cursor. */
  deviceId?: string | null;
  codec?: Codec | null;
  /** @msgpack/msgpack: use binary MessagePack frames. */
  msgpack?: MessagePackModule | null;
  /** Acknowledge messages as delivered once emitted (default true). */
  autoAck?: boolean;
  /** ms between MsgPing (default 30000) */
  pingInterval?: number;
  /** ms to wait for MsgPong before the connection counts as dead (default 10000) */
  pingTimeout?: number;
  /** the backoff policy; false disables reconnection */
  reconnect?: ReconnectPolicy | false;
  /** ms for opening and authenticating (default 10000) */
  connectTimeout?: number;
  /** a WebSocket class (default: the global one) */
  WebSocket?: typeof WebSocket;
}

/** One device of one user on the native /ws protocol. */
export declare class Client extends EventTarget {
  constructor(url: string, token: string, options?: ClientOptions);
  readonly url: string;
  readonly codec: Codec;
  readonly policy: ReconnectPolicy;
  readonly state: ClientState;
  readonly connected: boolean;
  readonly userId: number | null;
  readonly deviceId: string | null;
  /** Highest message id delivered to the application. */
  readonly lastMessageId: number;
  readonly presenceStatus: PresenceStatus | null;
  /** Date.now() of the next reconnection attempt while waiting for it, else null. */
  readonly nextAttemptAt: number | null;

  on<K extends keyof ClientEvents>(name: K, fn: (detail: ClientEvents[K]) => void): () => void;
  connect(options?: { retry?: boolean }): Promise<this>;
  close(): void;
  reconnectNow(): void;
  sendChat(to: number, content: string, type?: MessageType): Promise<ChatAck>;
  ack(messageId: number, status?: "delivered" | "read"): boolean;
  sync(lastMessageId?: number): Promise<SyncPage>;
  setPresence(status: PresenceStatus): void;
  /** Subscribe (replaying after `since`); renewed from the last offset after reconnects. */
  subscribe(channel: string, options?: { since?: number }): Promise<Subscribed>;
  unsubscribe(channel: string): Promise<void>;
  /** Publish once stored; resent after reconnects under the same idempotency key. */
  publish(channel: string, data: unknown,
          options?: { type?: string; idempotencyKey?: string }): Promise<PublishAck>;
  ping(): Promise<number>;
}
