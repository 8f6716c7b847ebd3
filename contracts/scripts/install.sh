#!/usr/bin/env bash
# Installs the pinned forge, anvil and solcjs into contracts/node_modules (npm ci), unless the
# installed copy is already up to date with package-lock.json. Works from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi
