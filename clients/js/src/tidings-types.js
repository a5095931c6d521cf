// The shapes the Tidings JavaScript client hands out and takes, as JSDoc types: `tsc`
// checks the sources against them and writes them into the package's .d.ts files.
// Nothing runs here.

/**
 * @typedef {"text" | "voice" | "image"} MessageType
 * @typedef {"sent" | "delivered" | "read"} MessageStatus
 * @typedef {"online" | "away" | "offline"} PresenceStatus
 * @typedef {"disconnected" | "connecting" | "authenticating" | "syncing" | "active" | "closed"} ClientState
 */

/**
 * A decoded envelope: type code, seq and the payload object (snake_case wire names).
 * @typedef {object} Frame
 * @property {number} type
 * @property {number} seq
 * @property {Record<string, any>} payload
 */

/**
 * A chat message of this device's stream.
 * @typedef {object} ChatMessage
 * @property {number} messageId
 * @property {number} from
 * @property {number} to
 * @property {MessageType} type
 * @property {string} content
 * @property {number} createdAt milliseconds since the epoch
 * @property {MessageStatus} status
 */

/**
 * A message as the wire carries it.
 * @typedef {object} WireMessage
 * @property {number} message_id
 * @property {number} from
 * @property {number} to
 * @property {MessageType} type
 * @property {string} content
 * @property {number} created_at
 * @property {MessageStatus} status
 */

/**
 * One publication of a channel. `data` is any JSON value.
 * @typedef {object} Publication
 * @property {string} channel
 * @property {number} offset
 * @property {string} type
 * @property {unknown} data
 * @property {{userId: number | null, deviceId: string | null}} info who published
 * @property {number} createdAt
 */

/**
 * A publication as the wire carries it.
 * @typedef {object} WirePublication
 * @property {string} channel
 * @property {number} offset
 * @property {string} type
 * @property {unknown} data
 * @property {{user_id: number, device_id: string}} [info]
 * @property {number} created_at
 */

/**
 * @typedef {{messageId: number, createdAt: number}} ChatAck
 * @typedef {{channel: string, offset: number, createdAt: number, duplicate: boolean}} PublishAck
 * @typedef {{messageIds: number[], status: "delivered" | "read", by: number}} Receipt
 * @typedef {{userId: number, status: PresenceStatus}} PresenceChange
 * @typedef {{messages: ChatMessage[], hasMore: boolean}} SyncPage
 */

/**
 * A subscription: `offset` is the channel's last offset when it started; `recovered`
 * false when retention dropped part of what was asked for.
 * @typedef {object} Subscribed
 * @property {string} channel
 * @property {number} offset
 * @property {boolean} recovered
 * @property {Publication[]} publications
 */

/**
 * The events of a Client, by name, and the detail each carries.
 * @typedef {object} ClientEvents
 * @property {ChatMessage} message each message of the device's stream once, in id order
 * @property {Receipt} receipt your messages reached delivered / read
 * @property {PresenceChange} presence
 * @property {{state: ClientState}} state
 * @property {{userId: number, deviceId: string, reconnected: boolean}} ready authenticated and up to date
 * @property {{code: number, reason: string, willRetry: boolean, delay: number | null}} disconnected
 * @property {{attempt: number, delay: number, at: number}} reconnecting `at`: Date.now() of the attempt
 * @property {Publication} publication each publication of a subscribed channel once, in offset order
 * @property {{channel: string, offset: number, recovered: boolean, renewal: boolean}} subscribed
 * @property {{channel: string, event: "join" | "leave", userId: number, deviceId: string}} channelpresence
 * @property {{code: string, message: string, seq: number}} error an error frame that answers no request
 * @property {Frame} frame a server frame of a type the client does not handle
 * @property {{expiresAt: number | null}} refreshed the credential was renewed in-band (Refresh)
 */

export {};
