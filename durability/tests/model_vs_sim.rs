//! The Markov model and the Monte-Carlo simulator agree where both apply: exponential detection,
//! independent failures, loss probabilities high enough to measure (10^-3 to 10^-1). The model's
//! value must lie in the simulator's 95 % Wilson interval.

use durability::model::{self, Params};
use durability::sim::{SimParams, simulate_parallel};

fn both(k: u32, m: u32, mttf: f64, mttr: f64, mtbp: f64, l0: u32, max_missed: u32) -> (Params, SimParams) {
    let horizon = 8760.0;
    let model = Params {
        k,
        m,
        mttf_hours: mttf,
        mttr_hours: mttr,
        mtbp_hours: mtbp,
        repair_threshold: l0,
        max_missed,
        horizon_hours: horizon,
    };
    let sim = SimParams::from(&model);
    (model, sim)
}

#[test]
fn model_lies_in_the_simulators_interval_at_three_parameter_sets() {
    let sets = [
        // (K, M, MTTF h, MTTR h, MTBP h, l0, missed proofs)
        (4, 2, 8760.0, 24.0, 24.0, 2, 1),
        (3, 3, 2190.0, 48.0, 24.0, 2, 1),
        (5, 3, 8760.0, 24.0, 48.0, 2, 2),
    ];
    for (i, &(k, m, mttf, mttr, mtbp, l0, missed)) in sets.iter().enumerate() {
        let (mp, sp) = both(k, m, mttf, mttr, mtbp, l0, missed);
        let predicted = model::p_loss(&mp).expect("model");
        let run = simulate_parallel(&sp, 4_000_000, 1000 + i as u64, 2).expect("sim");
        eprintln!(
            "set {i}: model {predicted:.5}, simulated {:.5} in [{:.5}, {:.5}]",
            run.p_loss, run.ci95.0, run.ci95.1
        );
        assert!((1e-3..=1e-1).contains(&predicted), "set {i}: p_loss {predicted} outside the measurable range");
        assert!(run.ci95.0 <= predicted && predicted <= run.ci95.1, "set {i}: model {predicted} not in {:?}", run.ci95);
    }
}
