#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Solidity contracts, unit tests and the end-to-end
# scenarios. Works on a fresh machine with a Rust toolchain, Node.js with npm and Python 3 with pip; the
# contracts' script installs the pinned forge, anvil and solcjs into contracts/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build the vellum binary (the end-to-end tests run it as a child process)"
cargo build --workspace --bins --locked

echo "== API fuzzing: schemathesis against the reference's OpenAPI document and Vellum's own"
echo "   (installs schemathesis into target/api-fuzz-venv with pip on first use)"
scripts/api-fuzz.sh

echo "== contracts: forge build and test (pinned forge, anvil and solcjs, installed by npm ci;"
echo "   the Rust tests below start that anvil)"
contracts/scripts/test.sh

echo "== contracts: the committed artifacts are what the sources compile to"
contracts/scripts/export-artifacts.sh --check

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
