-- Passkeys (WebAuthn): a public key per credential, for a login without a
-- password or as the second factor of one; and the short-lived state of
-- each ceremony, kept here (never with the client) so that a challenge
-- works once, on whichever instance it is answered.

-- The user handle an authenticator stores with a passkey: random, so that
-- it says nothing about the account (WebAuthn §14.6.1), made at the
-- account's first passkey and kept while the account lives.
CREATE TABLE passkey_handles (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle  UUID   NOT NULL UNIQUE
);

-- `credential` is webauthn-rs's `Passkey` (public key, counter, backup
-- flags) as JSON; `sign_count` is its counter, apart, so that two uses at
-- once cannot both move it forward (a compare-and-set, as TOTP steps are).
CREATE TABLE passkeys (
    id            TEXT        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    user_id       BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA       NOT NULL UNIQUE CHECK (octet_length(credential_id) BETWEEN 16 AND 1023),
    name          TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    credential    JSONB       NOT NULL,
    sign_count    BIGINT      NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);

-- A ceremony started and not finished, by the SHA-256 of the id the client
-- holds: `register` for a logged-in account (and the session that started
-- it), `login` for anyone (a passkey names its account), `mfa` for the
-- second step of one password login (the digest of its mfa_token).
CREATE TABLE passkey_ceremonies (
    id_hash        BYTEA       PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    purpose        TEXT        NOT NULL CHECK (purpose IN ('register', 'login', 'mfa')),
    user_id        BIGINT      REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT,
    mfa_token_hash BYTEA,
    state          JSONB       NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    CHECK ((purpose = 'login') = (user_id IS NULL)),
    CHECK ((purpose = 'register') = (session_id IS NOT NULL)),
    CHECK ((purpose = 'mfa') = (mfa_token_hash IS NOT NULL))
);
CREATE INDEX passkey_ceremonies_expires_at_idx ON passkey_ceremonies (expires_at);
CREATE INDEX passkey_ceremonies_user_id_idx ON passkey_ceremonies (user_id);

-- How many passkeys the account has, on the user row (as `totp_enabled`
-- is): `GET /api/me` reads it from the session cache, and a change
-- notifies every instance.
ALTER TABLE users ADD COLUMN passkey_count INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION authd_refresh_passkey_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    account BIGINT := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
BEGIN
    UPDATE users SET passkey_count = (SELECT count(*) FROM passkeys WHERE user_id = account)
    WHERE id = account;
    RETURN NULL;
END
$$;
CREATE TRIGGER passkeys_refresh_count
    AFTER INSERT OR DELETE ON passkeys
    FOR EACH ROW EXECUTE FUNCTION authd_refresh_passkey_count();

-- Why a passkey failed, beside the event (`wrong_origin`, `replayed`, ...).
ALTER TABLE auth_events ADD COLUMN reason TEXT;

ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated',
    'password_reset_requested', 'password_reset', 'reset_link_issued',
    'email_verified', 'recovery_throttled',
    'mfa_enabled', 'mfa_disabled', 'mfa_success', 'mfa_failure',
    'recovery_code_used', 'recovery_codes_regenerated', 'mfa_reset',
    'passkey_added', 'passkey_removed', 'passkey_failure'));

ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify', 'reset',
    'password_changed', 'password_reset', 'email_changed', 'mfa_enabled',
    'mfa_disabled', 'recovery_codes_regenerated', 'recovery_code_used', 'mfa_reset',
    'passkey_added', 'passkey_removed'));
