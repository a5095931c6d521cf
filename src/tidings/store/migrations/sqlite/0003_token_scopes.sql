-- Access tokens of seed 003: scopes and device information.
-- scopes: a JSON array of strings; NULL means "every right of its user" (login tokens).
-- device_info: a JSON object of strings (device name, platform, app version, ...).

ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN device_info TEXT NOT NULL DEFAULT '{}';
-- Nodes poll for tokens revoked since their last look, to close live connections.
CREATE INDEX tokens_revoked_at ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;
