"""The statements of the PostgreSQL store's core: users, tokens, the message log, cursors.

Plain literals, never formatted: every value travels as a bound parameter.
"""

from __future__ import annotations

USER_BY_ID = """
SELECT id, username, password_hash, created_at FROM users WHERE id = $1"""

USER_BY_NAME = """
SELECT id, username, password_hash, created_at FROM users WHERE username = $1"""

INSERT_USER = """
INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)
RETURNING id, username, password_hash, created_at"""

INSERT_TOKENS = """
INSERT INTO tokens (user_id, token_hash, name, device_id, created_at, expires_at, scopes,
                    device_info)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info"""

TOKENS_BY_HASH = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE token_hash = $1"""

# The append transaction's first statement: its lock (postgres.py, APPEND_LOCK), and a
# plan for each statement after it made for its arguments and the table as it is now.
# asyncpg prepares a statement once per connection, and after five runs PostgreSQL may
# keep a generic plan: one made while messages was young scans the table. The
# client-seq lookup then read all of it on every append (12 ms a batch at 60 000 rows
# against 0.5 ms; 0.5 s after an ANALYZE of the empty table) until autovacuum analyzed
# again: a fifth more of PostgreSQL's CPU in the durable chat bench runs that hit it
# (docs/benchmarks.md, run M). Planning afresh costs 2-5 % of an append; for every
# statement it would not pay (a point read's planning costs more than its execution).
BEGIN_APPEND = """
SELECT pg_advisory_xact_lock($1), set_config('plan_cache_mode', 'force_custom_plan', true)"""

# ORDER BY ordinality makes identity values follow input order. DO NOTHING also
# skips a row that conflicts with one inserted earlier by this same statement.
INSERT_BATCH = """
INSERT INTO messages (sender_id, sender_device, recipient_id, type, content, client_seq,
                      status, created_at)
SELECT s, d, r, t, c, q, 'sent', $7
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
     WITH ORDINALITY AS b(s, d, r, t, c, q, n)
ORDER BY n
ON CONFLICT DO NOTHING
RETURNING id"""
# Only the ids come back: the rest of each row is the caller's (bench: durable chat).

MESSAGES_BY_CLIENT_SEQ = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE client_seq > 0
  AND (sender_id, sender_device, client_seq) IN (
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[]))"""

MESSAGE_BY_ID = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages WHERE id = $1"""

# GROUP BY: one ON CONFLICT DO UPDATE may not touch the same row twice.
UPSERT_CONVERSATIONS = """
INSERT INTO conversations (user_id, peer_id, last_message_id)
SELECT u, p, max(m) FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS c(u, p, m)
GROUP BY u, p ORDER BY u, p
ON CONFLICT (user_id, peer_id) DO UPDATE
SET last_message_id = GREATEST(conversations.last_message_id, EXCLUDED.last_message_id)"""

# Two index range scans merged, rather than an OR that would sort the whole stream.
DEVICE_STREAM = """
SELECT * FROM (
    (SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
            created_at
     FROM messages WHERE recipient_id = $1 AND id > $3 ORDER BY id LIMIT $4)
    UNION ALL
    (SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
            created_at
     FROM messages
     WHERE sender_id = $1 AND sender_device <> $2 AND recipient_id <> $1 AND id > $3
     ORDER BY id LIMIT $4)
) AS stream
ORDER BY id LIMIT $4"""

HISTORY = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE ((sender_id = $1 AND recipient_id = $2) OR (sender_id = $2 AND recipient_id = $1))
  AND id < $3
ORDER BY id DESC LIMIT $4"""

PEERS = """
SELECT peer_id FROM conversations WHERE user_id = $1 ORDER BY last_message_id DESC"""

MARK_DELIVERED = """
UPDATE messages SET status = 'delivered'
WHERE recipient_id = $1 AND id <= $2 AND status = 'sent'
RETURNING id, sender_id"""

MARK_READ = """
UPDATE messages SET status = 'read'
WHERE id = $2 AND recipient_id = $1 AND status <> 'read'
RETURNING id, sender_id"""

GET_CURSOR = """
SELECT last_message_id FROM device_cursors WHERE user_id = $1 AND device_id = $2"""

ADVANCE_CURSOR = """
INSERT INTO device_cursors (user_id, device_id, last_message_id, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id) DO UPDATE SET
    last_message_id = GREATEST(device_cursors.last_message_id, EXCLUDED.last_message_id),
    updated_at = EXCLUDED.updated_at
RETURNING last_message_id"""
