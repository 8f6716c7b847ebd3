//! Choosing a code for a loss target: given how hosts fail and are replaced, how often the
//! chain asks for proofs and how many data slots a dataset needs, the fewest slots K + M whose
//! loss probability is at most the target, and then the laziest repair threshold that still
//! meets it (lazy repair rebuilds the same slots with fewer decodes).
//!
//! # What is modelled
//!
//! The chain frees a slot after `max_missed` consecutive missed proofs, one required every
//! `proof_interval` on average. The model folds those misses into one exponential detection
//! delay with mean `max_missed × proof_interval`, the whitepaper's own approximation ("similar to
//! multiplying MTBP by l1"); against the exact Erlang chain of [`crate::model`] it moves p_loss
//! by about 2 % either way (7+7 and 12+6 at l0 = 1 and 3, three misses eight hours apart).
//!
//! Proof intervals far below the horizon make the chain stiff: uniformisation needs about
//! horizon × M / interval steps (a year of one-minute proofs is half a million steps per parity
//! slot). The detection delay is therefore modelled as at least [`detection_floor`], which
//! keeps each solve near [`WORK_BUDGET`] state-steps. A longer delay only raises p_loss (a
//! property of the chain, tested in `model`), so the p_loss reported is an upper bound for the
//! real, faster detection; the floor is reported beside it.
//!
//! # Search
//!
//! K is the fewest data slots the dataset fits in: with slots of a fixed size, every slot costs
//! the same, so for a given total the most parity is the most durable. M is found by bisection
//! between 1 and `max_slots − K` at the most eager repair (l0 = 1); then l0 by bisection between
//! 1 and M. p_loss falls as M rises and rises with l0 (property tests in `model`), so each
//! bisection finds the boundary with about log2(range) solves.

use crate::ParamError;
use crate::model::{self, Params};

/// State-steps (states × uniformisation steps) one solve may take: about 30 ms of an optimised
/// build.
pub const WORK_BUDGET: f64 = 3.0e7;

/// What the model assumes of the network and the chain. Times are in hours.
#[derive(Debug, Clone, PartialEq)]
pub struct Assumptions {
    /// Mean time to failure of a host.
    pub mttf_hours: f64,
    /// Mean time to repair once repair has started.
    pub mttr_hours: f64,
    /// Mean time between required proofs of one slot.
    pub proof_interval_hours: f64,
    /// Consecutive missed proofs after which a slot is freed.
    pub max_missed: u32,
    /// The horizon of the loss probability.
    pub horizon_hours: f64,
}

/// What the dataset and the proof allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The fewest data slots the dataset fits in (≥ 1).
    pub min_k: u32,
    /// The most slots K + M a request may have (> `min_k`).
    pub max_slots: u32,
}

/// A chosen code and what the model predicts of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Data slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
    /// Lost slots that accumulate before repair starts.
    pub repair_threshold: u32,
    /// The model's loss probability over the horizon (an upper bound, see the module's notes).
    pub p_loss: f64,
    /// The detection delay the model used: `max_missed × proof_interval`, or the floor.
    pub detection_hours: f64,
}

/// Why no code was chosen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChoiceError {
    /// An assumption, a bound or the target is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// No code within the bounds meets the target; `best` is the most durable one there is.
    #[error(
        "no code of at most {max_slots} slots reaches a loss probability of {target:e}; the best is K = {k}, M = {m} \
         with repair at the first loss, at {p:.3e}",
        k = best.k, m = best.m, p = best.p_loss
    )]
    Unreachable {
        /// The target asked for.
        target: f64,
        /// The bound on K + M.
        max_slots: u32,
        /// The most durable code within the bounds.
        best: Choice,
    },
}

