//! Eight cell hashes at once on AVX-512 IFMA: the t = 16 cell sponge of `sponge.rs`, bit for bit,
//! with lane `l` of every 512-bit register carrying the state of cell `l`.
//!
//! ## Arithmetic
//!
//! Radix 2^52, Montgomery form with R = 2^260, from `lanes.rs` (where its bounds are argued). The
//! permutation keeps every multiplication input normalised and below 6p, every S-box input below
//! 2.1p, and no sum above 480p (the external layer's row sums are at most 96). The permutation tests
//! below compare random states against the scalar permutation.
//!
//! ## Safety
//!
//! The only `unsafe` is calling the `#[target_feature]` entry point after
//! `is_x86_feature_detected!` has confirmed both features it enables; everything inside is safe
//! code on value types (no pointers, no loads or stores through raw memory).
#![allow(unsafe_code)]

use ark_bn254::Fr;

/// Whether this CPU can run the eight-lane path (AVX-512 F and IFMA).
pub(crate) fn available() -> bool {
    crate::lanes::available()
}

/// Hashes eight cells of one length, as [`crate::hash_cell`] would each; `None` when the CPU lacks
/// AVX-512 IFMA or the lengths differ.
pub(crate) fn hash_cells_x8(cells: [&[u8]; 8]) -> Option<[Fr; 8]> {
    if cells.iter().any(|c| c.len() != cells[0].len()) || !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `available()` has just confirmed that the CPU supports avx512f and avx512ifma,
        // the only target features `x86::hash_cells_x8` enables.
        Some(unsafe { x86::hash_cells_x8(cells) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Applies the t = 16 permutation to eight states (for the tests); `None` without IFMA.
#[cfg(test)]
pub(crate) fn permute_x8(states: &[[Fr; 16]; 8]) -> Option<[[Fr; 16]; 8]> {
    if !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `hash_cells_x8`.
        Some(unsafe { x86::permute_x8(states) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::lanes::{
        F8, Limbs, Modulus, add, from_lanes, lanes, mul, normalize, reduce, shl, splat, splat_limbs, to_limbs52,
        to_limbs64,
    };
    use crate::pack::BYTES_PER_ELEMENT;
    use crate::poseidon2::{FULL_ROUNDS, POSEIDON2_T16};
    use crate::sponge::{DOMAIN_CELL, SPONGE_CAPACITY_LANE, SPONGE_RATE, SPONGE_WIDTH, sponge_iv};
    use ark_bn254::Fr;
    use ark_ff::{BigInt, BigInteger, Field, PrimeField};
    use std::arch::x86_64::_mm512_setzero_si512;
    use std::sync::OnceLock;

    const W: usize = SPONGE_WIDTH;

    /// Constants in radix 2^52, Montgomery-2^260 form where they are field elements.
    struct Consts {
        m: Modulus,
        /// 2^520 mod p: a product with it turns a plain integer into Montgomery form.
        r2: Limbs,
        /// 2^260 as a field element (for converting `Fr` values at the edges).
        r260: Fr,
        ext_rc: [[Limbs; W]; FULL_ROUNDS],
        int_rc: Vec<Limbs>,
        diag: [Limbs; W],
    }

    /// `x` in Montgomery-2^260 form, canonical, as limbs.
    fn mont260(x: &Fr, r260: &Fr) -> Limbs {
        to_limbs52((*x * r260).into_bigint().0)
    }

    fn consts() -> &'static Consts {
        static CONSTS: OnceLock<Consts> = OnceLock::new();
        CONSTS.get_or_init(|| {
            let r260 = Fr::from(2u64).pow([260]);
            let params = &POSEIDON2_T16;
            Consts {
                m: Modulus::new(Fr::MODULUS.0, Fr::INV),
                r2: mont260(&r260, &r260),
                r260,
                ext_rc: params.external_rc.map(|row| row.map(|c| mont260(&c, &r260))),
                int_rc: params.internal_rc.iter().map(|c| mont260(c, &r260)).collect(),
                diag: params.internal_diag_m1.map(|d| mont260(&d, &r260)),
            }
        })
    }

    /// x^5 of a normalised input below 2.1p.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn pow5(x: F8, k: &Consts) -> F8 {
        let x2 = mul(x, x, &k.m);
        let x4 = mul(x2, x2, &k.m);
        mul(x4, x, &k.m)
    }

    /// M4 on lanes `o..o+4` (the same chain as the scalar `m4`), unnormalised.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn m4(x: &mut [F8; W], o: usize) {
        let (a, b, c, d) = (x[o], x[o + 1], x[o + 2], x[o + 3]);
        let ab = add(a, b);
        let cd = add(c, d);
        let u = add(shl::<1>(b), cd);
        let v = add(shl::<1>(d), ab);
        let row3 = add(shl::<2>(cd), v);
        let row1 = add(shl::<2>(ab), u);
        x[o] = add(v, row1);
        x[o + 1] = row1;
        x[o + 2] = add(u, row3);
        x[o + 3] = row3;
    }

    /// M_E at t = 16: row sums at most 96, so inputs below 5p give outputs below 480p.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn external_layer(x: &mut [F8; W]) {
        for j in 0..W / 4 {
            m4(x, 4 * j);
        }
        let mut sums = [x[0], x[1], x[2], x[3]];
        for j in 1..W / 4 {
            for (l, s) in sums.iter_mut().enumerate() {
                *s = add(*s, x[4 * j + l]);
            }
        }
        for (i, v) in x.iter_mut().enumerate() {
            *v = add(*v, sums[i % 4]);
        }
    }

    /// A full round on a state from the external layer: add constants, reduce, x^5, M_E.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn full_round(x: &mut [F8; W], rc: &[Limbs; W], k: &Consts) {
        for (v, c) in x.iter_mut().zip(rc) {
            *v = pow5(reduce(add(*v, splat_limbs(c)), &k.m), k);
        }
        external_layer(x);
    }

    /// The permutation; input lanes below 5p (unnormalised), output lanes below 2.1p, normalised.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn permute(x: &mut [F8; W], k: &Consts) {
        external_layer(x);
        for rc in &k.ext_rc[..FULL_ROUNDS / 2] {
            full_round(x, rc, k);
        }
        for v in x.iter_mut() {
            *v = reduce(*v, &k.m);
        }
        let diag = k.diag.map(|d| splat_limbs(&d));
        for c in &k.int_rc {
            // x0 and every x_j below 4.1p, normalised except x0.
            x[0] = pow5(reduce(add(x[0], splat_limbs(c)), &k.m), k);
            let mut s = x[0];
            for v in &x[1..] {
                s = add(s, *v);
            }
            let s = reduce(s, &k.m); // the sum is below 2p + 15·4.1p
            x[0] = add(mul(x[0], diag[0], &k.m), s);
            for (v, d) in x[1..].iter_mut().zip(&diag[1..]) {
                *v = normalize(add(mul(*v, *d, &k.m), s));
            }
        }
        for rc in &k.ext_rc[FULL_ROUNDS / 2..] {
            full_round(x, rc, k);
        }
        for v in x.iter_mut() {
            *v = reduce(*v, &k.m);
        }
    }

    /// Eight plain integers below 2^256 (four 64-bit limbs each) into Montgomery form.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn to_mont(values: &[[u64; 4]; 8], k: &Consts) -> F8 {
        let limbs = values.map(to_limbs52);
        let plain = F8(std::array::from_fn(|i| from_lanes(limbs.map(|l| l[i]))));
        mul(plain, splat_limbs(&k.r2), &k.m)
    }

    /// Out of Montgomery form, canonical, one `Fr` per lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn to_fr(x: F8, k: &Consts) -> [Fr; 8] {
        let plain = mul(x, F8([splat(1), splat(0), splat(0), splat(0), splat(0)]), &k.m);
        let limbs = [lanes(plain.0[0]), lanes(plain.0[1]), lanes(plain.0[2]), lanes(plain.0[3]), lanes(plain.0[4])];
        std::array::from_fn(|lane| {
            let mut b = BigInt(to_limbs64(limbs.map(|l| l[lane])));
            if b >= Fr::MODULUS {
                b.sub_with_borrow(&Fr::MODULUS);
            }
            // Below p after one subtraction, since the product is below 2p.
            debug_assert!(b < Fr::MODULUS);
            Fr::from_bigint(b).unwrap_or_default()
        })
    }

    /// One packed element (see `pack.rs`) of each cell: chunk `index`, or the padded tail.
    fn packed_chunk(cell: &[u8], index: usize) -> [u64; 4] {
        let start = index * BYTES_PER_ELEMENT;
        let rest = cell.get(start..).unwrap_or_default();
        let take = rest.len().min(BYTES_PER_ELEMENT);
        let mut buf = [0u8; 32];
        buf[..take].copy_from_slice(&rest[..take]);
        if take < BYTES_PER_ELEMENT {
            buf[take] = 0x01;
        }
        let mut limbs = [0u64; 4];
        for (limb, word) in limbs.iter_mut().zip(buf.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *limb = u64::from_le_bytes(w);
        }
        limbs
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn hash_cells_x8(cells: [&[u8]; 8]) -> [Fr; 8] {
        let k = consts();
        let len = cells[0].len();
        let n = crate::pack::packed_len(len);
        let zero = _mm512_setzero_si512();
        let mut x = [F8([zero; 5]); W];
        x[SPONGE_CAPACITY_LANE] = splat_limbs(&mont260(&sponge_iv(DOMAIN_CELL, n as u64), &k.r260));
        let mut filled = 0;
        for index in 0..n {
            let element = to_mont(&cells.map(|c| packed_chunk(c, index)), k);
            x[filled] = add(x[filled], element);
            filled += 1;
            if filled == SPONGE_RATE || index + 1 == n {
                permute(&mut x, k);
                filled = 0;
            }
        }
        to_fr(x[0], k)
    }

    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn permute_x8(states: &[[Fr; W]; 8]) -> [[Fr; W]; 8] {
        let k = consts();
        let mut x: [F8; W] = std::array::from_fn(|i| {
            let limbs = states.map(|s| mont260(&s[i], &k.r260));
            F8(std::array::from_fn(|l| from_lanes(limbs.map(|v| v[l]))))
        });
        permute(&mut x, k);
        let out = x.map(|v| to_fr(v, k));
        std::array::from_fn(|lane| std::array::from_fn(|i| out[i][lane]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poseidon2::POSEIDON2_T16;
    use ark_ff::PrimeField;

    /// A pseudo-random element from a splitmix64 stream.
    fn random_fr(seed: &mut u64) -> Fr {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Fr::from_le_bytes_mod_order(&bytes)
    }

    #[test]
    fn permutation_matches_scalar() {
        let mut seed = 7u64;
        for round in 0..20 {
            let mut states: [[Fr; 16]; 8] = std::array::from_fn(|_| std::array::from_fn(|_| random_fr(&mut seed)));
            if round == 0 {
                // Extremes: all p − 1, all zero.
                states[0] = [-Fr::from(1u64); 16];
                states[1] = [Fr::from(0u64); 16];
            }
            let Some(got) = permute_x8(&states) else {
                eprintln!("no AVX-512 IFMA on this CPU: skipped");
                return;
            };
            for (state, got) in states.iter().zip(&got) {
                assert_eq!(*got, POSEIDON2_T16.permutation(*state));
            }
        }
    }

    #[test]
    fn cell_hashes_match_scalar() {
        if !available() {
            eprintln!("no AVX-512 IFMA on this CPU: skipped");
            return;
        }
        for len in [0usize, 1, 30, 31, 32, 464, 465, 466, 2047, 2048, 4096 + 7] {
            let data: Vec<Vec<u8>> = (0..8u8)
                .map(|lane| {
                    (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(lane.wrapping_mul(101)) ^ 0xff).collect()
                })
                .collect();
            let cells: [&[u8]; 8] = std::array::from_fn(|i| data[i].as_slice());
            let got = hash_cells_x8(cells).expect("equal lengths");
            for (cell, got) in cells.iter().zip(got) {
                assert_eq!(got, crate::hash_cell(cell), "length {len}");
            }
        }
        // All-0xff cells: the largest packed elements.
        let ones = vec![0xffu8; 2048];
        let got = hash_cells_x8([ones.as_slice(); 8]).expect("equal lengths");
        assert!(got.iter().all(|g| *g == crate::hash_cell(&ones)));
    }

    #[test]
    fn unequal_lengths_are_refused() {
        let a = [0u8; 64];
        let mut cells: [&[u8]; 8] = [&a; 8];
        cells[3] = &a[..63];
        assert!(hash_cells_x8(cells).is_none());
    }
}
