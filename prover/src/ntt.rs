//! The witness map's FFTs over Fr eight butterflies at a time on AVX-512 IFMA.
//!
//! Vectors live in lane form: groups of eight consecutive elements, limb-major (`circuits::lanes`,
//! Montgomery form with R = 2^260), every value normalised and below 2.1p between butterflies.
//! Inverse transforms are decimation in frequency (natural order in, bit-reversed out) and forward
//! ones decimation in time (bit-reversed in, natural out), so "evaluations on H → coefficients →
//! evaluations on the coset gH" needs no reordering: the coset shift and the 1/n are one product
//! per element in bit-reversed position. Only h's coefficients are put back in natural order.
//!
//! Stages whose butterflies span at least [`BLOCK`] elements sweep the whole vector; the rest run
//! block by block while the block is in cache. The last three stages (butterflies within a group of
//! eight) pair lanes with a permutation. Twiddles and shifts are tables in lane form, made once per
//! prover (84 MB at 2^19).
//!
//! ## Safety
//!
//! The one `unsafe` is the call into the `#[target_feature]` transform after
//! [`circuits::lanes::available`] has confirmed both features it enables.
#![allow(unsafe_code)]

use ark_bn254::Fr;
use ark_ff::{BigInt, FftField, Field, MontFp, PrimeField};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use circuits::lanes::{Limbs, Modulus, to_limbs52};

/// Elements per cache block (655 KB in lane form).
const BLOCK: usize = 1 << 14;

/// Eight elements in lane form, limb-major (`[limb][lane]`), as an `F8` register set is.
type Packed = [[u64; 8]; 5];

/// Lane form of an element: its Montgomery-2^260 limbs, canonical.
fn fr_to_lanes(x: &Fr) -> Limbs {
    const SIXTEEN: Fr = MontFp!("16");
    to_limbs52((*x * SIXTEEN).0.0)
}

/// Twiddles, shifts and constants for one domain size.
pub(crate) struct LaneDomain {
    n: usize,
    /// For each stage with half-size h ≥ 8 (h = 8, 16, …, n/2): ω_2h^j for j < h, lane form, as
    /// groups of eight; and the same with ω^−1.
    forward: Vec<Vec<Packed>>,
    inverse: Vec<Vec<Packed>>,
    /// Per-lane twiddles of the in-group stages h = 1, 2, 4 (lane l uses ω_2h^(l mod h)).
    forward_small: [Packed; 3],
    inverse_small: [Packed; 3],
    /// g^rev(j)/n and g^−rev(j)/n at position j.
    shift: Vec<Packed>,
    unshift: Vec<Packed>,
    /// 1/Z on the coset, and 16 (which turns an ark-ff representation into lane form).
    z_inv: Limbs,
    sixteen: Limbs,
    m: Modulus,
}

fn pack(c: &[Limbs]) -> Packed {
    std::array::from_fn(|limb| std::array::from_fn(|lane| c[lane][limb]))
}

fn groups(values: Vec<Limbs>) -> Vec<Packed> {
    values.chunks_exact(8).map(pack).collect()
}

fn powers(base: Fr, count: usize) -> Vec<Fr> {
    let mut out = Vec::with_capacity(count);
    let mut x = Fr::ONE;
    for _ in 0..count {
        out.push(x);
        x *= base;
    }
    out
}

impl LaneDomain {
    /// The tables for `domain` (at least 64 elements); `None` without AVX-512 IFMA.
    pub(crate) fn new(domain: &Radix2EvaluationDomain<Fr>) -> Option<Self> {
        let n = domain.size();
        if !circuits::lanes::available() || n < 64 {
            return None;
        }
        let log_n = n.trailing_zeros();
        let stage_tables = |root: Fr| -> (Vec<Vec<Packed>>, [Packed; 3]) {
            let mut big = Vec::new();
            let mut h = 8;
            while h < n {
                let w = root.pow([(n / (2 * h)) as u64]);
                big.push(groups(powers(w, h).iter().map(fr_to_lanes).collect()));
                h *= 2;
            }
            let small = [1usize, 2, 4].map(|h| {
                let w = root.pow([(n / (2 * h)) as u64]);
                let lanes: Vec<Limbs> = (0..8).map(|l| fr_to_lanes(&w.pow([(l % h) as u64]))).collect();
                pack(&lanes)
            });
            (big, small)
        };
        let (forward, forward_small) = stage_tables(domain.group_gen);
        let (inverse, inverse_small) = stage_tables(domain.group_gen_inv);
        let g = Fr::GENERATOR;
        let rev = |j: usize| j.reverse_bits() >> (usize::BITS - log_n);
        let up = powers(g, n);
        let down = powers(g.inverse()?, n);
        let n_inv = domain.size_inv;
        let shift = groups((0..n).map(|j| fr_to_lanes(&(up[rev(j)] * n_inv))).collect());
        let unshift = groups((0..n).map(|j| fr_to_lanes(&(down[rev(j)] * n_inv))).collect());
        let z_inv = domain.evaluate_vanishing_polynomial(g).inverse()?;
        Some(LaneDomain {
            n,
            forward,
            inverse,
            forward_small,
            inverse_small,
            shift,
            unshift,
            z_inv: fr_to_lanes(&z_inv),
            sixteen: fr_to_lanes(&MontFp!("16")),
            m: Modulus::new(Fr::MODULUS.0, Fr::INV),
        })
    }

