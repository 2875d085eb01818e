-- Back to one secret per user: the oldest confirmed authenticator (or the
-- enrolment in progress) is kept; any others are lost.
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_key_id TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
UPDATE users SET
    totp_secret = (SELECT a.totp_secret FROM authenticators a WHERE a.user_id = users.id
                   ORDER BY a.confirmed_at IS NULL, a.created_at, a.id LIMIT 1),
    totp_key_id = (SELECT a.totp_key_id FROM authenticators a WHERE a.user_id = users.id
                   ORDER BY a.confirmed_at IS NULL, a.created_at, a.id LIMIT 1),
    totp_last_step = (SELECT a.last_step FROM authenticators a WHERE a.user_id = users.id
                      ORDER BY a.confirmed_at IS NULL, a.created_at, a.id LIMIT 1);
DROP TABLE authenticators;
