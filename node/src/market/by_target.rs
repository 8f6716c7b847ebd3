//! Storage requests by target: from `durability` (a loss probability per year) to the code
//! (`nodes`, `tolerance`, `repairThreshold`) the durability model says meets it, within what the
//! dataset, the proof shape and the caller's `maxNodes` allow, with the prediction and the
//! assumptions kept for the purchase.
//!
//! The model's inputs come from the request and the chain: proofs are required every
//! `period × proofProbability` seconds on average and a slot is freed after the marketplace's
//! `maxMissedProofs`; host failure and repair times are the node's assumptions
//! (`--durability-mttf`, `--durability-mttr`).

use super::MarketError;
use super::types::{Code, DurabilityChoice, StorageRequestCreation};
use super::words::parse_amount;
use durability::choose::{self, Assumptions, Bounds, ChoiceError};

/// The most slots a request by target considers, whatever the proof shape addresses (the
/// model's own bound).
pub(super) const MAX_TARGET_SLOTS: u64 = durability::model::MAX_SLOTS as u64;

/// What the node assumes of hosts for requests by target. Times are in hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurabilityAssumptions {
    /// Mean time to failure of a host.
    pub mttf_hours: f64,
    /// Mean time from repair opening to the dataset's slots being whole again.
    pub mttr_hours: f64,
}

impl Default for DurabilityAssumptions {
    /// The reference whitepaper's pessimistic figures: a host lost once a year, a repair a day.
    fn default() -> Self {
        DurabilityAssumptions { mttf_hours: durability::HOURS_PER_YEAR, mttr_hours: 24.0 }
    }
}

/// What a request by target needs besides its body.
#[derive(Debug, Clone, Copy)]
pub(super) struct TargetContext {
    pub assumptions: DurabilityAssumptions,
    /// Bytes per slot (fixed by the proof shape).
    pub slot_size: u64,
    /// Slots the proof addresses.
    pub max_slots: u64,
    /// Seconds per proof period.
    pub period_seconds: u64,
    /// Consecutive missed proofs after which a slot is freed.
    pub max_missed_proofs: u64,
}

fn invalid(text: impl Into<String>) -> MarketError {
    MarketError::Invalid(text.into())
}

/// A request by target, checked: the target and its bounds (the model is not run yet).
#[derive(Debug, Clone)]
pub(super) struct Target {
    target: f64,
    assumptions: Assumptions,
    bounds: Bounds,
    max_missed_proofs: u64,
}

/// Whether the body asks by target, and if so checks it: `durability` in (0, 1), none of the
/// explicit fields beside it, `maxNodes` (when given) leaving room for a parity slot.
pub(super) fn check(
    body: &StorageRequestCreation,
    dataset_size: u64,
    cx: &TargetContext,
) -> Result<Option<Target>, MarketError> {
    let Some(target) = body.durability else {
        if body.max_nodes.is_some() {
            return Err(invalid("maxNodes goes with durability; with nodes and tolerance give the code itself"));
        }
        return Ok(None);
    };
    if body.nodes.is_some() || body.tolerance.is_some() || body.repair_threshold.is_some() {
        return Err(invalid(
            "give either durability (the node picks the code) or nodes, tolerance and repairThreshold, not both",
        ));
    }
    if !(target > 0.0 && target < 1.0) {
        return Err(invalid(format!(
            "durability ({target}) must be a loss probability per year between 0 and 1, e.g. 1e-9"
        )));
    }
    let probability = parse_amount(&body.proof_probability)
        .filter(|p| (1..=u128::from(u32::MAX)).contains(p))
        .ok_or_else(|| invalid("proofProbability must be a whole number from 1 (a proof every period)"))?;
    let min_k = dataset_size.div_ceil(cx.slot_size.max(1)).max(1);
    let shape_max = cx.max_slots.min(u64::from(u16::MAX)).min(MAX_TARGET_SLOTS);
    let max_slots = match body.max_nodes {
        Some(n) if n > shape_max => {
            return Err(invalid(format!("maxNodes ({n}) is beyond the {shape_max} slots a storage proof can address")));
        }
        Some(n) => n,
        None => shape_max,
    };
    if max_slots <= min_k {
        return Err(invalid(format!(
            "the dataset needs {min_k} data slot(s) of {} bytes, so at least {} slots with one parity slot; \
             at most {max_slots} are allowed",
            cx.slot_size,
            min_k + 1
        )));
    }
    let interval_hours = cx.period_seconds.max(1) as f64 * probability as f64 / 3600.0;
    let assumptions = Assumptions {
        mttf_hours: cx.assumptions.mttf_hours,
        mttr_hours: cx.assumptions.mttr_hours,
        proof_interval_hours: interval_hours,
        max_missed: u32::try_from(cx.max_missed_proofs.max(1)).unwrap_or(u32::MAX),
        horizon_hours: durability::HOURS_PER_YEAR,
    };
    // Both bounds are at most MAX_TARGET_SLOTS (128) here.
    let bounds = Bounds { min_k: min_k as u32, max_slots: max_slots as u32 };
    Ok(Some(Target { target, assumptions, bounds, max_missed_proofs: cx.max_missed_proofs }))
}

