-- Admin actions (store/admin.py): who did what, when, on what. Append-only.
CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor_id BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,
    target   TEXT   NOT NULL,
    details  TEXT   NOT NULL,
    remote   TEXT   NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
