#!/usr/bin/env bash
# The main job: a whole Vellum network on this machine (`vellum devnet`). Installs the pinned
# anvil with npm ci in contracts/, builds the release binary, and runs the scenario to its
# summary: anvil and the contracts, a client, K + M hosts, spares and a validator; a storage
# request filled and proven; M hosts stop, their missed proofs are marked, the slots are lost
# and rebuilt by lazy repair; the file is downloaded again and compared.
# Extra arguments go to `vellum devnet` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

contracts/scripts/install.sh
cargo build --release --locked --bin vellum
exec target/release/vellum devnet "$@"
