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
//! - [`choose`]: from a loss target to a code and a repair threshold, within what a dataset
//!   and the proof allow (storage requests by target).
//!
//! Pure: no I/O, no clock, no global state.

pub mod choose;
pub mod model;
pub mod sim;

/// Hours in a year of 365 days (the reference's year).
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// Parses a duration written `1y`, `180d`, `24h`, `30m`, `45s` or as a bare number of hours,
/// into hours; it must be positive and finite.
pub fn parse_hours(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], c),
        _ => (text, 'h'),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a duration like 24h or 1y"))?;
    let hours = match unit {
        'y' => value * HOURS_PER_YEAR,
        'd' => value * 24.0,
        'h' => value,
        'm' => value / 60.0,
        's' => value / 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (y, d, h, m or s)")),
    };
    if !(hours.is_finite() && hours > 0.0) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(hours)
}

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
