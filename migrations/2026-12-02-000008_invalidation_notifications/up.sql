-- Every instance keeps validated sessions in memory. Whatever ends a
-- session or changes an account (the API, the command line, plain SQL)
-- tells them at commit, on channel `authd_invalidate`: `u:<user id>` for
-- one user's sessions, `*` for all. Only the columns that can end a session
-- notify: last_seen_at changes all the time and ends nothing.
CREATE FUNCTION authd_notify_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    user_id BIGINT;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('authd_invalidate', '*');
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'users' THEN
        user_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        user_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
        IF TG_OP = 'UPDATE' AND OLD.user_id <> NEW.user_id THEN
            PERFORM pg_notify('authd_invalidate', 'u:' || OLD.user_id);
        END IF;
    END IF;
    PERFORM pg_notify('authd_invalidate', 'u:' || user_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_invalidate
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION authd_notify_invalidate();
CREATE TRIGGER users_truncate_notify_invalidate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION authd_notify_invalidate();
CREATE TRIGGER sessions_notify_invalidate
    AFTER UPDATE OF revoked_at, expires_at, user_id, remember OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION authd_notify_invalidate();
CREATE TRIGGER sessions_truncate_notify_invalidate
    AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION authd_notify_invalidate();
