# shellcheck shell=bash
# Helpers for authd's scripts, sourced (not run) by scripts/test-deps.sh,
# scripts/ensure-deps.sh, scripts/check-deploy.sh and
# scripts/contract-test.sh. Installs nothing by itself.
#
# need_packages NAME reads a table on stdin, one Debian package a line, each
# with a probe that succeeds when what the package provides is there:
#
#     # Debian package   probe: a command name, or else a shell test
#     pgbouncer          pgbouncer
#     python3-aiosmtpd   /usr/bin/python3 -c 'import aiosmtpd'
#
# It runs every probe (fast: nothing is installed or updated when all pass),
# then installs the packages whose probe failed with one apt-get call. Not
# being root, or not having apt-get, it fails naming the command to run.
# NAME prefixes its messages.

# Programs in /usr/sbin (pgbouncer, runuser) are run by name, and a normal
# user's PATH on Debian lacks it.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac
export PATH

# Succeeds when program $1 is on PATH and executable (bash's `command -v`
# alone also names a file on PATH that is not executable).
have() {
    local path
    path=$(command -v "$1" 2>/dev/null) && [ -x "$path" ]
}

# Succeeds when something accepts TCP connections on host $1, port $2
# (bash's /dev/tcp: needs no client program).
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

need_packages() {
    local name=$1 package probe missing=() probes=() i
    while read -r package probe; do
        case $package in '' | '#'*) continue ;; esac
        probe_passes "$probe" && continue
        echo "$name: $package is missing (checked: $probe)" >&2
        missing+=("$package")
        probes+=("$probe")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    # shellcheck disable=SC2046 # one word per package
    apt_install "$name" $(printf '%s\n' "${missing[@]}" | sort -u)
    for i in "${!missing[@]}"; do
        if ! probe_passes "${probes[$i]}"; then
            echo "$name: ${missing[$i]} is installed, yet this still fails: ${probes[$i]}" >&2
            exit 1
        fi
    done
}

# A probe with no space in it names a program; else it is a shell test.
probe_passes() {
    if [[ $1 != *[[:space:]]* ]]; then
        have "$1"
    else
        (eval "$1") >/dev/null 2>&1
    fi
}

# apt_install NAME PACKAGE...: as root with apt-get, installs them; else
# fails, saying what to run.
apt_install() {
    local name=$1
    shift
    if ! have apt-get; then
        echo "$name: no apt-get here; install the equivalents of these Debian packages: $*" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "$name: installing packages needs root; run this, then run me again:" >&2
        echo "    sudo apt-get install -y $*" >&2
        exit 1
    fi
    echo "$name: installing $* (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
