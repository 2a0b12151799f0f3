-- Deactivating an account ends its sessions at that moment, by whatever
-- path it happens (the API, the command line, plain SQL), and re-activating
-- it never brings them back: they are revoked, not hidden.
CREATE FUNCTION revoke_sessions_of_deactivated_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET revoked_at = now()
    WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_deactivation_revokes_sessions
    AFTER UPDATE OF is_active ON users
    FOR EACH ROW
    WHEN (OLD.is_active AND NOT NEW.is_active)
    EXECUTE FUNCTION revoke_sessions_of_deactivated_user();

-- Accounts deactivated before the trigger existed: their sessions end now.
UPDATE sessions SET revoked_at = now()
FROM users
WHERE users.id = sessions.user_id AND NOT users.is_active AND sessions.revoked_at IS NULL;
