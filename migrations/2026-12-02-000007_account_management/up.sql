-- A session's public handle: what GET /api/sessions shows and
-- DELETE /api/sessions/{id} takes. The row's id is the credential itself
-- (inside the cookie and the token) and is never shown.
ALTER TABLE sessions ADD COLUMN public_id TEXT;
UPDATE sessions SET public_id = replace(gen_random_uuid()::text, '-', '');
ALTER TABLE sessions ALTER COLUMN public_id SET NOT NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_public_id_key UNIQUE (public_id);

-- The user's sessions, newest first; and what the purge looks for.
CREATE INDEX sessions_user_created_idx ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
DROP INDEX sessions_user_id_idx;

ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated'));