/// The shortest detection delay modelled for M parity slots over `horizon_hours`, so that a
/// solve stays within [`WORK_BUDGET`]: with (M + 1)(M + 2)/2 states and a largest rate of about
/// M / delay, uniformisation takes about M · horizon / delay steps.
pub fn detection_floor(m: u32, horizon_hours: f64) -> f64 {
    let m = f64::from(m.max(1));
    let states = (m + 1.0) * (m + 2.0) / 2.0;
    let steps = (WORK_BUDGET / states).max(1.0);
    m * horizon_hours / steps
}

fn params(a: &Assumptions, k: u32, m: u32, repair_threshold: u32) -> Params {
    let folded = a.proof_interval_hours * f64::from(a.max_missed);
    Params {
        k,
        m,
        mttf_hours: a.mttf_hours,
        mttr_hours: a.mttr_hours,
        mtbp_hours: folded.max(detection_floor(m, a.horizon_hours)),
        repair_threshold,
        max_missed: 1,
        horizon_hours: a.horizon_hours,
    }
}

fn evaluate(a: &Assumptions, k: u32, m: u32, repair_threshold: u32) -> Result<Choice, ParamError> {
    let p = params(a, k, m, repair_threshold);
    let p_loss = model::p_loss(&p)?;
    Ok(Choice { k, m, repair_threshold, p_loss, detection_hours: p.mtbp_hours })
}

