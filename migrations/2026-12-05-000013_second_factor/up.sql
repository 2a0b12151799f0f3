-- A second factor: a TOTP secret per account (pending until its first code
-- is confirmed), single-use recovery codes, and the short-lived challenges
-- that sit between a login's password and its second step.

-- The secret is sealed (XChaCha20-Poly1305, key derived from SECRET_KEY):
-- a copy of the table is no copy of anyone's authenticator. `last_step` is
-- the newest 30-second step a code was accepted for: a code is good once
-- (RFC 6238 §5.2), whichever instance sees it, because moving it forward
-- is a compare-and-set.
CREATE TABLE totp_factors (
    user_id      BIGINT      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       BYTEA       NOT NULL CHECK (octet_length(secret) > 24),
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT      NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Codes of 120 random bits: a plain SHA-256 is enough (nobody can list the
-- guesses), and a lookup by digest is the check.
CREATE TABLE recovery_codes (
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest     BYTEA       NOT NULL CHECK (octet_length(digest) = 32),
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, digest)
);

-- A password accepted, a second step owed: `login` for an account with a
-- factor, `enroll` for one that must get one first (MFA_REQUIRED). Stored
-- by the SHA-256 of the token the client holds; single use; void after
-- five wrong codes, and whenever the account's password or state changes.
CREATE TABLE mfa_challenges (
    token_hash BYTEA       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('login', 'enroll')),
    remember   BOOLEAN     NOT NULL,
    next       TEXT        NOT NULL,
    ip         INET,
    failures   INTEGER     NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mfa_challenges_user_id_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);

CREATE FUNCTION authd_void_mfa_challenges() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mfa_challenges WHERE user_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_void_mfa_challenges
    AFTER UPDATE OF password_hash, is_active ON users
    FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash
          OR OLD.is_active IS DISTINCT FROM NEW.is_active)
    EXECUTE FUNCTION authd_void_mfa_challenges();

-- What `GET /api/me` shows of the factors, kept on the user row (by
-- triggers, so that SQL changes count too): the hot path reads the user it
-- already has, and the change notifies every instance's session cache.
ALTER TABLE users
    ADD COLUMN totp_enabled BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN recovery_codes_left INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION authd_refresh_mfa_summary() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    account BIGINT := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
BEGIN
    UPDATE users SET
        totp_enabled = EXISTS (
            SELECT 1 FROM totp_factors
            WHERE user_id = account AND confirmed_at IS NOT NULL),
        recovery_codes_left = (
            SELECT count(*) FROM recovery_codes
            WHERE user_id = account AND used_at IS NULL)
    WHERE id = account;
    RETURN NULL;
END
$$;
CREATE TRIGGER totp_factors_refresh_mfa_summary
    AFTER INSERT OR UPDATE OF confirmed_at OR DELETE ON totp_factors
    FOR EACH ROW EXECUTE FUNCTION authd_refresh_mfa_summary();
CREATE TRIGGER recovery_codes_refresh_mfa_summary
    AFTER INSERT OR UPDATE OF used_at OR DELETE ON recovery_codes
    FOR EACH ROW EXECUTE FUNCTION authd_refresh_mfa_summary();

-- How each session was made (RFC 8176 names): `pwd`, `otp`, `recovery`.
ALTER TABLE sessions ADD COLUMN amr TEXT[] NOT NULL DEFAULT '{pwd}'
    CHECK (array_position(amr, NULL) IS NULL);

ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated',
    'password_reset_requested', 'password_reset', 'reset_link_issued',
    'email_verified', 'recovery_throttled',
    'mfa_enabled', 'mfa_disabled', 'mfa_success', 'mfa_failure',
    'recovery_code_used', 'recovery_codes_regenerated', 'mfa_reset'));
