#!/usr/bin/env bash
# Builds (checks) the workspace with the Rust version Cargo.toml declares, so
# the README's "Rust 1.xx or newer" is a fact and not a guess: a dependency
# bump that needs a newer compiler fails here. Skipped, loudly, where rustup
# is missing or cannot download that toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$msrv" ] || { echo "check-msrv: no rust-version in Cargo.toml" >&2; exit 1; }
if ! command -v rustup >/dev/null 2>&1; then
    echo "check-msrv: rustup is not installed; skipped"
    exit 0
fi
if ! rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
    echo "check-msrv: could not install Rust $msrv; skipped"
    exit 0
fi
# A target directory of its own: artefacts of two compilers do not mix.
CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check --locked --workspace --all-targets --quiet
echo "check-msrv: the workspace builds with Rust $msrv"
