//! The sponge that hashes a whole cell: Poseidon2 with t = 16, rate 15, capacity 1.
//!
//! - Lanes 0–14 are the rate, lane 15 the capacity. The capacity starts at the IV
//!   `n·2^64 + 16·2^16 + 15·2^8 + domain`, where `n` is the number of elements to absorb and
//!   `domain` a tag (below 256) naming what is hashed; the rate lanes start at zero.
//! - The elements are absorbed 15 at a time: each is added to its rate lane, then the state is
//!   permuted. A last, shorter block leaves its remaining rate lanes as they are (zero padding),
//!   which is unambiguous because `n` is in the IV; no input (`n = 0`) still gets one permutation.
//! - The hash is lane 0 after the last permutation.
//!
//! So a 2048-byte cell (67 elements) costs ⌈67/15⌉ = 5 permutations: 5 · 555 = 2,775 R1CS
//! constraints, against 34 · 240 = 8,160 for Codex's t = 3, rate-2 sponge. For a fixed cell size the
//! IV is a constant of the circuit.

use crate::arith::Fe;
use crate::poseidon2::POSEIDON2_T16;
use ark_bn254::Fr;

/// Width of the sponge's permutation.
pub const SPONGE_WIDTH: usize = 16;
/// Elements absorbed per permutation.
pub const SPONGE_RATE: usize = 15;
/// The capacity lane.
pub const SPONGE_CAPACITY_LANE: usize = 15;

/// Domain tag of cell hashing (packed bytes; the leaves of slot trees).
pub const DOMAIN_CELL: u8 = 1;
/// Domain tag reserved for deriving sample indices in the storage proof.
pub const DOMAIN_SAMPLE_INDEX: u8 = 2;

/// The initial capacity value for `n_elements` elements under `domain`.
pub fn sponge_iv(domain: u8, n_elements: u64) -> Fr {
    let low = u64::from(domain) | ((SPONGE_RATE as u64) << 8) | ((SPONGE_WIDTH as u64) << 16);
    Fr::from(((n_elements as u128) << 64) | low as u128)
}

/// Hashes field elements under `domain` with the sponge described in the module documentation.
pub fn hash_elements(domain: u8, elements: &[Fr]) -> Fr {
    let mut sponge = Sponge::new(domain, elements.len() as u64);
    for e in elements {
        sponge.absorb(Fe::from_fr(e));
    }
    sponge.finish()
}

/// The sponge state while absorbing (lazily reduced elements).
pub(crate) struct Sponge {
    state: [Fe; SPONGE_WIDTH],
    /// Rate lanes filled since the last permutation.
    filled: usize,
    /// Whether anything has been permuted yet.
    permuted: bool,
}

impl Sponge {
    /// A sponge that will absorb exactly `n_elements` elements under `domain`.
    pub(crate) fn new(domain: u8, n_elements: u64) -> Sponge {
        let mut state = [Fe::ZERO; SPONGE_WIDTH];
        state[SPONGE_CAPACITY_LANE] = Fe::from_fr(&sponge_iv(domain, n_elements));
        Sponge { state, filled: 0, permuted: false }
    }

    /// Absorbs one element.
    #[inline]
    pub(crate) fn absorb(&mut self, e: Fe) {
        self.state[self.filled] = self.state[self.filled].add(e);
        self.filled += 1;
        if self.filled == SPONGE_RATE {
            POSEIDON2_T16.permute_fe(&mut self.state);
            self.filled = 0;
            self.permuted = true;
        }
    }

    /// Permutes any pending block and returns lane 0.
    pub(crate) fn finish(mut self) -> Fr {
        if self.filled > 0 || !self.permuted {
            POSEIDON2_T16.permute_fe(&mut self.state);
        }
        self.state[0].to_fr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Zero;

    /// The sponge written out block by block on `Fr`, as an oracle.
    fn oracle(domain: u8, elements: &[Fr]) -> Fr {
        let mut state = [Fr::zero(); 16];
        state[15] = sponge_iv(domain, elements.len() as u64);
        let blocks: Vec<&[Fr]> = if elements.is_empty() { vec![&[]] } else { elements.chunks(15).collect() };
        for block in blocks {
            for (s, e) in state.iter_mut().zip(block) {
                *s += e;
            }
            POSEIDON2_T16.permute(&mut state);
        }
        state[0]
    }

    #[test]
    fn matches_oracle_around_block_boundaries() {
        for n in [0usize, 1, 2, 14, 15, 16, 29, 30, 31, 67, 75, 76] {
            let elements: Vec<Fr> = (0..n).map(|i| Fr::from(i as u64 * 1_000_003 + 1)).collect();
            assert_eq!(hash_elements(DOMAIN_CELL, &elements), oracle(DOMAIN_CELL, &elements), "n = {n}");
        }
    }

    #[test]
    fn iv_separates_length_and_domain() {
        let a = vec![Fr::from(9u64); 14];
        let mut b = a.clone();
        b.push(Fr::zero()); // same blocks after zero padding, different length
        assert_ne!(hash_elements(DOMAIN_CELL, &a), hash_elements(DOMAIN_CELL, &b));
        assert_ne!(hash_elements(DOMAIN_CELL, &a), hash_elements(DOMAIN_SAMPLE_INDEX, &a));
        assert_eq!(sponge_iv(DOMAIN_CELL, 67), Fr::from((67u128 << 64) | 0x10_0f01));
    }
}
