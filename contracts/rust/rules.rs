//! The marketplace's challenge and proof-requirement rule, computed here from a period's seed
//! so that deciding which slots owed a proof costs no call per slot (the validator's checks, the
//! node's expectations): challenge = keccak256(seed, slotId, period), required when
//! keccak256(challenge) mod proofProbability == 0 (see ProofPeriods.sol), in the periods after
//! the request started and the slot was filled, up to and including the last period that
//! overlaps the request ([`owes_proof`]), and when a started request settles ([`settles_at`]).
//! This module owns that rule on the Rust side; `tests/it/rules.rs` checks it against the
//! contract's own views on a local chain.

use alloy::primitives::{B256, U256, keccak256};

/// Bits of a block hash the contract drops when it stores a seed (flags share the word).
const SEED_SHIFT: usize = 66;

/// The seed of a period whose anchor block has hash `anchor_hash`.
pub fn seed_from_anchor(anchor_hash: B256) -> U256 {
    U256::from_be_bytes(anchor_hash.0) >> SEED_SHIFT
}

/// The challenge of a slot in a period.
pub fn challenge(seed: U256, slot_id: B256, period: u64) -> B256 {
    let mut words = [0u8; 96];
    words[..32].copy_from_slice(&seed.to_be_bytes::<32>());
    words[32..64].copy_from_slice(slot_id.as_slice());
    words[64..].copy_from_slice(&U256::from(period).to_be_bytes::<32>());
    keccak256(words)
}

/// The order of BN254's scalar field: public inputs are reduced modulo it.
pub const FIELD_R: U256 =
    alloy::primitives::uint!(21888242871839275222246405745257275088548364400416034343698204186575808495617_U256);

/// The entropy public input of a periodic proof of a slot in a period (the contract's
/// `entropyAt`): the challenge reduced modulo [`FIELD_R`].
pub fn entropy(seed: U256, slot_id: B256, period: u64) -> U256 {
    U256::from_be_bytes(challenge(seed, slot_id, period).0) % FIELD_R
}

/// Whether the challenge selects the slot (a proof is then required, if the period was anchored
/// in advance and the request runs).
pub fn selected(seed: U256, slot_id: B256, period: u64, probability: u32) -> bool {
    let c = challenge(seed, slot_id, period);
    U256::from_be_bytes(keccak256(c.as_slice()).0) % U256::from(probability.max(1)) == U256::ZERO
}

/// The marketplace's timing parameters that decide which periods owe proofs and when a request
/// settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofTimes {
    /// Seconds per period.
    pub period_length: u64,
    /// Seconds after a period during which its missing proofs can be accused.
    pub proof_timeout: u64,
    /// Seconds an accused host has to defend.
    pub response_window: u64,
}

/// The last period that overlaps a request ending at `ends_at`: proofs are due up to it.
pub fn last_period(ends_at: u64, period_length: u64) -> u64 {
    ends_at.saturating_sub(1) / period_length.max(1)
}

/// When a started request ending at `ends_at` settles (reads Finished): after the last period's
/// accusation window, the response window of an accusation made at its very end, and one more
/// response window in which to settle it (an accusation settled later only returns its bond).
pub fn settles_at(ends_at: u64, times: &ProofTimes) -> u64 {
    last_period(ends_at, times.period_length)
        .saturating_add(1)
        .saturating_mul(times.period_length.max(1))
        .saturating_add(times.proof_timeout)
        .saturating_add(times.response_window.saturating_mul(2))
}

/// Whether period `q` falls where the contract requires proofs of a slot (if the challenge
/// selects it): after the period the request started in and the one the slot was filled in (a
/// fill is that period's proof), up to the last period that overlaps the request.
pub fn owes_proof(q: u64, started_at: u64, filled_at: u64, ends_at: u64, period_length: u64) -> bool {
    let length = period_length.max(1);
    q > started_at / length && q > filled_at / length && q <= last_period(ends_at, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_one_selects_everything() {
        let seed = seed_from_anchor(B256::repeat_byte(7));
        let ids: Vec<B256> = (0..64u8).map(|i| keccak256([i])).collect();
        assert!(ids.iter().all(|id| selected(seed, *id, 5, 1)));
        let chosen = ids.iter().filter(|id| selected(seed, **id, 5, 4)).count();
        assert!((4..=30).contains(&chosen), "about a quarter: {chosen}");
        assert_ne!(challenge(seed, ids[0], 5), challenge(seed, ids[0], 6));
        assert_eq!(seed_from_anchor(B256::repeat_byte(0xff)), U256::MAX >> 66);
    }

    #[test]
    fn proofs_are_owed_through_the_last_period_that_overlaps_the_request() {
        // 10-second periods; started and filled at 25 (period 2), ends at 61 (in period 6)
        assert!(!owes_proof(2, 25, 25, 61, 10), "the fill's period");
        assert!(owes_proof(3, 25, 25, 61, 10));
        assert!(owes_proof(6, 25, 25, 61, 10), "the period the request ends in");
        assert!(!owes_proof(7, 25, 25, 61, 10), "after the last period");
        // ending exactly at a period's start: the period before is the last one
        assert_eq!(last_period(60, 10), 5);
        assert!(owes_proof(5, 25, 25, 60, 10) && !owes_proof(6, 25, 25, 60, 10));
        // a slot repaired in period 4 owes nothing for period 4
        assert!(!owes_proof(4, 25, 43, 61, 10) && owes_proof(5, 25, 43, 61, 10));
        let times = ProofTimes { period_length: 10, proof_timeout: 5, response_window: 5 };
        assert_eq!(settles_at(61, &times), 85);
        assert_eq!(settles_at(60, &times), 75);
    }
}
