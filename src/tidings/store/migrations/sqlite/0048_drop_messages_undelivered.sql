-- One index fewer to write for every message stored and every delivery marked (durable
-- chat: the store thread's time per chat, docs/benchmarks.md). store_acks marks only
-- the ids above the highest cursor of the user's devices, through messages_recipient:
-- everything at or below that cursor was marked when it was reached. PostgreSQL keeps
-- the index: its ids come from a sequence, and a lower id may commit after a higher one.
DROP INDEX IF EXISTS messages_undelivered;
