//! The validator's Prometheus metrics: slots watched, periods checked, proofs received, verified,
//! found invalid, fetched on request and missed, accusations made, refused, lost (dismissed) and
//! settled, marks (accusations won: settled as missed proofs), and the rewards the marks earned
//! (token base units, as a float gauge since the amounts outgrow 64 bits).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of one validator.
#[derive(Debug)]
pub struct ValidatorMetrics {
    registry: Registry,
    /// Filled slots of this validator's group it watches now.
    pub slots_watched: Gauge,
    /// Periods checked for missed proofs.
    pub periods_checked: Counter,
    /// Required proofs found missing.
    pub proofs_missed: Counter,
    /// Missed proofs this validator got on chain (its accusations settled undefended).
    pub marks: Counter,
    /// Accusations the chain refused (another validator was first, or the window closed).
    pub marks_refused: Counter,
    /// Accusations of missing proofs made by this validator (each with a bond).
    pub accusations: Counter,
    /// Rewards earned by marks so far, in token base units.
    pub rewards: Gauge<f64, AtomicU64>,
    /// Proofs received by broadcast (of a proof's form; checked or not).
    pub proofs_received: Counter,
    /// Proofs checked valid off the chain (broadcast or fetched).
    pub proofs_verified: Counter,
    /// Proofs checked and found wrong (other public inputs than the chain's, or a failed pairing).
    pub proofs_invalid: Counter,
    /// Valid proofs fetched from their host on request (the broadcast had not reached us).
    pub proofs_fetched: Counter,
    /// Proofs asked of their hosts (missing after the grace time).
    pub proofs_asked: Counter,
    /// Accusations of this validator dismissed: the host defended with its proof (lost).
    pub accusations_lost: Counter,
    /// Accusations of this validator settled (as a missed proof, or only its bond returned).
    pub accusations_settled: Counter,
}

impl ValidatorMetrics {
    /// A fresh set in its own registry, names prefixed `vellum_validator_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vellum_validator");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let slots_watched = Gauge::default();
        registry.register("slots_watched", "Filled slots of this validator's group", slots_watched.clone());
        let periods_checked = counter(&mut registry, "periods_checked", "Periods checked for missed proofs");
        let proofs_missed = counter(&mut registry, "proofs_missed", "Required proofs found missing");
        let marks = counter(&mut registry, "marks", "Accusations of this validator settled as missed proofs");
        let marks_refused = counter(&mut registry, "marks_refused", "Accusations the chain refused");
        let accusations = counter(&mut registry, "accusations", "Missing proofs accused by this validator");
        let rewards = Gauge::<f64, AtomicU64>::default();
        registry.register("rewards", "Rewards earned by marks, token base units", rewards.clone());
        let proofs_received = counter(&mut registry, "proofs_received", "Proofs received by broadcast");
        let proofs_verified = counter(&mut registry, "proofs_verified", "Proofs checked valid off the chain");
        let proofs_invalid = counter(&mut registry, "proofs_invalid", "Proofs checked and found wrong");
        let proofs_fetched =
            counter(&mut registry, "proofs_fetched", "Valid proofs fetched from their host on request");
        let proofs_asked = counter(&mut registry, "proofs_asked", "Missing proofs asked of their hosts");
        let accusations_lost =
            counter(&mut registry, "accusations_lost", "Accusations dismissed because the host defended");
        let accusations_settled = counter(&mut registry, "accusations_settled", "Accusations settled");
        Self {
            registry,
            slots_watched,
            periods_checked,
            proofs_missed,
            marks,
            marks_refused,
            accusations,
            rewards,
            proofs_received,
            proofs_verified,
            proofs_invalid,
            proofs_fetched,
            proofs_asked,
            accusations_lost,
            accusations_settled,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for ValidatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_value() {
        let m = ValidatorMetrics::new();
        m.slots_watched.set(12);
        m.marks.inc_by(3);
        m.rewards.set(1.5e21);
        let text = m.render();
        assert!(text.contains("vellum_validator_slots_watched 12"), "{text}");
        assert!(text.contains("vellum_validator_marks_total 3"), "{text}");
        assert!(
            text.contains("vellum_validator_rewards 1.5e21")
                || text.contains("vellum_validator_rewards 1500000000000000000000"),
            "{text}"
        );
        assert!(text.contains("vellum_validator_marks_refused_total 0"), "{text}");
        assert!(text.contains("vellum_validator_accusations_total 0"), "{text}");
    }
}
