-- Throttling state shared by every instance. Keys are SHA-256 digests of
-- what they count (account, username + client, client IP), so no username
-- or address is stored here. Times are Unix seconds: plain numbers compare
-- and subtract the same way on both backends.
CREATE TABLE failure_counters (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    lockouts INTEGER NOT NULL DEFAULT 0,
    window_start BIGINT NOT NULL DEFAULT 0,
    window_failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX failure_counters_last_failure_at ON failure_counters (last_failure_at);

CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    refilled_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX rate_buckets_refilled_at ON rate_buckets (refilled_at);
