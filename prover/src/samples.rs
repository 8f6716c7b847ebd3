//! How many samples a proof needs: a host that lost a fraction `f` of its cells passes one proof
//! with probability at most `(1 − f)^n` (each sample is uniform over the slot's cells and
//! independent of what the host chose to lose, since the indices come from the challenge).

/// The chance that a host that lost fraction `lost` of its cells passes a proof of `samples`
/// samples: `(1 − lost)^samples`.
pub fn pass_probability(lost: f64, samples: usize) -> f64 {
    (1.0 - lost.clamp(0.0, 1.0)).powi(i32::try_from(samples).unwrap_or(i32::MAX))
}

/// The fewest samples that bring a host that lost fraction `lost` below passing probability
/// `target`; `None` when no number does (nothing lost, or a target of 0 or above 1).
pub fn samples_needed(lost: f64, target: f64) -> Option<usize> {
    if !(lost > 0.0 && lost <= 1.0 && target > 0.0 && target < 1.0) {
        return None;
    }
    if lost == 1.0 {
        return Some(1);
    }
    let n = (target.ln() / (1.0 - lost).ln()).ceil();
    Some(n.max(1.0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_for_common_targets() {
        // 1 % lost, caught with probability 99 %: 459 samples; 5 % lost: 90.
        assert_eq!(samples_needed(0.01, 0.01), Some(459));
        assert_eq!(samples_needed(0.05, 0.01), Some(90));
        assert!(pass_probability(0.05, 90) <= 0.01 && pass_probability(0.05, 89) > 0.01);
        assert_eq!(samples_needed(0.0, 0.01), None);
        assert_eq!(samples_needed(0.1, 1.5), None);
        assert_eq!(samples_needed(1.0, 0.5), Some(1));
    }
}
