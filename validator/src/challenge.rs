//! The validator's share of the proof rule: the rule itself (challenges, which periods owe
//! proofs, when a request settles) lives in [`contracts::rules`] and is re-exported here; this
//! module adds only the validation groups that split the slots between validators.

use alloy::primitives::{B256, U256};
pub use contracts::rules::{ProofTimes, challenge, last_period, owes_proof, seed_from_anchor, selected, settles_at};

/// Whether a slot belongs to validation group `index` of `groups`.
pub fn in_group(slot_id: B256, groups: u64, index: u64) -> bool {
    groups <= 1 || U256::from_be_bytes(slot_id.0) % U256::from(groups) == U256::from(index)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::keccak256;

    use super::*;

    #[test]
    fn groups_partition_the_slots() {
        let ids: Vec<B256> = (0..64u8).map(|i| keccak256([i])).collect();
        for id in &ids {
            assert_eq!((0..3).filter(|g| in_group(*id, 3, *g)).count(), 1);
        }
        assert!(ids.iter().all(|id| in_group(*id, 1, 0)));
    }
}
