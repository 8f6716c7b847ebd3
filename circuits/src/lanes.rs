//! Eight field elements at once on AVX-512 IFMA: radix-2^52 Montgomery arithmetic for a prime of
//! BN254's size (p < 2^253.6, both of its fields), one element per 64-bit lane. The cell sponge
//! (`ifma.rs`, over Fr) and the prover's multi-scalar multiplication (over Fq and Fq2) use it.
//!
//! ## Representation
//!
//! An element is five 52-bit limbs (limb `i` of the eight lanes in one register, [`F8`]) in
//! Montgomery form with R = 2^260, which the radix dictates (ark-ff uses 2^256; the two meet only at
//! the edges). `vpmadd52luq` / `vpmadd52huq` multiply the low 52 bits of two 64-bit lanes and add
//! the low or high half of the 104-bit product to a 64-bit accumulator, so one Montgomery product
//! (operand scanning, five outer steps) is 50 multiply-adds for a·b and 55 for the reduction, for
//! eight products at once.
//!
//! ## Bounds, in units of p (R/p > 85)
//! - [`mul`] of normalised inputs (every limb below 2^52) with a·b < 84p² is normalised and below
//!   2p, with no final subtraction: it is (a·b + m·p)/R with m < R;
//! - sums and differences ([`add`], [`sub`]) are left unnormalised (64-bit lanes have room) and
//!   [`reduce`] brings a value below 2^263 back below 2.1p, normalised, by subtracting an
//!   under-estimated multiple of p taken from the top limb;
//! - [`canonical`] takes a normalised value below 3p to the unique representative below p.
//!
//! Every function here is safe to call from code compiled with `avx512f` and `avx512ifma` (a
//! `#[target_feature]` function); callers check [`available`] once before entering such code.
//! (Clippy counts such public functions as unsafe and asks for a `# Safety` section on each; this
//! paragraph is it.)
#![allow(clippy::missing_safety_doc)]

/// Whether this CPU has AVX-512 F and IFMA.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Five 52-bit limbs of one value (little-endian).
pub type Limbs = [u64; 5];

const MASK52: u64 = (1 << 52) - 1;

/// Four 64-bit limbs (below 2^256) as five 52-bit limbs.
pub fn to_limbs52(b: [u64; 4]) -> Limbs {
    [
        b[0] & MASK52,
        ((b[0] >> 52) | (b[1] << 12)) & MASK52,
        ((b[1] >> 40) | (b[2] << 24)) & MASK52,
        ((b[2] >> 28) | (b[3] << 36)) & MASK52,
        b[3] >> 16,
    ]
}

/// Normalised limbs of a value below 2^256 back to four 64-bit limbs.
pub fn to_limbs64(l: Limbs) -> [u64; 4] {
    [l[0] | (l[1] << 52), (l[1] >> 12) | (l[2] << 40), (l[2] >> 24) | (l[3] << 28), (l[3] >> 36) | (l[4] << 16)]
}

/// The constants of one modulus.
#[derive(Clone, Copy, Debug)]
pub struct Modulus {
    /// p.
    pub p: Limbs,
    /// 2p and 4p, normalised (added before a subtraction to keep differences positive).
    pub p2: Limbs,
    /// 4p.
    pub p4: Limbs,
    /// −p^(−1) mod 2^52.
    pub pinv: u64,
    /// ⌊2^263 / p⌋, under-estimated: the quotient estimate of [`reduce`].
    pub quot: u64,
}

