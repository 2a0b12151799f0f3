-- Secrets every instance sharing this database shares, made once, here.
-- Unlike keys derived from SECRET_KEY, they do not change when instances
-- rotate their keys, so whatever they key (the throttle's counters) stays
-- the same across a rotation and across instances.
CREATE TABLE shared_secrets (
    name       TEXT        PRIMARY KEY,
    value      BYTEA       NOT NULL CHECK (octet_length(value) >= 30),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- gen_random_uuid() draws from the server's strong random source: two v4
-- UUIDs give 32 bytes, 244 of their bits random.
INSERT INTO shared_secrets (name, value)
VALUES ('throttle_key', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
