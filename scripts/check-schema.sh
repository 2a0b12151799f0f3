#!/usr/bin/env bash
# Fails when src/schema.rs is not what `diesel print-schema` generates from
# the migrations (with the options in diesel.toml): the schema is generated,
# never edited by hand. Regenerate it with:
#   diesel migration run --database-url postgres://postgres@127.0.0.1:5432/<scratch db>
#
# Needs the Diesel CLI and builds it where missing (cargo install, Postgres
# only: a couple of minutes, once); nothing else needs it. The Postgres it
# runs against, and libpq to build it with, come from scripts/test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SCHEMA_CHECK_POSTGRES:-}" ]; then
    scripts/test-deps.sh
fi
if ! diesel --version >/dev/null 2>&1; then
    echo "check-schema: building the Diesel CLI (Postgres only; a couple of minutes, once)"
    cargo install diesel_cli --version "^2.3" --no-default-features --features postgres --locked
fi

POSTGRES=${SCHEMA_CHECK_POSTGRES:-postgres://postgres@127.0.0.1:5432}
database="authd_schema_check_$$"
scratch=$(mktemp -d)
cleanup() {
    psql "$POSTGRES/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

psql "$POSTGRES/postgres" -qc "CREATE DATABASE $database" >/dev/null
url="$POSTGRES/$database?sslmode=disable"
# A config without [print_schema], so that applying the migrations here
# leaves the working tree's schema.rs alone.
printf '[migrations_directory]\ndir = "%s/migrations"\n' "$PWD" >"$scratch/diesel.toml"
diesel migration run --database-url "$url" --config-file "$scratch/diesel.toml" >/dev/null
diesel print-schema --database-url "$url" >"$scratch/schema.rs"
if ! diff -u src/schema.rs "$scratch/schema.rs"; then
    echo "check-schema: src/schema.rs differs from what the migrations generate (diff above)" >&2
    exit 1
fi
echo "check-schema: src/schema.rs matches the migrations"
