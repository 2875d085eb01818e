-- Tells every server whose sessions or user row changed (NOTIFY, sent at
-- commit): what its cache of live sessions must forget. Triggers, so every
-- writer (another instance, `otpgate admin`, a hand edit) notifies.
CREATE FUNCTION notify_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('otpgate_account_changes', OLD.user_id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION notify_user_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('otpgate_account_changes', OLD.id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Only sessions that were not revoked already: a revoked one was reported
-- when it was revoked (and pruning deletes thousands of those).
CREATE TRIGGER sessions_changed AFTER UPDATE OF revoked_at, expires_at, user_id OR DELETE ON sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL) EXECUTE FUNCTION notify_session_changed();

CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_user_changed();

-- Pruning finds ended sessions by either end (found missing by bench/scale:
-- without it every prune scanned the whole table).
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
