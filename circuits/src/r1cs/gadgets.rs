//! Gadgets on [`Cs`]: the Poseidon2 permutation (from the same constants as the native one),
//! the cell sponge, the tree compression, selection by index bits, and canonical bit
//! decomposition.

use super::Cs;
use crate::compress::{COMPRESS_WIDTH, KEY_LANE, TREE_ARITY};
use crate::poseidon2::{FULL_ROUNDS, POSEIDON2_T12, POSEIDON2_T16, Poseidon2Params};
use crate::sponge::{SPONGE_CAPACITY_LANE, SPONGE_RATE, SPONGE_WIDTH, sponge_iv};
use ark_bn254::Fr;
use ark_ff::{BigInteger, One, PrimeField, Zero};

/// x^5: three constraints.
fn pow5<C: Cs>(cs: &mut C, x: &C::V) -> C::V {
    let x2 = cs.mul(x, x);
    let x4 = cs.mul(&x2, &x2);
    cs.mul(&x4, x)
}

/// M4 on lanes `o..o+4`, the same chain of additions as the native `m4`.
fn m4<C: Cs>(cs: &C, x: &mut [C::V], o: usize) {
    let (a, b, c, d) = (x[o].clone(), x[o + 1].clone(), x[o + 2].clone(), x[o + 3].clone());
    let ab = cs.add(&a, &b);
    let cd = cs.add(&c, &d);
    let u = cs.add(&cs.add(&b, &b), &cd);
    let v = cs.add(&cs.add(&d, &d), &ab);
    let row3 = cs.add(&cs.scale(&cd, Fr::from(4u64)), &v);
    let row1 = cs.add(&cs.scale(&ab, Fr::from(4u64)), &u);
    x[o] = cs.add(&v, &row1);
    x[o + 1] = row1;
    x[o + 2] = cs.add(&u, &row3);
    x[o + 3] = row3;
}

/// M_E for t a multiple of 4 (linear: no constraints).
fn external_layer<C: Cs>(cs: &C, x: &mut [C::V]) {
    let t = x.len();
    for j in 0..t / 4 {
        m4(cs, x, 4 * j);
    }
    let mut sums: Vec<C::V> = x[..4].to_vec();
    for j in 1..t / 4 {
        for (l, s) in sums.iter_mut().enumerate() {
            *s = cs.add(s, &x[4 * j + l]);
        }
    }
    for (i, v) in x.iter_mut().enumerate() {
        *v = cs.add(v, &sums[i % 4]);
    }
}

/// The Poseidon2 permutation at width `T` (a multiple of 4): 3·(8T + R_P) constraints.
pub(crate) fn permute<C: Cs, const T: usize>(cs: &mut C, params: &Poseidon2Params<T>, x: &mut [C::V]) {
    assert!(T.is_multiple_of(4) && x.len() == T, "the gadget covers widths that are multiples of 4");
    external_layer(cs, x);
    let full = |cs: &mut C, x: &mut [C::V], rc: &[Fr; T]| {
        for (v, c) in x.iter_mut().zip(rc) {
            let shifted = cs.add(v, &cs.constant(*c));
            *v = pow5(cs, &shifted);
        }
        external_layer(cs, x);
    };
    for rc in &params.external_rc[..FULL_ROUNDS / 2] {
        full(cs, x, rc);
    }
    for c in params.internal_rc {
        let shifted = cs.add(&x[0], &cs.constant(*c));
        x[0] = pow5(cs, &shifted);
        let mut sum = x[0].clone();
        for v in &x[1..] {
            sum = cs.add(&sum, v);
        }
        for (v, d) in x.iter_mut().zip(&params.internal_diag_m1) {
            *v = cs.add(&cs.scale(v, *d), &sum);
        }
    }
    for rc in &params.external_rc[FULL_ROUNDS / 2..] {
        full(cs, x, rc);
    }
}

/// The cell sponge (see `sponge.rs`) over `elements`, under `domain`: lane 0 of the final state.
pub(crate) fn sponge<C: Cs>(cs: &mut C, domain: u8, elements: &[C::V]) -> C::V {
    let mut state: Vec<C::V> = (0..SPONGE_WIDTH).map(|_| cs.constant(Fr::zero())).collect();
    state[SPONGE_CAPACITY_LANE] = cs.constant(sponge_iv(domain, elements.len() as u64));
    if elements.is_empty() {
        permute(cs, &POSEIDON2_T16, &mut state);
    }
    for block in elements.chunks(SPONGE_RATE) {
        for (s, e) in state.iter_mut().zip(block) {
            *s = cs.add(s, e);
        }
        permute(cs, &POSEIDON2_T16, &mut state);
    }
    state.swap_remove(0)
}

