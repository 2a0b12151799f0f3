DROP TRIGGER users_deactivation_revokes_sessions ON users;
DROP FUNCTION revoke_sessions_of_deactivated_user();