impl Modulus {
    /// The constants of `p` (four 64-bit limbs, below 2^253.6) given `inv` = −p^(−1) mod 2^64, as
    /// ark-ff's `MontConfig::INV` has it.
    pub fn new(p: [u64; 4], inv: u64) -> Self {
        debug_assert!(p[3] < 0x3080_0000_0000_0000, "p must be below 2^253.6");
        let times = |k: u64| {
            let mut out = [0u64; 4];
            let mut carry = 0u128;
            for (o, l) in out.iter_mut().zip(p) {
                let v = u128::from(l) * u128::from(k) + carry;
                *o = v as u64;
                carry = v >> 64;
            }
            to_limbs52(out)
        };
        let denominator = (u128::from(p[3]) << 2 | u128::from(p[2] >> 62)) + 1; // > p / 2^190
        Modulus {
            p: to_limbs52(p),
            p2: times(2),
            p4: times(4),
            pinv: inv & MASK52,
            quot: ((1u128 << 73) / denominator) as u64,
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Limbs, MASK52, Modulus};
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_extract_epi64, _mm512_add_epi64, _mm512_and_si512, _mm512_cmplt_epi64_mask,
        _mm512_extracti64x4_epi64, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_mask_blend_epi64,
        _mm512_set_epi64, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srai_epi64,
        _mm512_srli_epi64, _mm512_sub_epi64,
    };

    /// Eight field elements, limb-major.
    #[derive(Clone, Copy)]
    pub struct F8(pub [__m512i; 5]);

