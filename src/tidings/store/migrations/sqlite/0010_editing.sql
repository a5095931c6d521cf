-- Collaborative editing (seed 002): workspaces and their members, editing sessions
-- (one per browser tab that opened a resource), the editing lock, takeover requests.
-- Times are integer milliseconds since the epoch.

CREATE TABLE workspaces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    added_at     INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX workspace_members_user ON workspace_members (user_id);

-- A session is one client (tab) that opened a resource, editor or not. Sessions
-- whose heartbeat is older than editing_session_ttl are removed by the sweeper.
CREATE TABLE editing_sessions (
    session_id   TEXT    PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    resource_id  INTEGER NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_name    TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
CREATE INDEX editing_sessions_resource ON editing_sessions (workspace_id, resource_id);
CREATE INDEX editing_sessions_heartbeat ON editing_sessions (heartbeat_at);

-- The editing lock. Its primary key makes two editors of one resource impossible;
-- a takeover moves it with one UPDATE of session_id, so there is never zero either.
CREATE TABLE editing_locks (
    workspace_id INTEGER NOT NULL,
    resource_id  INTEGER NOT NULL,
    session_id   TEXT    NOT NULL UNIQUE
                 REFERENCES editing_sessions (session_id) ON DELETE CASCADE,
    acquired_at  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, resource_id)
);

CREATE TABLE takeover_requests (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id         INTEGER NOT NULL,
    resource_id          INTEGER NOT NULL,
    requester_user_id    INTEGER NOT NULL,
    requester_name       TEXT    NOT NULL,
    requester_session_id TEXT    NOT NULL,
    target_user_id       INTEGER NOT NULL,
    target_name          TEXT    NOT NULL,
    target_session_id    TEXT    NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    reason               TEXT,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    responded_at         INTEGER
);
-- One pending request per resource: a second request is refused (409), even
-- when two arrive at once on two nodes.
CREATE UNIQUE INDEX takeover_requests_one_pending ON takeover_requests (workspace_id, resource_id)
    WHERE status = 'pending';
-- GetPendingRequests(target session) and the requester's own requests.
CREATE INDEX takeover_requests_target ON takeover_requests (target_session_id, status);
CREATE INDEX takeover_requests_requester ON takeover_requests (requester_session_id, status);
-- CleanupExpiredRequests scans only what is pending.
CREATE INDEX takeover_requests_expiry ON takeover_requests (expires_at) WHERE status = 'pending';
