-- One-time recovery codes: only a keyed hash (HMAC-SHA256) is kept.
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX recovery_codes_user_id_code_hash ON recovery_codes (user_id, code_hash);

-- Every refresh token a session was ever given, by SHA-256: the current one
-- has rotated_at NULL; presenting a rotated one is reuse.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    rotated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
