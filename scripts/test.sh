#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end scenarios.
# Works on a fresh machine with a Rust toolchain; installs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build the vellum binary (the end-to-end tests run it as a child process)"
cargo build --workspace --bins --locked

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