    /// `x` in every lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn splat(x: u64) -> __m512i {
        _mm512_set1_epi64(x as i64)
    }

    /// One value in all eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn splat_limbs(l: &Limbs) -> F8 {
        F8([splat(l[0]), splat(l[1]), splat(l[2]), splat(l[3]), splat(l[4])])
    }

    /// Limb-wise sum, unnormalised.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn add(a: F8, b: F8) -> F8 {
        F8(std::array::from_fn(|i| _mm512_add_epi64(a.0[i], b.0[i])))
    }

    /// `a + kp − b` for a multiple `kp` of p at least `b`, normalised (carries are signed).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub(a: F8, b: F8, kp: &Limbs) -> F8 {
        let d = F8(std::array::from_fn(|i| _mm512_sub_epi64(_mm512_add_epi64(a.0[i], splat(kp[i])), b.0[i])));
        normalize_signed(d)
    }

    /// `2^s · a`, unnormalised.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn shl<const S: u32>(a: F8) -> F8 {
        F8(a.0.map(|v| _mm512_slli_epi64::<S>(v)))
    }

    /// Carries every limb's bits above 52 into the next limb (the top limb keeps them).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn normalize(mut a: F8) -> F8 {
        let mask = splat(MASK52);
        for i in 0..4 {
            let carry = _mm512_srli_epi64::<52>(a.0[i]);
            a.0[i] = _mm512_and_si512(a.0[i], mask);
            a.0[i + 1] = _mm512_add_epi64(a.0[i + 1], carry);
        }
        a
    }

    /// As [`normalize`] for limbs that may be negative (a nonnegative value): carries are signed.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn normalize_signed(mut a: F8) -> F8 {
        let mask = splat(MASK52);
        for i in 0..4 {
            let carry = _mm512_srai_epi64::<52>(a.0[i]);
            a.0[i] = _mm512_and_si512(a.0[i], mask);
            a.0[i + 1] = _mm512_add_epi64(a.0[i + 1], carry);
        }
        a
    }

    /// A value below 2^263 (limbs unnormalised but nonnegative, each below 2^63) brought below
    /// 2.1p, normalised: q = ⌊(top limb / 8) · ⌊2^263/p⌋ / 2^52⌋ never exceeds value/p and falls
    /// short of it by less than value/(676p) + 1, so value − q·p is in [0, 2.1p).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn reduce(a: F8, m: &Modulus) -> F8 {
        let a = normalize(a);
        let zero = _mm512_setzero_si512();
        let q = _mm512_madd52hi_epu64(zero, _mm512_srli_epi64::<3>(a.0[4]), splat(m.quot));
        let mut r = a.0;
        for i in 0..5 {
            let pi = splat(m.p[i]);
            r[i] = _mm512_sub_epi64(r[i], _mm512_madd52lo_epu64(zero, q, pi));
            if i < 4 {
                r[i + 1] = _mm512_sub_epi64(r[i + 1], _mm512_madd52hi_epu64(zero, q, pi));
            }
        }
        normalize_signed(F8(r))
    }

    /// Montgomery product a·b/2^260 of normalised inputs with a·b < 84p²: normalised, below 2p.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn mul(a: F8, b: F8, m: &Modulus) -> F8 {
        let zero = _mm512_setzero_si512();
        let pinv = splat(m.pinv);
        let p = [splat(m.p[0]), splat(m.p[1]), splat(m.p[2]), splat(m.p[3]), splat(m.p[4])];
        let mut t = [zero; 6];
        for bi in b.0 {
            for j in 0..5 {
                t[j] = _mm512_madd52lo_epu64(t[j], a.0[j], bi);
                t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], a.0[j], bi);
            }
            let q = _mm512_madd52lo_epu64(zero, t[0], pinv);
            for j in 0..5 {
                t[j] = _mm512_madd52lo_epu64(t[j], p[j], q);
                t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], p[j], q);
            }
            // t[0] is now a multiple of 2^52: shift the accumulator down one limb.
            let carry = _mm512_srli_epi64::<52>(t[0]);
            t = [_mm512_add_epi64(t[1], carry), t[2], t[3], t[4], t[5], zero];
        }
        normalize(F8([t[0], t[1], t[2], t[3], t[4]]))
    }

    /// `a − p` where that is nonnegative, else `a` (a normalised).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn subtract_p_if_above(a: F8, m: &Modulus) -> F8 {
        let d = normalize_signed(F8(std::array::from_fn(|i| _mm512_sub_epi64(a.0[i], splat(m.p[i])))));
        let negative = _mm512_cmplt_epi64_mask(d.0[4], _mm512_setzero_si512());
        F8(std::array::from_fn(|i| _mm512_mask_blend_epi64(negative, d.0[i], a.0[i])))
    }

    /// The representative below p of a normalised value below 3p.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn canonical(a: F8, m: &Modulus) -> F8 {
        subtract_p_if_above(subtract_p_if_above(a, m), m)
    }

    /// The eight lanes of a register.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn lanes(v: __m512i) -> [u64; 8] {
        let lo: __m256i = _mm512_extracti64x4_epi64::<0>(v);
        let hi: __m256i = _mm512_extracti64x4_epi64::<1>(v);
        [
            _mm256_extract_epi64::<0>(lo) as u64,
            _mm256_extract_epi64::<1>(lo) as u64,
            _mm256_extract_epi64::<2>(lo) as u64,
            _mm256_extract_epi64::<3>(lo) as u64,
            _mm256_extract_epi64::<0>(hi) as u64,
            _mm256_extract_epi64::<1>(hi) as u64,
            _mm256_extract_epi64::<2>(hi) as u64,
            _mm256_extract_epi64::<3>(hi) as u64,
        ]
    }

    /// A register from eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn from_lanes(l: [u64; 8]) -> __m512i {
        _mm512_set_epi64(
            l[7] as i64,
            l[6] as i64,
            l[5] as i64,
            l[4] as i64,
            l[3] as i64,
            l[2] as i64,
            l[1] as i64,
            l[0] as i64,
        )
    }

    /// Eight values (one per lane) into limb-major form.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn gather(values: [&Limbs; 8]) -> F8 {
        F8(std::array::from_fn(|i| from_lanes(values.map(|v| v[i]))))
    }

    /// Lane `lane`'s limbs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn scatter(x: F8) -> [Limbs; 8] {
        let l = [lanes(x.0[0]), lanes(x.0[1]), lanes(x.0[2]), lanes(x.0[3]), lanes(x.0[4])];
        std::array::from_fn(|lane| [l[0][lane], l[1][lane], l[2][lane], l[3][lane], l[4][lane]])
    }
}
