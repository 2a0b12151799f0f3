-- Deleting a session that had already ended tells no instance anything:
-- its revocation notified when it happened, and an expired session is
-- refused from memory by its own expiry. Without this, the purge of a big
-- backlog of ended sessions sent one notification per row, and each
-- invalidated a user slot in every instance's session cache.
DROP TRIGGER sessions_notify_invalidate ON sessions;
CREATE TRIGGER sessions_notify_invalidate
    AFTER UPDATE OF revoked_at, expires_at, user_id, remember ON sessions
    FOR EACH ROW EXECUTE FUNCTION authd_notify_invalidate();
CREATE TRIGGER sessions_delete_notify_invalidate
    AFTER DELETE ON sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION authd_notify_invalidate();