/// Runs the model (CPU work: about a second at most; call it off the async threads). A target
/// no code within the bounds meets is refused with the best there is.
pub(super) fn choose(t: &Target) -> Result<(Code, DurabilityChoice), MarketError> {
    let c = choose::choose(t.target, &t.assumptions, t.bounds).map_err(|e| match e {
        ChoiceError::Unreachable { .. } => invalid(format!(
            "{e} (assuming hosts fail once per {:.0} h, repairs take {:.0} h and lost slots are seen after {:.3} h); \
             raise maxNodes or proof frequency, or ask for less",
            t.assumptions.mttf_hours,
            t.assumptions.mttr_hours,
            t.assumptions.proof_interval_hours * f64::from(t.assumptions.max_missed),
        )),
        ChoiceError::Param(p) => invalid(format!("durability model: {p}")),
    })?;
    let code = Code {
        nodes: u64::from(c.k + c.m),
        tolerance: u64::from(c.m),
        repair_threshold: u64::from(c.repair_threshold),
    };
    let choice = DurabilityChoice {
        target: t.target,
        predicted_loss: c.p_loss,
        nodes: code.nodes,
        tolerance: code.tolerance,
        repair_threshold: code.repair_threshold,
        mttf_hours: t.assumptions.mttf_hours,
        mttr_hours: t.assumptions.mttr_hours,
        proof_interval_hours: t.assumptions.proof_interval_hours,
        max_missed_proofs: t.max_missed_proofs,
        detection_hours: c.detection_hours,
    };
    Ok((code, choice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: serde_json::Value) -> StorageRequestCreation {
        let mut b = serde_json::json!({
            "duration": 600, "pricePerBytePerSecond": "1", "proofProbability": "1",
            "collateralPerByte": "1", "expiry": 60,
        });
        if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(b).expect("a valid body")
    }

    fn cx() -> TargetContext {
        TargetContext {
            assumptions: DurabilityAssumptions::default(),
            slot_size: 4096,
            max_slots: 8,
            period_seconds: 6,
            max_missed_proofs: 3,
        }
    }

    fn refusal(extra: serde_json::Value, size: u64) -> String {
        match check(&body(extra), size, &cx()) {
            Err(MarketError::Invalid(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn explicit_requests_are_left_alone() {
        assert!(check(&body(serde_json::json!({"nodes": 4, "tolerance": 2})), 6000, &cx()).expect("ok").is_none());
        assert_eq!(body(serde_json::json!({})).explicit_code(), Code { nodes: 3, tolerance: 1, repair_threshold: 1 });
    }

    #[test]
    fn a_target_picks_the_fewest_slots_for_the_dataset() {
        let t = check(&body(serde_json::json!({"durability": 0.01})), 6000, &cx()).expect("ok").expect("by target");
        let (code, choice) = choose(&t).expect("reachable");
        // 6,000 bytes need two 4 KiB data slots; one parity slot loses 1.6 % a year, two meet 1 %.
        assert_eq!((code.nodes, code.tolerance), (4, 2), "{choice:?}");
        assert!(choice.predicted_loss <= 0.01);
        assert_eq!(choice.proof_interval_hours, 6.0 / 3600.0);
        assert_eq!(choice.max_missed_proofs, 3);
        let stricter = check(&body(serde_json::json!({"durability": 1e-9})), 6000, &cx()).expect("ok").expect("t");
        let (strict, _) = choose(&stricter).expect("reachable");
        assert!(strict.tolerance > code.tolerance);
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for bad in [serde_json::json!(0.0), serde_json::json!(1.0), serde_json::json!(-0.5), serde_json::json!(2)] {
            assert!(refusal(serde_json::json!({"durability": bad}), 6000).contains("between 0 and 1"), "{bad}");
        }
        assert!(refusal(serde_json::json!({"durability": 0.01, "nodes": 4}), 6000).contains("not both"));
        assert!(refusal(serde_json::json!({"durability": 0.01, "repairThreshold": 1}), 6000).contains("not both"));
        assert!(refusal(serde_json::json!({"maxNodes": 4}), 6000).contains("goes with durability"));
        assert!(refusal(serde_json::json!({"durability": 0.01, "maxNodes": 9}), 6000).contains("beyond"));
        assert!(refusal(serde_json::json!({"durability": 0.01, "maxNodes": 2}), 6000).contains("at least 3"));
        assert!(refusal(serde_json::json!({"durability": 0.01}), 8 * 4096).contains("at least 9"));
        assert!(
            refusal(serde_json::json!({"durability": 0.01, "proofProbability": "0"}), 6000)
                .contains("proofProbability")
        );
    }

    #[test]
    fn an_unreachable_target_is_refused_with_the_best_code() {
        let t = check(&body(serde_json::json!({"durability": 1e-30, "maxNodes": 5})), 6000, &cx())
            .expect("ok")
            .expect("by target");
        match choose(&t) {
            Err(MarketError::Invalid(text)) => {
                assert!(text.contains("K = 2, M = 3"), "{text}");
                assert!(text.contains("at most 5 slots"), "{text}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
