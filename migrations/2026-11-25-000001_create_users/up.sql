CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    email         TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ,
    -- The application parses these before they get here; the checks keep
    -- hand-written SQL and future code paths honest.
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)) AND length(email) <= 254),
    CONSTRAINT users_password_hash_bcrypt CHECK (password_hash LIKE '$2b$%')
);

-- Uniqueness lives in the database so that concurrent registrations cannot
-- both succeed; the names are matched in src/models/user.rs.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email);
