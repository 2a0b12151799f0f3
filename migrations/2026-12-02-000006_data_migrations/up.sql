-- Changes to existing rows that SQL cannot make (say, normalising e-mail
-- domains by IDNA) run in Rust at start-up, after the schema migrations and
-- under the same lock; each is recorded here once done.
CREATE TABLE data_migrations (
    name       TEXT        PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
