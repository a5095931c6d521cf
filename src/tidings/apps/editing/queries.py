"""The SQL of the editing service, written once for both backends (``$n`` placeholders;
``= ANY($n)`` takes a list, rewritten for SQLite by the service). Plain literals: every
value travels as a bound parameter."""

USER_NAME = "SELECT username FROM users WHERE id = $1"

INSERT_SESSION = """
INSERT INTO editing_sessions (session_id, workspace_id, resource_id, user_id, user_name,
                              started_at, heartbeat_at)
VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *"""

SESSION = "SELECT * FROM editing_sessions WHERE session_id = $1"

SESSIONS_OF_RESOURCE = """
SELECT session_id FROM editing_sessions WHERE workspace_id = $1 AND resource_id = $2"""

TOUCH = """
UPDATE editing_sessions SET heartbeat_at = $2 WHERE session_id = $1 RETURNING session_id"""

TOUCH_MANY = """
UPDATE editing_sessions SET heartbeat_at = $1 WHERE session_id = ANY($2)"""

DELETE_SESSION = "DELETE FROM editing_sessions WHERE session_id = $1"

STALE_SESSIONS = """
SELECT * FROM editing_sessions WHERE heartbeat_at < $1"""

TAKE_FREE_LOCK = """
INSERT INTO editing_locks (workspace_id, resource_id, session_id, acquired_at)
VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, resource_id) DO NOTHING
RETURNING session_id"""

EDITOR = """
SELECT l.session_id, s.user_id, s.user_name, l.acquired_at AS since
FROM editing_locks l JOIN editing_sessions s ON s.session_id = l.session_id
WHERE l.workspace_id = $1 AND l.resource_id = $2"""

RELEASE_LOCK = """
DELETE FROM editing_locks WHERE session_id = ANY($1)
RETURNING workspace_id, resource_id, session_id"""

MOVE_LOCK = """
UPDATE editing_locks SET session_id = $4, acquired_at = $5
WHERE workspace_id = $1 AND resource_id = $2 AND session_id = $3 RETURNING session_id"""

INSERT_REQUEST = """
INSERT INTO takeover_requests (workspace_id, resource_id, requester_user_id, requester_name,
    requester_session_id, target_user_id, target_name, target_session_id, status,
    created_at, expires_at, requester_display_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11)
ON CONFLICT (workspace_id, resource_id) WHERE status = 'pending' DO NOTHING
RETURNING *"""

REQUEST = "SELECT * FROM takeover_requests WHERE id = $1"

PENDING_OF_RESOURCE = """
SELECT * FROM takeover_requests
WHERE workspace_id = $1 AND resource_id = $2 AND status = 'pending'"""

PENDING_FOR_TARGET = """
SELECT * FROM takeover_requests
WHERE target_session_id = $1 AND status = 'pending' AND expires_at > $2 ORDER BY id"""

PENDING_OF_REQUESTER = """
SELECT * FROM takeover_requests
WHERE requester_session_id = $1 AND status = 'pending' AND expires_at > $2 ORDER BY id"""

ANSWER = """
UPDATE takeover_requests SET status = $2, responded_at = $3
WHERE id = $1 AND status = 'pending' AND expires_at > $3 RETURNING *"""

# The conditional UPDATEs that make expiry happen once: only the statement that
# flips a row from pending returns it, so only its caller announces it.
EXPIRE_DUE = """
UPDATE takeover_requests SET status = 'expired', reason = 'timeout', responded_at = $1
WHERE status = 'pending' AND expires_at <= $1 RETURNING *"""

EXPIRE_DUE_ON_RESOURCE = """
UPDATE takeover_requests SET status = 'expired', reason = 'timeout', responded_at = $1
WHERE status = 'pending' AND expires_at <= $1 AND workspace_id = $2 AND resource_id = $3
RETURNING *"""

EXPIRE_OF_SESSIONS = """
UPDATE takeover_requests SET status = 'expired', responded_at = $1,
    reason = CASE WHEN target_session_id = ANY($2) THEN 'editor_left' ELSE 'requester_left' END
WHERE status = 'pending' AND (target_session_id = ANY($2) OR requester_session_id = ANY($2))
RETURNING *"""
