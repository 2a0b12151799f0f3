#!/usr/bin/env bash
# Clients generated from openapi.yaml lose nothing: lints the document
# (Redocly's recommended rules, Spectral's spectral:oas), generates a
# Python client (openapi-python-client) and TypeScript clients
# (openapi-typescript for openapi-fetch, and orval), type-checks them
# (mypy --strict, tsc --strict), and drives a short flow with each against
# a fresh authd on a fresh database: register, login, me, sessions,
# logout, a 422 and a 401, each parsed into its documented type.
#
#   scripts/check-clients.sh
#
# Every tool version is pinned: clients/python/requirements.txt (into
# .venv-clients) and clients/typescript/package-lock.json (npm ci, into
# clients/typescript/node_modules). Needs Python 3.11+, Node.js 20+ and
# npm, and a Postgres on 127.0.0.1:5432 as scripts/ensure-deps.sh sets up.
# Exits non-zero when any check fails, a linter or generator warning
# included.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

VENV=${CLIENTS_VENV:-.venv-clients}
case $VENV in /*) ;; *) VENV=$root/$VENV ;; esac
POSTGRES=${CLIENTS_POSTGRES:-postgres://postgres@127.0.0.1:5432}
TS=clients/typescript
PY=clients/python
started=$SECONDS

step() { echo "check-clients: $*"; }
fail() {
    echo "check-clients: FAILED: $*" >&2
    exit 1
}

# --- tools
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "needs Python 3.11 or later (the generated client uses enum.StrEnum)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' ||
    fail "needs Node.js 20 or later"

requirements_sum=$(sha256sum "$PY/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$requirements_sum" ]; then
    step "installing $PY/requirements.txt into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$PY/requirements.txt"
    echo "$requirements_sum" >"$VENV/.requirements.sha256"
fi
# The generator runs ruff on what it writes: the venv's.
export PATH="$VENV/bin:$PATH"

lock_sum=$(sha256sum "$TS/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$TS/node_modules/.package-lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
    step "installing $TS/package-lock.json (npm ci)"
    (cd "$TS" && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$TS/node_modules/.package-lock.sha256"
fi
bin=$root/$TS/node_modules/.bin
# No usage reports or update checks from the tools: they are pinned.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

# Runs a command, shows its output, and fails if it failed or if its output
# has a line matching the pattern (a generator's warnings do not fail it).
run_clean() {
    local what=$1 pattern=$2 log
    shift 2
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        cat "$log"
        rm -f "$log"
        fail "$what"
    fi
    if grep -Eiq "$pattern" "$log"; then
        cat "$log"
        echo "check-clients: the lines that fail it:" >&2
        grep -Ei "$pattern" "$log" >&2
        rm -f "$log"
        fail "$what printed warnings"
    fi
    rm -f "$log"
}

# --- lint
step "redocly lint (recommended-strict, findings meant in clients/lint/.redocly.lint-ignore.yaml)"
# Redocly names the Node.js 20 end of life in a box on every run; that is
# about Node.js, not about openapi.yaml, so it is left out of the output.
lint_log=$(mktemp)
lint_status=0
"$bin/redocly" lint openapi.yaml --config clients/lint/redocly.yaml --format=stylish >"$lint_log" 2>&1 ||
    lint_status=$?
grep -Ev '^ *[║╔╚]|^\s*$' "$lint_log" || true
rm -f "$lint_log"
[ "$lint_status" -eq 0 ] || fail "redocly lint"
step "spectral lint (spectral:oas, clients/lint/spectral.yaml)"
"$bin/spectral" lint openapi.yaml --ruleset clients/lint/spectral.yaml --fail-severity=warn ||
    fail "spectral lint"

# --- generate
step "openapi-python-client: $PY/generated/authd_client"
rm -rf "$PY/generated"
mkdir -p "$PY/generated"
run_clean "openapi-python-client" 'warning|error|unable|skipping' \
    "$VENV/bin/openapi-python-client" generate --path openapi.yaml --meta none \
    --config "$PY/config.yaml" --output-path "$PY/generated/authd_client"

step "openapi-typescript: $TS/generated/openapi-typescript/authd.ts"
rm -rf "$TS/generated" "$TS/build"
# --default-non-nullable false: a request field with a default (login's
# remember_me) stays optional for the caller.
run_clean "openapi-typescript" 'warn|error' \
    "$bin/openapi-typescript" openapi.yaml -o "$TS/generated/openapi-typescript/authd.ts" \
    --root-types --root-types-no-schema-prefix --default-non-nullable false

step "orval: $TS/generated/orval/authd.ts"
run_clean "orval" 'warn|error|🛑' \
    bash -c "cd '$TS' && '$bin/orval' --config orval.config.cjs"

step "no schema name is also a name orval makes for an operation"
"$VENV/bin/python" - openapi.yaml "$TS/generated/orval/authd.ts" <<'EOF' || fail "name collisions"
import re
import sys

from ruamel.yaml import YAML

spec = YAML(typ="safe").load(open(sys.argv[1]))
schemas = set(spec["components"]["schemas"])
exported = set(re.findall(r"^export (?:type|interface|const|function) (\w+)", open(sys.argv[2]).read(), re.M))
made = {name.lower(): name for name in exported - schemas}
clashes = [f"{s} (orval: {made[s.lower()]})" for s in sorted(schemas) if s.lower() in made]
if clashes:
    print("schema names that orval also uses, ignoring case:", *clashes, sep="\n  ")
    sys.exit(1)
EOF

# --- type-check
step "mypy --strict: the Python client and $PY/drive.py"
(cd "$PY" && MYPYPATH=generated "$VENV/bin/mypy" --config-file mypy.ini \
    --cache-dir "$VENV/.mypy_cache" generated/authd_client drive.py) || fail "mypy"

step "tsc --strict --noEmit: both TypeScript clients and their drivers"
"$bin/tsc" --strict --noEmit -p "$TS" || fail "tsc"
"$bin/tsc" -p "$TS" || fail "tsc (building the drivers)"

# --- drive them against a fresh server
# shellcheck source=scripts/lib/server.sh
. scripts/lib/server.sh
trap 'authd_stop check-clients $?' EXIT
# Mails (the verification link a registration sends) go to the log.
authd_start check-clients SMTP_URL= || fail "authd did not start"
url=$AUTHD_URL

step "driving the Python client"
PYTHONPATH="$PY/generated" "$VENV/bin/python" "$PY/drive.py" "$url" || fail "the Python client's flow"
step "driving the openapi-fetch client"
node "$TS/build/drivers/openapi-fetch.js" "$url" || fail "the openapi-fetch client's flow"
step "driving the orval client"
node "$TS/build/drivers/orval.js" "$url" || fail "the orval client's flow"

step "all clients generated, type-checked and driven in $((SECONDS - started)) s"
