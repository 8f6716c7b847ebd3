//! The contract's proof requirement, computed here from a period's seed, so that deciding which
//! slots owed a proof costs no call per slot: challenge = keccak256(seed, slotId, period),
//! required when keccak256(challenge) mod proofProbability == 0 (see ProofPeriods.sol).

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

/// Whether the challenge selects the slot (a proof is then required, if the period was anchored
/// in advance and the request runs).
pub fn selected(seed: U256, slot_id: B256, period: u64, probability: u32) -> bool {
    let c = challenge(seed, slot_id, period);
    U256::from_be_bytes(keccak256(c.as_slice()).0) % U256::from(probability.max(1)) == U256::ZERO
}

/// Whether a slot belongs to validation group `index` of `groups`.
pub fn in_group(slot_id: B256, groups: u64, index: u64) -> bool {
    groups <= 1 || U256::from_be_bytes(slot_id.0) % U256::from(groups) == U256::from(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_one_selects_everything_and_groups_partition() {
        let seed = seed_from_anchor(B256::repeat_byte(7));
        let ids: Vec<B256> = (0..64u8).map(|i| keccak256([i])).collect();
        assert!(ids.iter().all(|id| selected(seed, *id, 5, 1)));
        let chosen = ids.iter().filter(|id| selected(seed, **id, 5, 4)).count();
        assert!((4..=30).contains(&chosen), "about a quarter: {chosen}");
        for id in &ids {
            assert_eq!((0..3).filter(|g| in_group(*id, 3, *g)).count(), 1);
        }
        assert_ne!(challenge(seed, ids[0], 5), challenge(seed, ids[0], 6));
        assert_eq!(seed_from_anchor(B256::repeat_byte(0xff)), U256::MAX >> 66);
    }
}
