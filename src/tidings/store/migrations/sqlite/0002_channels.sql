-- Channels of the broker (seed 003): one ordered log per channel, with offsets.
-- "position" is the wire's offset (OFFSET is an SQL keyword).

CREATE TABLE channels (
    name       TEXT    NOT NULL PRIMARY KEY,
    top_offset INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE publications (
    channel          TEXT    NOT NULL,
    position         INTEGER NOT NULL,
    type             TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    publisher_id     INTEGER NOT NULL,
    publisher_device TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (channel, position)
) WITHOUT ROWID;

-- Kept apart from publications so that a key outlives its trimmed publication
-- for the whole idempotency window.
CREATE TABLE publish_keys (
    channel         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (channel, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX publish_keys_age ON publish_keys (created_at);

-- Counted in the append transaction: statistics survive retention.
CREATE TABLE publication_counts (
    day   TEXT    NOT NULL,
    type  TEXT    NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, type)
) WITHOUT ROWID;
