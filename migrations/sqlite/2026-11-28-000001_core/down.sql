DROP TABLE auth_events;
DROP TABLE sessions;
DROP TABLE pending_tokens;
DROP TABLE users;
