//! # Vellum durability
//!
//! How likely a dataset of K + M erasure-coded slots is to be lost within a horizon, given how
//! often hosts fail (MTTF), how long a repair takes (MTTR), how often slots are proven (MTBP),
//! and the lazy-repair threshold l0 (repair starts once l0 losses have been observed). See
//! `docs/design.md`, "Durability".
//!
//! - [`model`]: the reference whitepaper's continuous-time Markov chain over (lost, observed
//!   lost) slots, extended to a slot declared lost after several consecutive missed proofs,
//!   solved for the loss probability over a horizon.
//! - [`sim`]: a Monte-Carlo churn simulator of the same system, to check the model where both
//!   apply and to go where the chain cannot (correlated failures, repair traffic).
//!
//! Pure: no I/O, no clock, no global state.

pub mod model;
pub mod sim;

/// Bad parameters, refused with the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A parameter is out of its range.
    #[error("{name} = {value}: {reason}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// Its value, as given.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
}
