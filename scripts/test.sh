#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end scenarios, then the
# Solidity contracts. Works on a fresh machine with a Rust toolchain and Node.js with npm; the
# contracts' script installs the pinned forge, anvil and solcjs into contracts/node_modules.
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

echo "== contracts: forge build and test (pinned forge and solcjs, installed by npm ci)"
contracts/scripts/test.sh

echo "== contracts: the committed artifacts are what the sources compile to"
contracts/scripts/export-artifacts.sh --check
