-- UUIDs are TEXT and times are UTC TIMESTAMP so that one diesel schema serves
-- both backends through MultiConnection.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    -- NFKC + lower-case form: the uniqueness key.
    username_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- AES-256-GCM nonce || ciphertext of the TOTP secret, and the key that sealed it.
    totp_secret BLOB,
    totp_key_id TEXT,
    two_factor_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    -- Highest TOTP time step ever accepted: codes at or below it are replays.
    totp_last_step BIGINT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE pending_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    consumed_at TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX pending_tokens_user_id ON pending_tokens (user_id);
CREATE INDEX pending_tokens_expires_at ON pending_tokens (expires_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated RFC 8176 method references, e.g. "pwd otp".
    amr TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE auth_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX auth_events_user_id_id ON auth_events (user_id, id);
CREATE INDEX auth_events_created_at ON auth_events (created_at);
