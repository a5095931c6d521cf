-- Seed 002's RequestTakeover carries requester_name: the name the requesting client
-- shows for itself. Display only (requester.user_name stays the account's name).
ALTER TABLE takeover_requests ADD COLUMN requester_display_name TEXT;
