#!/usr/bin/env bash
# What the test suite (`cargo nextest run`) needs, installed where missing
# and started where down; scripts/test runs this first. Checks first: when
# everything is there it takes well under a second and changes nothing.
#
# Installs (Debian packages, with apt-get, as root; not root, it fails
# naming the `apt-get install` command to run) only what the table below
# finds missing: a C linker, libpq (Diesel's Postgres driver), psql,
# PostgreSQL and Redis (unless one already answers on its port), PgBouncer
# (a test runs authd behind it), aiosmtpd (the SMTP server the recovery
# tests send mail to), pkill (tests stop their helpers with it), curl,
# jq and HTTPie (a test runs the README's examples with them), nginx with
# auth_request (`nginx-light`: the forward-auth tests run the nginx
# example), and Chromium with its chromedriver (the browser test drives
# examples/spa/ in it, headless); and cargo-nextest (`cargo install`, into
# ~/.cargo/bin) when cargo lacks it.
#
# Starts PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 when they
# are down, and, as root, lets user `postgres` log in there without a
# password (trust, loopback only: for development machines), saying so when
# it does. With TEST_DATABASE_URL or TEST_REDIS_URL set, that server is
# yours: it is neither installed nor started.
#
# It does not build the Diesel CLI (only scripts/check-schema.sh needs it),
# nor python3-venv (scripts/ensure-deps.sh adds it, for the contract tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

# One line per Debian package: the package, then a probe that succeeds when
# it is there (a command name, or a shell test). A new need is one more line.
# nginx's probe asks for the module, not the program: not every nginx has it.
need_packages test-deps <<'TABLE'
gcc                cc
libpq-dev          compgen -G '/usr/lib/*/libpq.so' || pkg-config --exists libpq
postgresql-client  psql
postgresql         [ -n "${TEST_DATABASE_URL:-}" ] || port_open 127.0.0.1 5432 || have pg_ctlcluster
redis-server       [ -n "${TEST_REDIS_URL:-}" ] || port_open 127.0.0.1 6379 || have redis-server
pgbouncer          pgbouncer
python3-aiosmtpd   /usr/bin/python3 -c 'import aiosmtpd'
procps             pkill
nginx-light        nginx -V 2>&1 | grep -q http_auth_request
curl               curl
jq                 jq
httpie             http
chromium           chromium
chromium-driver    chromedriver
TABLE

if ! have cargo; then
    echo "test-deps: cargo is not on PATH; install Rust (rustup.rs), then run me again" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test-deps: installing cargo-nextest (cargo install: a few minutes, once)"
    cargo install cargo-nextest --locked
fi

if [ -z "${TEST_DATABASE_URL:-}" ]; then
    if ! port_open 127.0.0.1 5432; then
        version=$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -printf '%h\n' 2>/dev/null |
            xargs -r -n1 basename | sort -V | tail -n 1)
        if [ -z "$version" ]; then
            echo "test-deps: nothing answers on 127.0.0.1:5432 and there is no PostgreSQL cluster" >&2
            echo "test-deps: in /etc/postgresql; create one (pg_createcluster) or set TEST_DATABASE_URL" >&2
            exit 1
        fi
        start="pg_ctlcluster --skip-systemctl-redirect $version main start"
        if [ "$(id -u)" -ne 0 ]; then
            echo "test-deps: PostgreSQL $version is not running; start it as root, then run me again:" >&2
            echo "    sudo $start" >&2
            exit 1
        fi
        echo "test-deps: starting PostgreSQL $version"
        $start
        for _ in $(seq 1 60); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.5
        done
        pg_isready -q -h 127.0.0.1 -p 5432 || {
            echo "test-deps: PostgreSQL $version did not come up on 127.0.0.1:5432" >&2
            exit 1
        }
    fi

    # The tests log in as `postgres` over TCP on loopback, with no password.
    if ! psql -w "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=10" -qAtc "SELECT 1" >/dev/null 2>&1; then
        hba=""
        if [ "$(id -u)" -eq 0 ]; then
            hba=$(su postgres -c "psql -qAtc 'SHOW hba_file'" 2>/dev/null || true)
        fi
        if [ -z "$hba" ] || [ ! -w "$hba" ]; then
            echo "test-deps: cannot log in as postgres on 127.0.0.1:5432 without a password." >&2
            echo "test-deps: as root, put these first in pg_hba.conf and reload Postgres" >&2
            echo "test-deps: (development machines only), or set TEST_DATABASE_URL:" >&2
            echo "    host all postgres 127.0.0.1/32 trust" >&2
            echo "    host all postgres ::1/128 trust" >&2
            exit 1
        fi
        echo "test-deps: letting user postgres log in from 127.0.0.1 and ::1 without a password"
        echo "test-deps: (trust authentication in $hba: for a development machine only)"
        {
            echo "# Added by authd's scripts/test-deps.sh: password-less local development."
            echo "host all postgres 127.0.0.1/32 trust"
            echo "host all postgres ::1/128 trust"
            cat "$hba"
        } >"$hba.authd" && cat "$hba.authd" >"$hba" && rm -f "$hba.authd"
        su postgres -c "psql -qAtc 'SELECT pg_reload_conf()'" >/dev/null
        psql -w "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=10" -qAtc "SELECT 1" >/dev/null
    fi
fi

if [ -z "${TEST_REDIS_URL:-}" ] && ! port_open 127.0.0.1 6379; then
    echo "test-deps: starting Redis on 127.0.0.1:6379 (no persistence)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 40); do
        port_open 127.0.0.1 6379 && break
        sleep 0.25
    done
    port_open 127.0.0.1 6379 || {
        echo "test-deps: Redis did not come up on 127.0.0.1:6379" >&2
        exit 1
    }
fi
