-- Core schema: users, access tokens, the message log, conversations, device cursors.
-- Times are integer milliseconds since the epoch. AUTOINCREMENT so that ids are
-- never reused, even after the highest row is deleted.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL DEFAULT '',
    device_id    TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX tokens_user_id ON tokens (user_id);

-- No foreign keys on sender/recipient: one bad row must not abort a whole
-- group-committed batch; checking that users exist is the caller's job.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id     INTEGER NOT NULL,
    sender_device TEXT    NOT NULL,
    recipient_id  INTEGER NOT NULL,
    type          TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    client_seq    INTEGER NOT NULL DEFAULT 0,
    status        TEXT    NOT NULL DEFAULT 'sent'
                  CHECK (status IN ('sent', 'delivered', 'read')),
    created_at    INTEGER NOT NULL
);
CREATE INDEX messages_recipient ON messages (recipient_id, id);
CREATE INDEX messages_sender ON messages (sender_id, id);
-- Idempotent sends: a client retry with the same seq resolves to the first row.
CREATE UNIQUE INDEX messages_client_seq ON messages (sender_id, sender_device, client_seq)
    WHERE client_seq > 0;
-- Keeps mark_delivered cheap however long the recipient's history grows.
CREATE INDEX messages_undelivered ON messages (recipient_id, id) WHERE status = 'sent';

-- One row per direction, upserted in the same transaction as the append.
CREATE TABLE conversations (
    user_id         INTEGER NOT NULL,
    peer_id         INTEGER NOT NULL,
    last_message_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, peer_id)
) WITHOUT ROWID;

CREATE TABLE device_cursors (
    user_id         INTEGER NOT NULL,
    device_id       TEXT    NOT NULL,
    last_message_id INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
