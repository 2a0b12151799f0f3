#!/usr/bin/env bash
# Installs and starts what building and testing authd needs, where missing:
# libpq (Diesel's Postgres driver), cargo-nextest, the Diesel CLI (for the
# generated-schema check), PgBouncer (a test runs authd behind it), aiosmtpd
# (the SMTP server the recovery tests send mail to), python3-venv (for the
# contract tests), curl, jq and HTTPie (for the README's examples), a running
# Postgres on 127.0.0.1:5432 that lets user `postgres` in without a password
# (what the default DATABASE_URL expects: for development only), and a
# running Redis on 127.0.0.1:6379. Asks nothing; safe to run repeatedly.
set -euo pipefail

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-deps: need root to apt-get install $*" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if ! pkg-config --exists libpq 2>/dev/null && ! ls /usr/lib/*/libpq.so >/dev/null 2>&1; then
    echo "ensure-deps: installing libpq-dev"
    apt_install libpq-dev pkg-config
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "ensure-deps: installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

if ! diesel --version >/dev/null 2>&1; then
    echo "ensure-deps: installing diesel_cli (Postgres only)"
    cargo install diesel_cli --version "^2.3" --no-default-features --features postgres --locked
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "ensure-deps: installing PostgreSQL"
    apt_install postgresql
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "ensure-deps: starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432
fi

# The default DATABASE_URL, postgres://postgres@127.0.0.1:5432/authd, needs
# a password-less login for `postgres` over TCP on loopback.
if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc "SELECT 1" >/dev/null 2>&1; then
    hba=$(su postgres -c "psql -qAtc 'SHOW hba_file'" 2>/dev/null || true)
    if [ -n "$hba" ] && [ -w "$hba" ]; then
        echo "ensure-deps: letting user postgres log in from 127.0.0.1 and ::1 without a password"
        echo "ensure-deps: (trust authentication in $hba: for a development machine only)"
        {
            echo "# Added by authd's scripts/ensure-deps.sh: password-less local development."
            echo "host all postgres 127.0.0.1/32 trust"
            echo "host all postgres ::1/128 trust"
            cat "$hba"
        } >"$hba.authd" && cat "$hba.authd" >"$hba" && rm -f "$hba.authd"
        su postgres -c "psql -qAtc 'SELECT pg_reload_conf()'" >/dev/null
    else
        echo "ensure-deps: cannot log in as postgres on 127.0.0.1:5432 without a password," >&2
        echo "ensure-deps: and cannot change pg_hba.conf; set DATABASE_URL to a URL that works" >&2
    fi
fi

if ! command -v pgbouncer >/dev/null 2>&1; then
    echo "ensure-deps: installing PgBouncer (for the test that runs authd behind it)"
    apt_install pgbouncer
fi

if ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "ensure-deps: installing aiosmtpd (the SMTP server the recovery tests send mail to)"
    apt_install python3-aiosmtpd
fi

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "ensure-deps: installing python3-venv (the contract tests' schemathesis lives in a venv)"
    apt_install python3-venv
fi

# For the README's examples, not for the tests.
missing=()
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v http >/dev/null 2>&1 || missing+=(httpie)
if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-deps: installing ${missing[*]} (for the README's examples)"
    apt_install "${missing[@]}"
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-deps: installing Redis"
    apt_install redis-server
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "ensure-deps: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 40); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.25
    done
    redis-cli -h 127.0.0.1 -p 6379 ping
fi
