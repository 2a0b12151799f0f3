#!/usr/bin/env bash
# Property-based contract tests: schemathesis checks that authd answers
# exactly as openapi.yaml says, with the settings in schemathesis.toml.
#
#   scripts/contract-test.sh                 build authd, run it on a fresh
#                                            database, test it, clean up
#   scripts/contract-test.sh --url URL       test a running deployment (it
#                                            registers one test account there;
#                                            its throttle will answer many of
#                                            the generated logins with 429)
#
# Further arguments go to `st run` (for example --max-examples 50).
#
# Installs where missing: curl and python3-venv (Debian packages, as root),
# schemathesis (pinned, into the venv) and, to run authd locally, what
# scripts/test-deps.sh lists (Postgres running, aiosmtpd for its mail).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

# Debian package   probe (a command name, or a shell test)
need_packages contract-test <<'TABLE'
curl               curl
python3-venv       python3 -c 'import ensurepip, venv'
TABLE

SCHEMATHESIS_VERSION=4.32.5
VENV=${CONTRACT_VENV:-.venv-contract}
POSTGRES=${CONTRACT_POSTGRES:-postgres://postgres@127.0.0.1:5432}

if [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
    echo "contract-test: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

url=""
if [ "${1:-}" = "--url" ]; then
    url=${2:?--url needs a value}
    shift 2
fi

# shellcheck source=scripts/lib/server.sh
. scripts/lib/server.sh
sink_pid=""
maildir=""
cleanup() {
    status=$?
    authd_stop contract-test "$status"
    if [ -n "$sink_pid" ]; then
        kill "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    if [ -n "$maildir" ]; then
        rm -rf "$maildir"
    fi
}
trap cleanup EXIT

if [ -z "$url" ]; then
    scripts/test-deps.sh
    # Recovery mails go to a real SMTP server (aiosmtpd, as in the
    # integration tests) when it is installed; to the log otherwise.
    smtp_url=""
    if /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
        smtp_port=$(free_port)
        maildir=$(mktemp -d -t authd-contract-mail.XXXXXX)
        # The handler makes a Maildir's tmp/new/cur only in a directory it
        # creates itself; in an existing one every delivery fails.
        /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$maildir/inbox" >/dev/null 2>&1 &
        sink_pid=$!
        smtp_url="smtp://127.0.0.1:$smtp_port"
        echo "contract-test: mail goes to an SMTP sink on port $smtp_port"
    fi
    # Thousands of generated requests come from one address: with the
    # default throttle nearly all of them would meet a 429 before reaching
    # the code under test. The throttle has tests of its own.
    authd_start contract-test \
        LOGIN_FAILURES_PER_IDENTIFIER=1000000 LOGIN_FAILURES_PER_IP=1000000 \
        REGISTRATIONS_PER_IP=1000000 RECOVERY_MAILS_PER_ADDRESS=1000000 \
        RECOVERY_MAILS_PER_IP=1000000 SMTP_URL="$smtp_url"
    url=$AUTHD_URL
fi

# A known account, so that the operations behind a login are tested too.
LOGIN_USERNAME="contract_$(date +%s)_$RANDOM"
LOGIN_PASSWORD="contract-$(head -c 18 /dev/urandom | base64 -w0 | tr '+/' '-_')"
export LOGIN_USERNAME LOGIN_PASSWORD
curl -fsS -o /dev/null "$url/api/register" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$LOGIN_USERNAME\",\"email\":\"$LOGIN_USERNAME@example.com\",\"password\":\"$LOGIN_PASSWORD\",\"password2\":\"$LOGIN_PASSWORD\"}"

"$VENV/bin/st" run openapi.yaml --url "$url" "$@"
