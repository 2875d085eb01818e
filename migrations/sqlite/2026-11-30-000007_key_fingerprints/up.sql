-- Which keys this database is used with: an HMAC of a fixed label under
-- each key (it reveals nothing about the key), recorded at first start, so
-- an instance started with another key refuses to start instead of issuing
-- tokens and secrets the others cannot read.
CREATE TABLE key_fingerprints (
    name TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL
);
