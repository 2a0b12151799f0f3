#!/usr/bin/env bash
# Checks deploy/authd.service: `systemd-analyze verify` against the binary
# CI built (the unit names /usr/local/bin/authd and /etc/authd/authd.env,
# which CI does not have), and `systemd-analyze security`, which must rate
# its exposure 2.0 or lower (MAX_EXPOSURE, in tenths: 20). Installs the
# systemd package (it has systemd-analyze) where missing; neither check needs
# systemd to be running. Builds authd where it is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

MAX_EXPOSURE=${MAX_EXPOSURE:-20}

# Debian package   probe (a command name, or a shell test)
need_packages check-deploy <<'TABLE'
systemd            systemd-analyze
TABLE

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

# --offline reads the unit file alone, as the unit would run; --threshold
# makes a worse rating the exit status.
if ! output=$(systemd-analyze security --offline=true --threshold="$MAX_EXPOSURE" \
    "$scratch/authd.service" 2>&1); then
    echo "$output" >&2
    echo "check-deploy: deploy/authd.service is rated above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)) (the settings above marked ✗ add to it)" >&2
    exit 1
fi
rating=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$output")
echo "check-deploy: systemd-analyze security rates deploy/authd.service ${rating:-?} (at most $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)))"
