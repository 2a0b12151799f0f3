ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked'));
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
DROP INDEX sessions_revoked_at_idx;
DROP INDEX sessions_expires_at_idx;
DROP INDEX sessions_user_created_idx;
ALTER TABLE sessions DROP COLUMN public_id;
