-- Channels of the broker (seed 003): one ordered log per channel, with offsets.
-- "position" is the wire's offset (OFFSET is an SQL keyword).

CREATE TABLE channels (
    name       TEXT   NOT NULL PRIMARY KEY,
    top_offset BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE publications (
    channel          TEXT   NOT NULL,
    position         BIGINT NOT NULL,
    type             TEXT   NOT NULL,
    data             TEXT   NOT NULL,
    publisher_id     BIGINT NOT NULL,
    publisher_device TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (channel, position)
);

-- Kept apart from publications so that a key outlives its trimmed publication
-- for the whole idempotency window.
CREATE TABLE publish_keys (
    channel         TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL,
    position        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (channel, idempotency_key)
);
CREATE INDEX publish_keys_age ON publish_keys (created_at);

-- Counted in the append transaction: statistics survive retention.
CREATE TABLE publication_counts (
    day   TEXT   NOT NULL,
    type  TEXT   NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (day, type)
);