    /// The domain's size.
    pub(crate) fn size(&self) -> usize {
        self.n
    }

    /// h's coefficients (as integers, for the MSM) from A·z, B·z and C·z on H, each `n` long.
    pub(crate) fn quotient(&self, az: &[Fr], bz: &[Fr], cz: &[Fr]) -> Option<Vec<BigInt<4>>> {
        if az.len() != self.n || bz.len() != self.n || cz.len() != self.n || !circuits::lanes::available() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `available()` above confirmed avx512f and avx512ifma, the features
            // `x86::quotient` enables.
            Some(unsafe { x86::quotient(self, [az, bz, cz]) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, LaneDomain, Packed};
    use ark_bn254::Fr;
    use ark_ff::BigInt;
    use circuits::lanes::{
        F8, Modulus, add, canonical, from_lanes, lanes, mul, reduce, splat_limbs, sub, to_limbs52, to_limbs64,
    };
    use rayon::prelude::*;
    use std::arch::x86_64::{__m512i, __mmask8, _mm512_mask_blend_epi64, _mm512_permutexvar_epi64, _mm512_set_epi64};

    /// Groups of eight per parallel task in the sweeping stages.
    const TASK: usize = 256;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(g: &Packed) -> F8 {
        F8([from_lanes(g[0]), from_lanes(g[1]), from_lanes(g[2]), from_lanes(g[3]), from_lanes(g[4])])
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(x: F8) -> Packed {
        [lanes(x.0[0]), lanes(x.0[1]), lanes(x.0[2]), lanes(x.0[3]), lanes(x.0[4])]
    }

    /// Decimation-in-frequency butterfly: (a, b) → (a + b, (a − b)·w).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn dif(a: &mut F8, b: &mut F8, w: F8, m: &Modulus) {
        let (x, y) = (*a, *b);
        *a = reduce(add(x, y), m);
        *b = mul(sub(x, y, &m.p4), w, m);
    }

    /// Decimation-in-time butterfly: (a, b) → (a + w·b, a − w·b).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn dit(a: &mut F8, b: &mut F8, w: F8, m: &Modulus) {
        let t = mul(*b, w, m);
        let x = *a;
        *a = reduce(add(x, t), m);
        *b = reduce(sub(x, t, &m.p2), m);
    }

    /// One sweeping stage (butterflies of half-size `hg` groups) over the whole vector.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn sweep(x: &mut [F8], tw: &[Packed], forward: bool, m: &Modulus) {
        let hg = tw.len();
        for block in x.chunks_mut(2 * hg) {
            let (lo, hi) = block.split_at_mut(hg);
            lo.par_chunks_mut(TASK)
                .zip(hi.par_chunks_mut(TASK))
                .zip(tw.par_chunks(TASK))
                .for_each(|((lo, hi), tw)| butterflies(lo, hi, tw, forward, m));
        }
    }

