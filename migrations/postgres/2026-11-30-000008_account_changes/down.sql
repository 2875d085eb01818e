DROP INDEX sessions_revoked_at;
DROP TRIGGER users_changed ON users;
DROP TRIGGER sessions_changed ON sessions;
DROP FUNCTION notify_user_changed();
DROP FUNCTION notify_session_changed();
