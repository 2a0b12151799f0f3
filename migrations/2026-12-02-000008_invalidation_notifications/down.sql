DROP TRIGGER sessions_truncate_notify_invalidate ON sessions;
DROP TRIGGER sessions_notify_invalidate ON sessions;
DROP TRIGGER users_truncate_notify_invalidate ON users;
DROP TRIGGER users_notify_invalidate ON users;
DROP FUNCTION authd_notify_invalidate();
