//! The Poseidon2 permutation over BN254 Fr with the x^5 S-box and the reference (HorizenLabs)
//! parameters, at the widths t = 3, 8, 12 and 16.
//!
//! Round structure (Poseidon2 paper; HorizenLabs reference code): the external linear layer M_E
//! once; 4 full rounds (add a constant to every lane, x^5 on every lane, M_E); R_P partial rounds
//! (add a constant to lane 0, x^5 on lane 0, M_I); 4 more full rounds. No feed-forward.
//!
//! - M_E at t = 3 is circ(2, 1, 1). At t = 4k it is the block matrix with 2·M4 on the diagonal and
//!   M4 elsewhere, M4 = `[[5,7,1,3],[4,6,1,1],[1,3,5,7],[1,1,4,6]]`: computed as M4 on each 4-lane
//!   chunk followed by adding the column sums across chunks; additions and doublings only.
//! - M_I = J + diag(d) (J the all-ones matrix, d = `internal_diag_m1`): y_i = d_i·x_i + Σ x_j. At
//!   t = 3, d = (1, 1, 2) and the layer is additions only; wider widths cost t multiplications.
//!
//! R1CS cost of one permutation (x^5 = 3 constraints, linear layers free): 3·(8·t + R_P), i.e.
//! 240 (t = 3), 363 (t = 8), 459 (t = 12), 555 (t = 16).
//!
//! The native code runs on the lazily reduced arithmetic of `arith.rs`; a plain ark-ff
//! version built from explicit matrices checks it in the tests.

mod t12;
mod t16;
mod t3;
mod t8;

#[cfg(test)]
mod reference;

use crate::arith::Fe;
use ark_bn254::Fr;

pub use t3::POSEIDON2_T3;
pub use t8::POSEIDON2_T8;
pub use t12::POSEIDON2_T12;
pub use t16::POSEIDON2_T16;

/// Number of full rounds (half before, half after the partial rounds) at every width.
pub const FULL_ROUNDS: usize = 8;

/// The constants of one Poseidon2 instance of width `T`. Only the instances in this module exist
/// ([`POSEIDON2_T3`], [`POSEIDON2_T8`], [`POSEIDON2_T12`], [`POSEIDON2_T16`]); the fields are public
/// so that the R1CS gadget can use exactly the same values.
#[non_exhaustive]
#[derive(Debug)]
pub struct Poseidon2Params<const T: usize> {
    /// Full-round constants: rows 0–3 for the first four full rounds, rows 4–7 for the last four.
    pub external_rc: [[Fr; T]; FULL_ROUNDS],
    /// Partial-round constants, added to lane 0; their count is R_P.
    pub internal_rc: &'static [Fr],
    /// d_i = μ_i − 1, the internal matrix's diagonal minus one.
    pub internal_diag_m1: [Fr; T],
}

impl<const T: usize> Poseidon2Params<T> {
    /// The number of partial rounds, R_P.
    pub fn partial_rounds(&self) -> usize {
        self.internal_rc.len()
    }

    /// R1CS constraints of one permutation when written with x^5 as three multiplications.
    pub fn r1cs_constraints(&self) -> usize {
        3 * (FULL_ROUNDS * T + self.partial_rounds())
    }

    /// Applies the permutation to `state` in place.
    pub fn permute(&self, state: &mut [Fr; T]) {
        let mut x = state.map(|v| Fe::from_fr(&v));
        self.permute_fe(&mut x);
        *state = x.map(Fe::to_fr);
    }

    /// Returns the permutation of `state`.
    pub fn permutation(&self, mut state: [Fr; T]) -> [Fr; T] {
        self.permute(&mut state);
        state
    }

    /// The permutation on lazily reduced elements (inputs and outputs below 2p).
    ///
    /// The code is laid out for instruction-level parallelism, since a Montgomery product is a
    /// long dependency chain: full rounds take each S-box step across all lanes at once, and
    /// partial rounds spread the independent lane products of M_I between the three dependent
    /// steps of lane 0's S-box.
    #[inline]
    pub(crate) fn permute_fe(&self, x: &mut [Fe; T]) {
        const { assert!(T == 3 || (T >= 4 && T.is_multiple_of(4)), "Poseidon2 width must be 3 or a multiple of 4") };
        external_layer(x);
        for rc in &self.external_rc[..FULL_ROUNDS / 2] {
            full_round(x, rc);
        }
        for rc in self.internal_rc {
            if T == 3 {
                x[0] = x[0].add(Fe::from_fr(rc)).pow5();
                internal_layer_t3(x);
            } else {
                partial_round(x, Fe::from_fr(rc), &self.internal_diag_m1);
            }
        }
        for rc in &self.external_rc[FULL_ROUNDS / 2..] {
            full_round(x, rc);
        }
    }
}

/// Adds the round constants, takes x^5 on every lane, then M_E.
#[inline(always)]
fn full_round<const T: usize>(x: &mut [Fe; T], rc: &[Fr; T]) {
    for (v, c) in x.iter_mut().zip(rc) {
        *v = v.add(Fe::from_fr(c)).pow5();
    }
    external_layer(x);
}

/// One partial round for t >= 4: x0 <- (x0 + c)^5, then M_I = J + diag(d), i.e.
/// y_i = d_i·x_i + Σ x_j.
#[inline(always)]
fn partial_round<const T: usize>(x: &mut [Fe; T], c: Fe, diag_m1: &[Fr; T]) {
    x[0] = x[0].add(c).pow5();
    let mut s = x[0];
    for v in &x[1..] {
        s = s.add(*v);
    }
    for (v, d) in x.iter_mut().zip(diag_m1) {
        *v = v.mul(Fe::from_fr(d)).add(s);
    }
}

