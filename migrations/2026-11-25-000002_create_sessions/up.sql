CREATE TABLE sessions (
    -- 256 random bits, base64url: the server-side handle carried inside the
    -- encrypted cookie and the signed bearer token.
    id           TEXT        PRIMARY KEY CHECK (length(id) >= 22),
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    remember     BOOLEAN     NOT NULL,
    user_agent   TEXT,
    ip           INET,
    csrf_token   TEXT        NOT NULL,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT sessions_expiry_after_creation CHECK (expires_at > created_at)
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
