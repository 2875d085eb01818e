DROP TABLE rate_buckets;
DROP TABLE failure_counters;