/// The tree compression: lane 0 of Poseidon2_12(children, key, 0, 0, 0).
pub(crate) fn compress<C: Cs>(cs: &mut C, children: &[C::V], key: &C::V) -> C::V {
    assert_eq!(children.len(), TREE_ARITY);
    let mut state: Vec<C::V> = children.to_vec();
    state.push(key.clone());
    while state.len() < COMPRESS_WIDTH {
        state.push(cs.constant(Fr::zero()));
    }
    debug_assert!(state.len() == COMPRESS_WIDTH && KEY_LANE == TREE_ARITY);
    permute(cs, &POSEIDON2_T12, &mut state);
    state.swap_remove(0)
}

/// Enforces `items[index] = target`, where `index` has the little-endian boolean `bits` and
/// `items.len() == 2^bits.len()`: a tree of selections, `items.len() − 1` constraints.
pub(crate) fn enforce_selected<C: Cs>(cs: &mut C, items: &[C::V], bits: &[C::V], target: &C::V) {
    assert_eq!(items.len(), 1 << bits.len());
    let Some((last, lower)) = bits.split_last() else {
        cs.enforce_equal(&items[0], target);
        return;
    };
    let mut level: Vec<C::V> = items.to_vec();
    for bit in lower {
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let diff = cs.sub(&pair[1], &pair[0]);
                let picked = cs.mul(bit, &diff);
                cs.add(&pair[0], &picked)
            })
            .collect();
    }
    // last · (hi − lo) = target − lo
    let diff = cs.sub(&level[1], &level[0]);
    let rhs = cs.sub(target, &level[0]);
    cs.enforce(last, &diff, &rhs);
}

/// Enforces that `b` is 0 or 1.
pub(crate) fn enforce_boolean<C: Cs>(cs: &mut C, b: &C::V) {
    let one_minus = cs.sub(&cs.constant(Fr::one()), b);
    let zero = cs.constant(Fr::zero());
    cs.enforce(b, &one_minus, &zero);
}

/// The `n` little-endian bits of `x`, which must be below 2^n (n + 1 constraints).
pub(crate) fn to_bits<C: Cs>(cs: &mut C, x: &C::V, n: usize) -> Vec<C::V> {
    let value = cs.value(x).into_bigint();
    let mut bits = Vec::with_capacity(n);
    let mut sum = cs.constant(Fr::zero());
    let mut weight = Fr::one();
    for i in 0..n {
        let b = cs.witness(Fr::from(value.get_bit(i)));
        enforce_boolean(cs, &b);
        sum = cs.add(&sum, &cs.scale(&b, weight));
        weight += weight;
        bits.push(b);
    }
    cs.enforce_equal(&sum, x);
    bits
}

/// The 254 little-endian bits of `x` in its canonical form (the integer below p): booleans, their
/// sum, and a comparison with p − 1 from the top bit down, about 508 constraints. Without the
/// comparison a value below 2^254 − p would have a second decomposition (x + p), letting a prover
/// choose between two sets of sample indices.
pub(crate) fn to_bits_canonical<C: Cs>(cs: &mut C, x: &C::V) -> Vec<C::V> {
    let n = Fr::MODULUS_BIT_SIZE as usize;
    let bits = to_bits(cs, x, n);
    let mut limit = Fr::MODULUS;
    limit.sub_with_borrow(&ark_ff::BigInt::from(1u64));
    // `equal` is the product of the bits seen so far where p − 1 has a one; None while that is
    // the empty product 1. Where p − 1 has a zero, a bit may be one only once `equal` is 0.
    let mut equal: Option<C::V> = None;
    let zero = cs.constant(Fr::zero());
    for i in (0..n).rev() {
        match (limit.get_bit(i), &equal) {
            (true, None) => equal = Some(bits[i].clone()),
            (true, Some(e)) => equal = Some(cs.mul(e, &bits[i])),
            (false, None) => cs.enforce(&cs.constant(Fr::one()), &bits[i], &zero),
            (false, Some(e)) => cs.enforce(e, &bits[i], &zero),
        }
    }
    bits
}
