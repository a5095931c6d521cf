-- Admin actions (store/admin.py): who did what, when, on what. Append-only.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor_id INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    details  TEXT    NOT NULL,
    remote   TEXT    NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
