DELETE FROM auth_events WHERE event IN ('password_reset_requested', 'password_reset',
    'reset_link_issued', 'email_verified', 'recovery_throttled');
ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated'));
DROP TRIGGER users_email_change_voids_tokens ON users;
DROP FUNCTION authd_void_email_tokens();
DROP TABLE mail_outbox;
DROP TABLE email_tokens;
DROP TRIGGER users_email_change_unverifies ON users;
DROP FUNCTION authd_unverify_changed_email();
ALTER TABLE users DROP COLUMN email_verified_at;
