#!/usr/bin/env bash
# Builds and tests the contracts with the pinned forge + solcjs from node_modules.
# Usage: scripts/test.sh [--gas-report]   (works from any directory, offline after npm ci)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install.sh

FORGE=node_modules/@foundry-rs/forge-linux-amd64/bin/forge
"$FORGE" build
"$FORGE" test
if [ "${1:-}" = "--gas-report" ]; then
    # Gas figures from the scenario that uses the real Groth16 verifier only
    # (the other suites use a mock verifier and would blur the table).
    "$FORGE" test --match-contract MarketplaceGasTest --gas-report
    # The bandwidth channels' own calls (open, redeem, close), from their unit tests.
    "$FORGE" test --match-contract BandwidthChannelsTest --gas-report
fi
