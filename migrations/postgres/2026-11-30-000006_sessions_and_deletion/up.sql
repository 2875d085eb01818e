-- What `GET /me/sessions` shows of each session: the client that opened it
-- (written once, at creation) and its last refresh (written at refresh
-- only, so checking an access token stays one indexed read).
ALTER TABLE sessions ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
