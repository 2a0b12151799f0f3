# shellcheck shell=bash
# A fresh authd for a check script (scripts/contract-test.sh,
# scripts/check-clients.sh), sourced, not run: the debug build, on a
# database and a free loopback port of its own, with fast bcrypt, plain-http
# cookies and a random key. The caller sets POSTGRES (the server's URL,
# without a database) and calls authd_stop from its exit trap.

AUTHD_PID=""
AUTHD_DATABASE=""
AUTHD_LOG=""
AUTHD_URL=""

# A TCP port free on loopback right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# authd_start NAME [VAR=value ...]: builds authd and starts it on database
# authd_NAME_<pid>, with the settings above and then the given ones, and
# waits until it answers /healthz; sets AUTHD_URL. NAME prefixes messages.
authd_start() {
    local name=$1 port
    shift
    cargo build --locked --quiet --bin authd
    port=$(free_port)
    AUTHD_DATABASE="authd_${name//-/_}_$$"
    AUTHD_LOG=$(mktemp -t "authd-$name.XXXXXX.log")
    AUTHD_URL="http://127.0.0.1:$port"
    echo "$name: starting authd on port $port (database $AUTHD_DATABASE, log $AUTHD_LOG)"
    env DATABASE_URL="$POSTGRES/$AUTHD_DATABASE" BIND="127.0.0.1:$port" BCRYPT_COST=4 \
        COOKIE_SECURE=false SECRET_KEY="$(head -c 48 /dev/urandom | base64 -w0)" \
        LOG_FORMAT=json RUST_LOG=warn "$@" "${CARGO_TARGET_DIR:-target}/debug/authd" \
        >"$AUTHD_LOG" 2>&1 &
    AUTHD_PID=$!
    for _ in $(seq 1 120); do
        curl -fsS "$AUTHD_URL/healthz" >/dev/null 2>&1 && return 0
        if ! kill -0 "$AUTHD_PID" 2>/dev/null; then
            echo "$name: authd did not start" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "$name: authd did not answer /healthz within 60 s" >&2
    return 1
}

# authd_stop NAME STATUS: stops the server authd_start started (if any),
# shows the last lines of its log when STATUS (the script's exit status) is
# a failure, and drops its database.
authd_stop() {
    local name=$1 status=$2
    if [ -n "$AUTHD_PID" ]; then
        kill "$AUTHD_PID" 2>/dev/null || true
        wait "$AUTHD_PID" 2>/dev/null || true
    fi
    if [ -n "$AUTHD_LOG" ]; then
        if [ "$status" -ne 0 ]; then
            echo "$name: the server's log ($AUTHD_LOG), last lines:" >&2
            tail -n 50 "$AUTHD_LOG" >&2 || true
        fi
        rm -f "$AUTHD_LOG"
    fi
    if [ -n "$AUTHD_DATABASE" ]; then
        psql "$POSTGRES/postgres" -qc "DROP DATABASE IF EXISTS $AUTHD_DATABASE WITH (FORCE)" >/dev/null || true
    fi
}
