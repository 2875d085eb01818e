DROP INDEX sessions_revoked_at;
DROP TRIGGER users_deleted;
DROP TRIGGER users_updated;
DROP TRIGGER sessions_deleted;
DROP TRIGGER sessions_revoked;
DROP TRIGGER account_changes_bounded;
DROP TABLE account_changes;