/// M_I at t = 3: J + diag(1, 1, 2), additions only.
#[inline(always)]
fn internal_layer_t3<const T: usize>(x: &mut [Fe; T]) {
    let s = x[0].add(x[1]).add(x[2]);
    x[0] = x[0].add(s);
    x[1] = x[1].add(s);
    x[2] = x[2].double().add(s);
}

/// M_E (see the module documentation).
#[inline(always)]
fn external_layer<const T: usize>(x: &mut [Fe; T]) {
    if T == 3 {
        let s = x[0].add(x[1]).add(x[2]);
        for v in x.iter_mut() {
            *v = v.add(s);
        }
        return;
    }
    for j in 0..T / 4 {
        m4(x, 4 * j);
    }
    if T > 4 {
        let mut sums = [x[0], x[1], x[2], x[3]];
        for j in 1..T / 4 {
            for (l, s) in sums.iter_mut().enumerate() {
                *s = s.add(x[4 * j + l]);
            }
        }
        for (i, v) in x.iter_mut().enumerate() {
            *v = v.add(sums[i % 4]);
        }
    }
}

/// M4 on lanes `o..o+4`, as a chain of 8 additions and 6 doublings (rows 5A+7B+C+3D,
/// 4A+6B+C+D, A+3B+5C+7D, A+B+4C+6D).
#[inline(always)]
fn m4<const T: usize>(x: &mut [Fe; T], o: usize) {
    let (a, b, c, d) = (x[o], x[o + 1], x[o + 2], x[o + 3]);
    let ab = a.add(b); // A + B
    let cd = c.add(d); // C + D
    let u = b.double().add(cd); // 2B + C + D
    let v = d.double().add(ab); // A + B + 2D
    let row3 = cd.double().double().add(v); // A + B + 4C + 6D
    let row1 = ab.double().double().add(u); // 4A + 6B + C + D
    x[o] = v.add(row1); // 5A + 7B + C + 3D
    x[o + 1] = row1;
    x[o + 2] = u.add(row3); // A + 3B + 5C + 7D
    x[o + 3] = row3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::fr_from_hex;
    use proptest::prelude::*;

    fn counting<const T: usize>() -> [Fr; T] {
        std::array::from_fn(|i| Fr::from(i as u64))
    }

    fn kat<const T: usize>(params: &Poseidon2Params<T>, expected: &[&str; T]) {
        let want = expected.map(fr_from_hex);
        assert_eq!(params.permutation(counting::<T>()), want, "fast permutation, t = {T}");
        assert_eq!(reference::permutation(params, counting::<T>()), want, "reference permutation, t = {T}");
    }

    #[test]
    fn known_answers() {
        kat(&POSEIDON2_T3, &t3::KAT_0_TO_2);
        kat(&POSEIDON2_T8, &t8::KAT_0_TO_7);
        kat(&POSEIDON2_T12, &t12::KAT_0_TO_11);
        kat(&POSEIDON2_T16, &t16::KAT_0_TO_15);
    }

    #[test]
    fn known_answer_t3_matches_research_notes() {
        // docs/research/poseidon2-bn254.md §2.4 (zkhash 0.2.0 KAT).
        let out = POSEIDON2_T3.permutation(counting::<3>());
        assert_eq!(out[0], fr_from_hex("0x0bb61d24daca55eebcb1929a82650f328134334da98ea4f847f760054f4a3033"));
        assert_eq!(out[2], fr_from_hex("0x1ed25194542b12eef8617361c3ba7c52e660b145994427cc86296242cf766ec8"));
    }

    #[test]
    fn round_numbers_and_costs() {
        assert_eq!((POSEIDON2_T3.partial_rounds(), POSEIDON2_T3.r1cs_constraints()), (56, 240));
        assert_eq!((POSEIDON2_T8.partial_rounds(), POSEIDON2_T8.r1cs_constraints()), (57, 363));
        assert_eq!((POSEIDON2_T12.partial_rounds(), POSEIDON2_T12.r1cs_constraints()), (57, 459));
        assert_eq!((POSEIDON2_T16.partial_rounds(), POSEIDON2_T16.r1cs_constraints()), (57, 555));
    }

    fn fr_strategy() -> impl Strategy<Value = Fr> {
        any::<[u8; 32]>().prop_map(|b| crate::field::fr_from_bytes_mod_order(&b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn fast_matches_reference(v in proptest::collection::vec(fr_strategy(), 16)) {
            let s3: [Fr; 3] = std::array::from_fn(|i| v[i]);
            let s8: [Fr; 8] = std::array::from_fn(|i| v[i]);
            let s12: [Fr; 12] = std::array::from_fn(|i| v[i]);
            let s16: [Fr; 16] = std::array::from_fn(|i| v[i]);
            prop_assert_eq!(POSEIDON2_T3.permutation(s3), reference::permutation(&POSEIDON2_T3, s3));
            prop_assert_eq!(POSEIDON2_T8.permutation(s8), reference::permutation(&POSEIDON2_T8, s8));
            prop_assert_eq!(POSEIDON2_T12.permutation(s12), reference::permutation(&POSEIDON2_T12, s12));
            prop_assert_eq!(POSEIDON2_T16.permutation(s16), reference::permutation(&POSEIDON2_T16, s16));
        }
    }
}
