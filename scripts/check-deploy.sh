#!/usr/bin/env bash
# Checks deploy/authd.service with `systemd-analyze verify`, where systemd is
# installed, against the binary CI built (the unit names /usr/local/bin/authd
# and /etc/authd/authd.env, which CI does not have).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-deploy: systemd-analyze is not installed; skipped"
    exit 0
fi
binary="${CARGO_TARGET_DIR:-$PWD/target}/debug/authd"
[ -x "$binary" ] || cargo build --locked --quiet --bin authd
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
touch "$scratch/authd.env"
sed -e "s|/usr/local/bin/authd|$binary|" -e "s|/etc/authd/authd.env|$scratch/authd.env|" \
    deploy/authd.service >"$scratch/authd.service"
if ! output=$(systemd-analyze verify "$scratch/authd.service" 2>&1) || [ -n "$output" ]; then
    echo "$output" >&2
    echo "check-deploy: deploy/authd.service does not verify" >&2
    exit 1
fi
echo "check-deploy: deploy/authd.service verifies"
