DROP TABLE check_claims;
ALTER TABLE failure_counters DROP COLUMN previous_window_failures;
ALTER TABLE pending_tokens DROP COLUMN known_device;
DROP TABLE device_tokens;
