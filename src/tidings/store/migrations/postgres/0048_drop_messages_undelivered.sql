-- One index fewer to write for every message stored and every delivery marked, as on
-- SQLite (durable chat: the database's CPU per chat, docs/benchmarks.md). store_acks
-- marks only the ids above the highest cursor of the user's devices, through
-- messages_recipient: everything at or below that cursor was marked when it was
-- reached. That holds here too: appends hold APPEND_LOCK until they commit, so ids
-- commit in order (store/postgres.py). Until this version a cursor and its marks were
-- two statements, so a crash between them could leave messages below a cursor 'sent':
-- they are marked now, through the index, before it goes.
UPDATE messages AS m SET status = 'delivered'
FROM (SELECT user_id, max(last_message_id) AS top FROM device_cursors GROUP BY user_id) AS c
WHERE m.status = 'sent' AND m.recipient_id = c.user_id AND m.id <= c.top;
DROP INDEX IF EXISTS messages_undelivered;
