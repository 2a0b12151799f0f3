-- The audit trail: who did what, from where. Never a password, hash,
-- token or cookie. 'session_revoked' is for ending a session other than by
-- logging out of it (listing and ending one's sessions is planned).
CREATE TABLE auth_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    event      TEXT        NOT NULL CHECK (event IN (
                   'register', 'register_throttled', 'login_success', 'login_failure',
                   'login_throttled', 'logout', 'session_revoked')),
    user_id    BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    identifier TEXT,
    ip         INET,
    user_agent TEXT
);

CREATE INDEX auth_events_at_idx ON auth_events (at);
CREATE INDEX auth_events_user_id_idx ON auth_events (user_id, at);

-- Sliding-window throttle counts (when Redis is not configured). Keys are
-- digests, never the identifier typed.
CREATE TABLE throttle_hits (
    id     BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket TEXT        NOT NULL,
    key    TEXT        NOT NULL,
    at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX throttle_hits_key_idx ON throttle_hits (bucket, key, at);
CREATE INDEX throttle_hits_at_idx ON throttle_hits (at);
