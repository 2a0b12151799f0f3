ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
DELETE FROM auth_events WHERE event IN ('mfa_enabled', 'mfa_disabled', 'mfa_success',
    'mfa_failure', 'recovery_code_used', 'recovery_codes_regenerated', 'mfa_reset');
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated',
    'password_reset_requested', 'password_reset', 'reset_link_issued',
    'email_verified', 'recovery_throttled'));
ALTER TABLE sessions DROP COLUMN amr;
DROP TABLE mfa_challenges;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
DROP FUNCTION authd_refresh_mfa_summary();
DROP TRIGGER users_void_mfa_challenges ON users;
DROP FUNCTION authd_void_mfa_challenges();
ALTER TABLE users DROP COLUMN totp_enabled, DROP COLUMN recovery_codes_left;
