DROP TRIGGER sessions_delete_notify_invalidate ON sessions;
DROP TRIGGER sessions_notify_invalidate ON sessions;
CREATE TRIGGER sessions_notify_invalidate
    AFTER UPDATE OF revoked_at, expires_at, user_id, remember OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION authd_notify_invalidate();
