"""The statements of the SQLite store's core: users, the message log and cursors.

Plain literals, never formatted with values: every value travels as a bound parameter.
"""

from __future__ import annotations

import functools

USER_BY_ID = """
SELECT id, username, password_hash, created_at FROM users WHERE id = ?"""

USER_BY_NAME = """
SELECT id, username, password_hash, created_at FROM users WHERE username = ?"""

INSERT_USER = """
INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)
RETURNING id, username, password_hash, created_at"""

# OR IGNORE, not ON CONFLICT DO NOTHING: both skip a row whose client_seq was stored
# already, but a statement that may abort half-way (a NOT NULL or CHECK failure) keeps a
# statement journal of every page it changes, and with a batch's hundreds of index
# pages SQLite spilled it to a temporary file: 40 % of the store thread's time (bench:
# durable chat). The store looks such a skipped row up (append_messages). The rest of
# each row is the caller's: only what identifies it comes back.
INSERT_MESSAGES = """
INSERT OR IGNORE INTO messages (sender_id, sender_device, recipient_id, type, content,
                                client_seq, status, created_at)
VALUES {rows}
RETURNING id, sender_id, sender_device, client_seq"""
INSERT_ROW = "(?, ?, ?, ?, ?, ?, 'sent', ?)"
# 7 parameters a row: 128 rows stay under SQLite's oldest variable limit (999).
ROWS_PER_INSERT = 128


@functools.lru_cache(maxsize=ROWS_PER_INSERT)
def insert_messages_sql(rows: int) -> str:
    """The multi-row INSERT for ``rows`` rows (placeholders only)."""
    return INSERT_MESSAGES.format(rows=", ".join([INSERT_ROW] * rows))


MESSAGE_BY_CLIENT_SEQ = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE sender_id = ? AND sender_device = ? AND client_seq = ? AND client_seq > 0"""

MESSAGE_BY_ID = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages WHERE id = ?"""

UPSERT_CONVERSATION = """
INSERT INTO conversations (user_id, peer_id, last_message_id) VALUES (?, ?, ?)
ON CONFLICT (user_id, peer_id)
DO UPDATE SET last_message_id = max(last_message_id, excluded.last_message_id)"""

# Two index range scans merged, rather than an OR that would sort the whole stream.
DEVICE_STREAM = """
SELECT * FROM (
    SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
           created_at
    FROM messages WHERE recipient_id = ?1 AND id > ?3 ORDER BY id LIMIT ?4)
UNION ALL
SELECT * FROM (
    SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
           created_at
    FROM messages
    WHERE sender_id = ?1 AND sender_device <> ?2 AND recipient_id <> ?1 AND id > ?3
    ORDER BY id LIMIT ?4)
ORDER BY id LIMIT ?4"""

HISTORY = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE ((sender_id = ?1 AND recipient_id = ?2) OR (sender_id = ?2 AND recipient_id = ?1))
  AND id < ?3
ORDER BY id DESC LIMIT ?4"""

PEERS = """
SELECT peer_id FROM conversations WHERE user_id = ? ORDER BY last_message_id DESC"""

MARK_DELIVERED = """
UPDATE messages SET status = 'delivered'
WHERE recipient_id = ? AND id <= ? AND status = 'sent'
RETURNING id, sender_id"""

# store_acks: only above the highest cursor of the user's devices (``?2``): each cursor
# was reached by a store_acks that marked everything up to it, and SQLite gives ids in
# commit order (one writer), so no message below it can still be 'sent'. The range walks
# messages_recipient (there is no partial index of undelivered messages to keep up).
MARK_DELIVERED_ABOVE = """
UPDATE messages SET status = 'delivered'
WHERE recipient_id = ?1 AND id > ?2 AND id <= ?3 AND status = 'sent'
RETURNING id, sender_id"""

HIGHEST_CURSORS = """
SELECT user_id, max(last_message_id) FROM device_cursors
WHERE user_id IN ({users}) GROUP BY user_id"""


def highest_cursors_sql(users: int) -> str:
    """``(user_id, highest cursor of its devices)`` of ``users`` user ids (one row each
    that has a cursor), for store_acks: one read for a whole burst of acks
    (placeholders only)."""
    return HIGHEST_CURSORS.format(users=", ".join("?" * users))

MARK_READ = """
UPDATE messages SET status = 'read'
WHERE id = ? AND recipient_id = ? AND status <> 'read'
RETURNING id, sender_id"""

GET_CURSOR = """
SELECT last_message_id FROM device_cursors WHERE user_id = ? AND device_id = ?"""

# Without an answer: store_acks moves a burst of cursors in one executemany.
ADVANCE_CURSORS = """
INSERT INTO device_cursors (user_id, device_id, last_message_id, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (user_id, device_id) DO UPDATE SET
    last_message_id = max(last_message_id, excluded.last_message_id),
    updated_at = excluded.updated_at"""

ADVANCE_CURSOR = ADVANCE_CURSORS + "\nRETURNING last_message_id"
