//! Whether the chain endpoint answers, and the back-off between attempts while it does not.
//! The transition to unreachable is logged once as a warning (with the error), the return once,
//! so an outage of an hour is two lines, not thousands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tracing::{info, warn};

const LOG: &str = "vellum::chain";

/// First pause after a failed attempt; it doubles up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The endpoint's state as the node's calls see it.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    failures: AtomicU64,
}

impl Health {
    /// A call failed for a reason that says nothing about the call itself (connection refused,
    /// timeout, a 5xx from a gateway).
    pub fn failed(&self, endpoint: &str, error: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            warn!(target: LOG, %endpoint, %error, "chain endpoint unreachable; the node keeps serving data and retries");
        }
    }

    /// A call got an answer.
    pub fn answered(&self, endpoint: &str) {
        if self.down.swap(false, Ordering::AcqRel) {
            info!(target: LOG, %endpoint, "chain endpoint reachable again");
        }
    }

    /// Whether the last call failed to reach the endpoint.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Calls that failed to reach the endpoint since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// The pause before attempt `attempt` (0-based; attempt 0 has none).
pub fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    FIRST_BACKOFF.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn health_follows_failures_and_answers() {
        let h = Health::default();
        assert!(!h.is_down());
        h.failed("x", &"refused");
        h.failed("x", &"refused");
        assert!(h.is_down());
        assert_eq!(h.failures(), 2);
        h.answered("x");
        assert!(!h.is_down());
    }
}
