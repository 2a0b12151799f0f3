-- Account recovery by e-mail: verified addresses, single-use tokens, and
-- the outbox that mails are queued in.

ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;

-- A changed address is unverified, by whatever path it changes.
CREATE FUNCTION authd_unverify_changed_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.email_verified_at := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_email_change_unverifies
    BEFORE UPDATE OF email ON users
    FOR EACH ROW
    WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION authd_unverify_changed_email();

-- Tokens mailed in links. Only a SHA-256 of each is kept: the table alone
-- lets nobody verify an address or reset a password. A token is deleted
-- when used, when a newer one of its purpose is issued, and when the
-- account's address or password changes.
CREATE TABLE email_tokens (
    token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    -- The address the link went to: a verification proves this one only.
    email TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX email_tokens_user_purpose_idx ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_at_idx ON email_tokens (expires_at);

-- Mails to send, queued in the transaction of the change that needs them
-- and delivered by a worker in any instance, under a row lock. A row is what to send, not the
-- mail itself: the token is made when the mail goes out, so no usable
-- token is ever stored. `address` is where a verification goes, or the
-- address a password reset was asked for (it may belong to nobody).
CREATE TABLE mail_outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('verify', 'reset')),
    -- No foreign key, on purpose: deleting an account must not wait for a
    -- worker sending one of its mails (it holds the row's lock); a mail for
    -- an account that is gone is skipped when its turn comes.
    user_id BIGINT,
    address TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A mail not delivered by then is dropped: its link would be stale.
    expires_at TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- When a worker may next take it: after a failure, a backoff later.
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    CHECK (kind = 'reset' OR user_id IS NOT NULL)
);
CREATE INDEX mail_outbox_next_attempt_at_idx ON mail_outbox (next_attempt_at);

-- A new address voids every token mailed before, and any verification
-- still queued for the old address, by whatever path it changes. (A new
-- password voids tokens too, but in `db::users::set_password_hash`: a
-- trigger cannot tell a new password from the same one re-hashed at a
-- higher cost, which must void nothing.)
CREATE FUNCTION authd_void_email_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM email_tokens WHERE user_id = NEW.id;
    -- A verification being sent right now is skipped, not waited for: the
    -- change must not wait for a mail server (and the mail's link is void).
    DELETE FROM mail_outbox WHERE id IN (
        SELECT id FROM mail_outbox WHERE kind = 'verify' AND user_id = NEW.id
        FOR UPDATE SKIP LOCKED);
    RETURN NEW;
END
$$;

CREATE TRIGGER users_email_change_voids_tokens
    AFTER UPDATE OF email ON users
    FOR EACH ROW
    WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION authd_void_email_tokens();

ALTER TABLE auth_events DROP CONSTRAINT auth_events_event_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_event_check CHECK (event IN (
    'register', 'register_throttled', 'login_success', 'login_failure',
    'login_throttled', 'logout', 'session_revoked', 'password_changed',
    'account_updated', 'account_deleted', 'account_deactivated', 'account_activated',
    'password_reset_requested', 'password_reset', 'reset_link_issued',
    'email_verified', 'recovery_throttled'));
