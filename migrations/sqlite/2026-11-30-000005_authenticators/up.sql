-- Several authenticators per user, each with its own sealed secret and its
-- own replay step. The one enrolled through /2fa/setup is "default".
CREATE TABLE authenticators (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- AES-256-GCM nonce || ciphertext of the TOTP secret (the user's id as
    -- associated data), and the key that sealed it.
    totp_secret BLOB NOT NULL,
    totp_key_id TEXT NOT NULL,
    -- Highest TOTP time step accepted for this authenticator: codes at or
    -- below it are replays.
    last_step BIGINT,
    -- NULL until a code of its own confirms it.
    confirmed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX authenticators_user_id ON authenticators (user_id);
CREATE UNIQUE INDEX authenticators_user_id_name ON authenticators (user_id, name)
    WHERE confirmed_at IS NOT NULL;
-- At most one enrolment in progress per user: a new one replaces it.
CREATE UNIQUE INDEX authenticators_user_id_unconfirmed ON authenticators (user_id)
    WHERE confirmed_at IS NULL;

-- Today's single secret becomes the user's "default" authenticator, with
-- its replay step. It takes the user's id as its own (one per user, and
-- both backends make it the same way); the moment 2FA was enabled is not
-- known, so the account's creation stands in for it.
INSERT INTO authenticators
    (id, user_id, name, totp_secret, totp_key_id, last_step, confirmed_at, created_at, last_used_at)
SELECT id, id, 'default', totp_secret, totp_key_id, totp_last_step,
       CASE WHEN two_factor_enabled THEN created_at ELSE NULL END, created_at, NULL
FROM users
WHERE totp_secret IS NOT NULL AND totp_key_id IS NOT NULL;

ALTER TABLE users DROP COLUMN totp_secret;
ALTER TABLE users DROP COLUMN totp_key_id;
ALTER TABLE users DROP COLUMN totp_last_step;
