DROP INDEX sessions_expires_at;
DROP TABLE refresh_tokens;
DROP TABLE recovery_codes;
