-- Webhooks waiting to be sent, sent, or dead (store/outbox.py).
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER
);
-- One index, and a partial one: each index is written by every chat's commit when
-- message.stored is recorded. Claims walk the pending rows in id order; listing by
-- state (operators) may scan.
CREATE INDEX webhook_outbox_pending ON webhook_outbox (id) WHERE state = 'pending';