/// The fewest slots, then the laziest repair, meeting `target` (a loss probability over the
/// horizon, in (0, 1)); see the module's notes.
pub fn choose(target: f64, a: &Assumptions, bounds: Bounds) -> Result<Choice, ChoiceError> {
    if !(target > 0.0 && target < 1.0) {
        return Err(ParamError::OutOfRange { name: "target", value: target, reason: "must be in (0, 1)" }.into());
    }
    if !(a.proof_interval_hours.is_finite() && a.proof_interval_hours > 0.0) {
        return Err(ParamError::OutOfRange {
            name: "proof_interval_hours",
            value: a.proof_interval_hours,
            reason: "must be positive and finite",
        }
        .into());
    }
    if a.max_missed < 1 {
        return Err(ParamError::OutOfRange { name: "max_missed", value: 0.0, reason: "must be at least 1" }.into());
    }
    if bounds.min_k < 1 {
        return Err(ParamError::OutOfRange { name: "min_k", value: 0.0, reason: "must be at least 1" }.into());
    }
    if bounds.max_slots <= bounds.min_k {
        return Err(ParamError::OutOfRange {
            name: "max_slots",
            value: f64::from(bounds.max_slots),
            reason: "must leave room for at least one parity slot beside the data slots",
        }
        .into());
    }
    let k = bounds.min_k;
    let max_m = bounds.max_slots - k;
    let best = evaluate(a, k, max_m, 1)?;
    if best.p_loss > target {
        return Err(ChoiceError::Unreachable { target, max_slots: bounds.max_slots, best });
    }
    // Fewest parity slots at l0 = 1: `meets` holds at hi, not below lo.
    let (mut lo, mut hi, mut found) = (1, max_m, best);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let c = evaluate(a, k, mid, 1)?;
        if c.p_loss <= target {
            hi = mid;
            found = c;
        } else {
            lo = mid + 1;
        }
    }
    if found.m != hi {
        found = evaluate(a, k, hi, 1)?;
    }
    // Laziest repair at that M.
    let m = found.m;
    let (mut lo, mut hi) = (1, m);
    let mut lazy = found;
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let c = evaluate(a, k, m, mid)?;
        if c.p_loss <= target {
            lo = mid;
            lazy = c;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lazy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily() -> Assumptions {
        Assumptions {
            mttf_hours: 8760.0,
            mttr_hours: 24.0,
            proof_interval_hours: 24.0,
            max_missed: 1,
            horizon_hours: 8760.0,
        }
    }

    /// Every smaller M (at l0 = 1) and every lazier l0 (at the chosen M) misses the target.
    fn assert_minimal(target: f64, a: &Assumptions, c: &Choice) {
        assert!(c.p_loss <= target, "{c:?}");
        for m in 1..c.m {
            let p = evaluate(a, c.k, m, 1).expect("valid").p_loss;
            assert!(p > target, "M = {m} already meets {target:e}: {p:e}");
        }
        if c.repair_threshold < c.m {
            let p = evaluate(a, c.k, c.m, c.repair_threshold + 1).expect("valid").p_loss;
            assert!(p > target, "l0 = {} already meets {target:e}: {p:e}", c.repair_threshold + 1);
        }
    }

    #[test]
    fn nine_nines_with_daily_proofs_agrees_with_the_table_setting() {
        // With K fixed at 7 and daily proofs the Table 1 setting holds: 7 + 7 at l0 = 1 meets
        // 1e-9 (2.8e-10) and 7 + 6 does not.
        let c = choose(1e-9, &daily(), Bounds { min_k: 7, max_slots: 64 }).expect("reachable");
        assert_eq!((c.k, c.m), (7, 7), "{c:?}");
        assert_minimal(1e-9, &daily(), &c);
        assert_eq!(c.detection_hours, 24.0);
    }

    #[test]
    fn a_loose_target_buys_lazier_repair() {
        let a = daily();
        let c = choose(1e-3, &a, Bounds { min_k: 4, max_slots: 32 }).expect("reachable");
        assert_minimal(1e-3, &a, &c);
        let strict = choose(1e-9, &a, Bounds { min_k: 4, max_slots: 32 }).expect("reachable");
        assert_minimal(1e-9, &a, &strict);
        assert!(strict.m > c.m, "{strict:?} vs {c:?}");
    }

    #[test]
    fn fast_proofs_are_floored_and_the_floor_is_conservative() {
        // A proof every 6 seconds, three misses: the floor applies, and the p_loss reported is
        // at least that of the (slower to solve) unfloored chain.
        let a = Assumptions { proof_interval_hours: 6.0 / 3600.0, max_missed: 3, ..daily() };
        let c = choose(1e-2, &a, Bounds { min_k: 2, max_slots: 8 }).expect("reachable");
        assert_minimal(1e-2, &a, &c);
        assert!(c.detection_hours >= 3.0 * 6.0 / 3600.0);
        assert!(c.detection_hours <= 1.0, "{c:?}");
        let exact = Params { mtbp_hours: 3.0 * 6.0 / 3600.0, ..params(&a, c.k, c.m, c.repair_threshold) };
        let p = model::p_loss(&exact).expect("solvable at this size");
        assert!(p <= c.p_loss, "{p:e} > {:e}", c.p_loss);
        assert!(p > c.p_loss / 2.0, "the floor costs little here: {p:e} vs {:e}", c.p_loss);
    }

    #[test]
    fn an_unreachable_target_reports_the_best_code() {
        let a = daily();
        match choose(1e-12, &a, Bounds { min_k: 2, max_slots: 4 }) {
            Err(ChoiceError::Unreachable { best, max_slots: 4, .. }) => {
                assert_eq!((best.k, best.m, best.repair_threshold), (2, 2, 1));
                assert!(best.p_loss > 1e-12);
                let text = ChoiceError::Unreachable { target: 1e-12, max_slots: 4, best }.to_string();
                assert!(text.contains("K = 2, M = 2"), "{text}");
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let a = daily();
        let b = Bounds { min_k: 2, max_slots: 8 };
        for target in [0.0, 1.0, -1.0, f64::NAN] {
            assert!(matches!(choose(target, &a, b), Err(ChoiceError::Param(_))), "{target}");
        }
        assert!(choose(1e-3, &a, Bounds { min_k: 0, max_slots: 8 }).is_err());
        assert!(choose(1e-3, &a, Bounds { min_k: 8, max_slots: 8 }).is_err());
        assert!(choose(1e-3, &Assumptions { max_missed: 0, ..a.clone() }, b).is_err());
        assert!(choose(1e-3, &Assumptions { proof_interval_hours: 0.0, ..a.clone() }, b).is_err());
        assert!(choose(1e-3, &Assumptions { mttf_hours: -1.0, ..a }, b).is_err());
    }
}
