-- Known devices: a device token (only its SHA-256 is kept) lets its owner's
-- logins bypass the per-username cap an attacker can spend.
CREATE TABLE device_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX device_tokens_user_id ON device_tokens (user_id);
CREATE INDEX device_tokens_expires_at ON device_tokens (expires_at);

-- Whether the login behind a pending token carried a valid device token
-- (then the session it opens gets no new one).
ALTER TABLE pending_tokens ADD COLUMN known_device BOOLEAN NOT NULL DEFAULT FALSE;

-- Hourly caps count the previous clock hour too, so that no hour-long span
-- holds more failures than the cap.
ALTER TABLE failure_counters ADD COLUMN previous_window_failures INTEGER NOT NULL DEFAULT 0;

-- At most one password check in flight per user on authenticated endpoints:
-- a claim that expires by itself should its holder die.
CREATE TABLE check_claims (
    key TEXT PRIMARY KEY NOT NULL,
    held_until BIGINT NOT NULL
);

-- Keys are now HMACs under a key of the server's: old SHA-256 keys are dead.
DELETE FROM failure_counters;
DELETE FROM rate_buckets;
