#!/usr/bin/env bash
# Installs and starts what building and testing authd needs, where missing:
# libpq (Diesel's Postgres driver), cargo-nextest, the Diesel CLI (for the
# generated-schema check), a running Postgres on 127.0.0.1:5432 and a running
# Redis on 127.0.0.1:6379 (the throttle's shared store, tested too). Safe to
# run repeatedly.
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
