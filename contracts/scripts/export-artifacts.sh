#!/usr/bin/env bash
# Copies the ABI + bytecode of TestToken, Groth16Verifier, Marketplace and BandwidthChannels from out/ into
# artifacts/ (committed; consumed by the Rust side through alloy's sol!). The Marketplace's ABI
# is its own plus MarketplaceSettlement's, whose functions it serves by delegation (its
# constructor deploys the settlement module, so its bytecode is all a deployment needs).
# Deterministic: CI rebuilds and diffs them with `scripts/export-artifacts.sh --check`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi
node_modules/@foundry-rs/forge-linux-amd64/bin/forge build >/dev/null

dest=artifacts
if [ "${1:-}" = "--check" ]; then
    dest=$(mktemp -d)
    trap 'rm -rf "$dest"' EXIT
fi
mkdir -p "$dest"

for name in TestToken Groth16Verifier Marketplace BandwidthChannels; do
    node -e '
        const fs = require("fs");
        const a = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        let abi = a.abi;
        if (process.argv[2] === "Marketplace") {
            const module = JSON.parse(fs.readFileSync("out/MarketplaceSettlement.sol/MarketplaceSettlement.json", "utf8"));
            const key = (e) => e.type + " " + (e.name || "") + "(" + (e.inputs || []).map((i) => i.type).join(",") + ")";
            const seen = new Set(abi.map(key));
            const extra = module.abi.filter((e) => e.type !== "constructor" && !seen.has(key(e)));
            abi = abi.concat(extra).sort((x, y) => key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0);
        }
        const keep = {
            contractName: process.argv[2],
            abi: abi,
            bytecode: { object: a.bytecode.object },
            deployedBytecode: { object: a.deployedBytecode.object },
        };
        fs.writeFileSync(process.argv[3], JSON.stringify(keep, null, 2) + "\n");
    ' "out/$name.sol/$name.json" "$name" "$dest/$name.json"
done

if [ "${1:-}" = "--check" ]; then
    diff -r artifacts "$dest" && echo "artifacts are up to date"
fi
