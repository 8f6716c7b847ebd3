//! # contracts
//!
//! Vellum's Solidity contracts seen from Rust. `bindings.rs` generates typed bindings with alloy's
//! `sol!` from the Foundry artifacts committed in `contracts/artifacts/` (CI rebuilds them and fails
//! on any difference, so the bindings always match the sources); `deploy.rs` deploys the test
//! token, the Groth16 verifier with a verifying key in its plain EVM form, and the marketplace with a
//! configuration; [`deployment`] deploys to any chain (reusing an existing ERC-20 if asked) and
//! reads, writes and checks the deployment file that nodes and validators start from; `anvil.rs`
//! starts the pinned anvil from `contracts/node_modules` on a free loopback port for tests and the
//! devnet, and stops it when dropped; [`client`] is a wallet's resilient access to the marketplace
//! (retries, back-off, one-at-a-time sends), used by the node and the validator; [`rules`] is the
//! marketplace's challenge and proof-requirement rule computed off chain; [`events`] decodes the
//! marketplace's logs into one typed [`MarketEvent`], the only place that decodes them.

mod anvil;
pub mod bandwidth;
mod bindings;
pub mod client;
mod deploy;
pub mod deployment;
mod errors;
pub mod events;
pub mod offchain;
pub mod rules;
mod states;

pub use anvil::{Anvil, AnvilError};
pub use bindings::{BandwidthChannels, Groth16Verifier, Marketplace, TestToken};
pub use deploy::{
    DeployError, Deployment, VerifyingKeyWords, Word, deploy, dev_config, dev_config_with_period, proof_words,
};
pub use deployment::{DeploymentError, DeploymentFile};
pub use errors::MarketError;
pub use events::MarketEvent;
pub use states::{RequestState, SlotState, UnknownState};
