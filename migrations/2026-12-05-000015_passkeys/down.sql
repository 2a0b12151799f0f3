DELETE FROM mail_outbox WHERE kind IN ('passkey_added', 'passkey_removed');
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify', 'reset',
    'password_changed', 'password_reset', 'email_changed', 'mfa_enabled',
    'mfa_disabled', 'recovery_codes_regenerated', 'recovery_code_used', 'mfa_reset'));

DELETE FROM auth_events WHERE event IN ('passkey_added', 'passkey_removed', 'passkey_failure');
ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated',
    'password_reset_requested', 'password_reset', 'reset_link_issued',
    'email_verified', 'recovery_throttled',
    'mfa_enabled', 'mfa_disabled', 'mfa_success', 'mfa_failure',
    'recovery_code_used', 'recovery_codes_regenerated', 'mfa_reset'));
ALTER TABLE auth_events DROP COLUMN reason;

DROP TRIGGER passkeys_refresh_count ON passkeys;
DROP FUNCTION authd_refresh_passkey_count();
ALTER TABLE users DROP COLUMN passkey_count;
DROP TABLE passkey_ceremonies;
DROP TABLE passkeys;
DROP TABLE passkey_handles;
