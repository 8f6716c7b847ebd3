//! Typed bindings generated from the committed artifacts (ABI and bytecode).
#![allow(missing_docs, unreachable_pub, clippy::all)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestToken,
    "artifacts/TestToken.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Groth16Verifier,
    "artifacts/Groth16Verifier.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Marketplace,
    "artifacts/Marketplace.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    BandwidthChannels,
    "artifacts/BandwidthChannels.json"
);