    /// Stages of half-size `hg` groups inside one block.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn in_block(x: &mut [F8], tw: &[Packed], forward: bool, m: &Modulus) {
        let hg = tw.len();
        for block in x.chunks_mut(2 * hg) {
            let (lo, hi) = block.split_at_mut(hg);
            butterflies(lo, hi, tw, forward, m);
        }
    }

    /// The butterflies between `lo[i]` and `hi[i]` with twiddle `tw[i]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn butterflies(lo: &mut [F8], hi: &mut [F8], tw: &[Packed], forward: bool, m: &Modulus) {
        for ((a, b), w) in lo.iter_mut().zip(hi.iter_mut()).zip(tw) {
            if forward {
                dit(a, b, load(w), m);
            } else {
                dif(a, b, load(w), m);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn permute(x: F8, idx: __m512i) -> F8 {
        F8(x.0.map(|v| _mm512_permutexvar_epi64(idx, v)))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blend(upper: __mmask8, lower: F8, high: F8) -> F8 {
        F8(std::array::from_fn(|i| _mm512_mask_blend_epi64(upper, lower.0[i], high.0[i])))
    }

    /// The partner lane index (l xor h) and the mask of upper lanes (l & h ≠ 0).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pairing(h: usize) -> (__m512i, __mmask8) {
        let p = |l: i64| l ^ h as i64;
        let idx = _mm512_set_epi64(p(7), p(6), p(5), p(4), p(3), p(2), p(1), p(0));
        let mask = (0..8).filter(|l| l & h != 0).fold(0u8, |m, l| m | (1 << l));
        (idx, mask)
    }

    /// The three stages within each group of eight (h = 4, 2, 1 inverse; 1, 2, 4 forward).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn in_group(x: &mut F8, small: &[F8; 3], forward: bool, m: &Modulus) {
        let order: [usize; 3] = if forward { [0, 1, 2] } else { [2, 1, 0] };
        for s in order {
            let (idx, upper) = pairing(1 << s);
            let w = small[s];
            let v = *x;
            *x = if forward {
                // lower: a + w·b with b the partner; upper: a' − w·b with a' the partner.
                let t = mul(v, w, m);
                let (pt, pv) = (permute(t, idx), permute(v, idx));
                blend(upper, reduce(add(v, pt), m), reduce(sub(pv, t, &m.p2), m))
            } else {
                // lower: a + b; upper: (a' − b)·w with a' the partner.
                let pv = permute(v, idx);
                blend(upper, reduce(add(v, pv), m), mul(sub(pv, v, &m.p4), w, m))
            };
        }
    }

    /// A transform in place: inverse (DIF with ω^−1, natural → bit-reversed, times n) or forward
    /// (DIT with ω, bit-reversed → natural).
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn transform(x: &mut [F8], tables: &[Vec<Packed>], small: &[F8; 3], forward: bool, m: &Modulus) {
        let n = x.len() * 8;
        let block_groups = BLOCK.min(n) / 8;
        // tables[s] has half-size 8·2^s elements = 2^s groups.
        let sweeping: Vec<&Vec<Packed>> = tables.iter().filter(|t| t.len() >= block_groups).collect();
        let local: Vec<&Vec<Packed>> = tables.iter().filter(|t| t.len() < block_groups).collect();
        let block_work = |block: &mut [F8]| {
            if forward {
                for g in block.iter_mut() {
                    in_group(g, small, true, m);
                }
                for tw in &local {
                    in_block(block, tw, true, m);
                }
            } else {
                for tw in local.iter().rev() {
                    in_block(block, tw, false, m);
                }
                for g in block.iter_mut() {
                    in_group(g, small, false, m);
                }
            }
        };
        if forward {
            x.par_chunks_mut(block_groups).for_each(block_work);
            for tw in &sweeping {
                sweep(x, tw, true, m);
            }
        } else {
            for tw in sweeping.iter().rev() {
                sweep(x, tw, false, m);
            }
            x.par_chunks_mut(block_groups).for_each(block_work);
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn quotient(d: &LaneDomain, inputs: [&[Fr]; 3]) -> Vec<BigInt<4>> {
        let m = &d.m;
        let (forward, inverse) = (&d.forward, &d.inverse);
        let fs = d.forward_small.map(|g| load(&g));
        let is = d.inverse_small.map(|g| load(&g));
        let sixteen = splat_limbs(&d.sixteen);
        // Evaluations on H → evaluations on gH, for A·z, B·z and C·z.
        let coset: Vec<Vec<F8>> = inputs
            .iter()
            .map(|v| {
                let mut x: Vec<F8> = v
                    .par_chunks(8)
                    .map(|c| {
                        let limbs: Vec<_> = c.iter().map(|x| to_limbs52(x.0.0)).collect();
                        mul(load(&super::pack(&limbs)), sixteen, m)
                    })
                    .collect();
                transform(&mut x, inverse, &is, false, m);
                x.par_iter_mut().zip(&d.shift).for_each(|(g, s)| *g = mul(*g, load(s), m));
                transform(&mut x, forward, &fs, true, m);
                x
            })
            .collect();
        let z_inv = splat_limbs(&d.z_inv);
        let mut q: Vec<F8> = coset[0]
            .par_iter()
            .zip(&coset[1])
            .zip(&coset[2])
            .map(|((a, b), c)| mul(sub(mul(*a, *b, m), *c, &m.p4), z_inv, m))
            .collect();
        drop(coset);
        transform(&mut q, inverse, &is, false, m);
        let one = splat_limbs(&[1, 0, 0, 0, 0]); // Montgomery products with it leave plain integers
        let n = d.n;
        let log_n = n.trailing_zeros();
        let mut out = vec![BigInt([0u64; 4]); n];
        let plain: Vec<Packed> =
            q.par_iter().zip(&d.unshift).map(|(g, s)| store(canonical(mul(mul(*g, load(s), m), one, m), m))).collect();
        for (j, g) in plain.iter().enumerate() {
            for (l, limb0) in g[0].iter().enumerate() {
                let pos = j * 8 + l;
                let limbs = [*limb0, g[1][l], g[2][l], g[3][l], g[4][l]];
                out[pos.reverse_bits() >> (usize::BITS - log_n)] = BigInt(to_limbs64(limbs));
            }
        }
        out
    }
}
