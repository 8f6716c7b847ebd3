//! # validator
//!
//! The Vellum validator: it follows the Marketplace contract from a persisted cursor, anchors
//! each period's seed so that proofs can be required at all, checks the proofs hosts publish off
//! the chain, and after each period accuses the missing proofs of its group's slots (with an
//! ether bond), then settles every accusation the
//! host did not answer with its proof within the response window: a missed proof, which earns
//! the validator a share of the slashed collateral and its bond back. Enough misses take a slot
//! from its host, and lost slots accumulate until the request's repair threshold opens them for
//! repair.
//!
//! - [`challenge`]: the contract's proof requirement computed locally from a period's seed (the
//!   rule lives in [`contracts::rules`]) and the validation groups, so a period's check costs
//!   calls in proportion to the missed proofs, not to the slots watched;
//! - [`state`]: requests, slots, proofs and open accusations, kept in a JSON file;
//! - [`chain`]: what the validator asks of the chain ([`chain::ValidatorChain`]), on the
//!   wallet's client or, in tests, an in-memory marketplace;
//! - [`offchain`]: proofs published off the chain, checked against the chain's public inputs
//!   with the deployment's verifying key, and asked of their hosts when missing;
//! - [`service`]: the loop (logs, proofs, anchoring, checks, batched accusations and
//!   settlements);
//! - [`metrics`]: its Prometheus counters.

pub mod chain;
pub mod challenge;
pub mod metrics;
pub mod offchain;
pub mod service;
pub mod state;
#[cfg(test)]
mod tests;

pub use metrics::ValidatorMetrics;
pub use offchain::{Checker, NoNet, ProofCheck, ProofNet};
pub use service::{PeriodReport, Validator, ValidatorConfig, ValidatorError};
