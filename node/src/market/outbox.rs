//! The host's published proofs (issue 15): every periodic proof it made for a required
//! (slot, period), kept until nobody can ask for it any more, so that a validator that missed the
//! broadcast can ask for it and an accusation can be answered without proving again. A proof of
//! period q is kept until its accusation can no longer be answered: the accusation window closes
//! at (q + 1)·periodLength + proofTimeout and the last answer is due a response window later.
//! The outbox is bounded: when full, the proofs of the oldest periods go first.

use std::collections::BTreeMap;

use alloy::primitives::B256;
use contracts::offchain::PublishedProof;

/// The outbox as the network serves it to proof requests.
pub(crate) struct Shared(pub(crate) std::sync::Arc<std::sync::Mutex<Outbox>>);

impl crate::net::proofs::ProofSource for Shared {
    fn proof(&self, slot_id: B256, period: u64) -> Option<PublishedProof> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(slot_id, period).copied()
    }
}

/// The proofs a host keeps for validators.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// By (period, slot), so that the oldest go first.
    proofs: BTreeMap<(u64, B256), PublishedProof>,
    limit: usize,
}

/// The marketplace's timing the outbox needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) period_length: u64,
    pub(crate) proof_timeout: u64,
    pub(crate) response_window: u64,
}

impl Windows {
    /// Until when (chain time) a proof of period `q` may still be asked for.
    pub(crate) fn needed_until(&self, q: u64) -> u64 {
        q.saturating_add(1)
            .saturating_mul(self.period_length)
            .saturating_add(self.proof_timeout)
            .saturating_add(self.response_window)
    }
}

impl Outbox {
    /// An outbox holding at most `limit` proofs.
    pub(crate) fn new(limit: usize) -> Self {
        Self { proofs: BTreeMap::new(), limit: limit.max(1) }
    }

    /// Keeps a proof (replacing one of the same slot and period).
    pub(crate) fn keep(&mut self, proof: PublishedProof) {
        self.proofs.insert((proof.period, proof.slot_id), proof);
        while self.proofs.len() > self.limit {
            self.proofs.pop_first();
        }
    }

    /// The proof of a slot for a period, if kept.
    pub(crate) fn get(&self, slot_id: B256, period: u64) -> Option<&PublishedProof> {
        self.proofs.get(&(period, slot_id))
    }

    /// Drops every proof nobody can ask for any more at chain time `now`.
    pub(crate) fn prune(&mut self, now: u64, windows: &Windows) {
        self.proofs.retain(|(q, _), _| now <= windows.needed_until(*q));
    }

    /// How many proofs are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.proofs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;

    fn proof(slot: u8, period: u64) -> PublishedProof {
        PublishedProof {
            slot_id: B256::repeat_byte(slot),
            period,
            slot_index: 0,
            dataset_root: B256::ZERO,
            entropy: U256::from(period),
            proof: [U256::from(slot); 8],
        }
    }

    const W: Windows = Windows { period_length: 10, proof_timeout: 5, response_window: 5 };

    #[test]
    fn a_proof_is_kept_until_its_accusation_can_no_longer_be_answered() {
        let mut out = Outbox::new(100);
        out.keep(proof(1, 3));
        assert_eq!(W.needed_until(3), 50);
        out.prune(50, &W);
        assert!(out.get(B256::repeat_byte(1), 3).is_some(), "an accusation at 45 may be answered until 50");
        out.prune(51, &W);
        assert!(out.get(B256::repeat_byte(1), 3).is_none());
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_periods_first() {
        let mut out = Outbox::new(3);
        for (slot, period) in [(1, 5), (2, 4), (3, 6), (4, 7)] {
            out.keep(proof(slot, period));
        }
        assert_eq!(out.len(), 3);
        assert!(out.get(B256::repeat_byte(2), 4).is_none(), "period 4 was the oldest");
        assert!(out.get(B256::repeat_byte(4), 7).is_some());
        // a proof made again for the same slot and period replaces, not adds
        out.keep(proof(4, 7));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn hostile_timings_do_not_overflow() {
        let w = Windows { period_length: u64::MAX, proof_timeout: u64::MAX, response_window: u64::MAX };
        assert_eq!(w.needed_until(u64::MAX), u64::MAX);
        let mut out = Outbox::new(2);
        out.keep(proof(1, u64::MAX));
        out.prune(u64::MAX, &w);
        assert_eq!(out.len(), 1);
    }
}
