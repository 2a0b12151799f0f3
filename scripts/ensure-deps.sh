#!/usr/bin/env bash
# Installs and starts everything for working on authd, where missing, on
# Debian (as root, asking nothing; safe to run repeatedly):
#   - what the test suite needs, and its servers started: scripts/test-deps.sh
#     (libpq, PostgreSQL on 127.0.0.1:5432 with a password-less login for
#     `postgres`, for development only, Redis, PgBouncer, aiosmtpd, nginx
#     with auth_request, cargo-nextest, and curl, jq and HTTPie, which the
#     README's examples use and a test runs them with); `cargo run` needs
#     the first two too;
#   - python3-venv, for the contract tests' venv (scripts/contract-test.sh
#     installs schemathesis into it, and checks for python3-venv itself too).
# Not the Diesel CLI: scripts/check-schema.sh, the only thing that uses it,
# builds it the first time it runs (a couple of minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

scripts/test-deps.sh

# Debian package   probe (a command name, or a shell test)
need_packages ensure-deps <<'TABLE'
python3-venv       python3 -c 'import ensurepip, venv'
TABLE
