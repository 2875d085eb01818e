-- A feed of the accounts whose sessions or user row changed: what a
-- server's cache of live sessions must forget. Written by triggers, so
-- every writer (another server on the same file, `otpgate admin`, a hand
-- edit) feeds it; read by each server before it trusts its cache. Kept
-- short: the insert trigger drops rows 1,000 behind the newest (a reader
-- that finds its last row gone forgets its whole cache).
CREATE TABLE account_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id TEXT NOT NULL
);

CREATE TRIGGER account_changes_bounded AFTER INSERT ON account_changes
BEGIN
    DELETE FROM account_changes WHERE seq < NEW.seq - 1000;
END;

-- Only sessions that were not revoked already: a revoked one was reported
-- when it was revoked (and pruning deletes thousands of those).
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at, expires_at, user_id ON sessions
WHEN OLD.revoked_at IS NULL
BEGIN
    INSERT INTO account_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
WHEN OLD.revoked_at IS NULL
BEGIN
    INSERT INTO account_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER users_updated AFTER UPDATE ON users
BEGIN
    INSERT INTO account_changes (user_id) VALUES (OLD.id);
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO account_changes (user_id) VALUES (OLD.id);
END;

-- Pruning finds ended sessions by either end (found missing by bench/scale:
-- without it every prune scanned the whole table).
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
