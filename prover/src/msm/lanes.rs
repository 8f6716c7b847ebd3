//! The MSM's bucket additions eight at a time on AVX-512 IFMA, for BN254's G1 (coordinates in Fq)
//! and G2 (in Fq2).
//!
//! The algorithm is `mod.rs`'s (signed digits, batch-affine buckets sharing one inversion), with
//! the additions of a batch done in groups of eight, one per 64-bit lane, in the radix-2^52
//! Montgomery arithmetic of `circuits::lanes`. Montgomery's trick runs down each lane separately
//! (one product chain per lane), so a batch needs one scalar inversion of the eight lanes' products.
//!
//! Bases are converted once per key into [`LaneBases`]: coordinates as five 52-bit limbs in
//! Montgomery form with R = 2^260, canonical (below p), so that equal points have equal limbs.
//! Buckets keep the same form. A point that meets its bucket with an equal x (a doubling or a
//! cancellation, rare) is handled at once in arkworks' arithmetic; one that meets its bucket
//! already in the batch waits in a bounded queue for the next batch, and past that queue's limit
//! goes to a per-bucket projective overflow (hot buckets: the top window, repeated values).
//!
//! Bounds of the lane arithmetic: every coordinate in flight is normalised and below 2.1p; a
//! difference `a + kp − b` uses k with kp above b; products of such values stay far below the 84p²
//! that `circuits::lanes::mul` allows (Karatsuba's sums reach 4.2p, so 17.7p²).
//!
//! ## Safety
//!
//! The one `unsafe` is the call into the `#[target_feature]` window sum after
//! [`circuits::lanes::available`] has confirmed the CPU has both features it enables. Inside is safe
//! code on values and slices.
#![allow(unsafe_code)]

use ark_bn254::{Fq, Fq2};
use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup};
use ark_ff::{BigInt, MontFp, PrimeField, Zero};
use circuits::lanes::{Limbs, Modulus, to_limbs52, to_limbs64};
use rayon::prelude::*;

/// Most additions per shared inversion.
const BATCH: usize = 2048;

/// Runs of buckets whose sums advance together in the final reduction (one batch of additions).
const SEGMENTS: usize = 256;

/// 16 and its inverse: an element's Montgomery-2^256 representation (ark-ff's) times 16 is its
/// Montgomery-2^260 one.
const SIXTEEN: Fq = MontFp!("16");

/// A point in lane form: `K` = 1 for G1, 2 for G2 (Fq2 = c0 + c1·u).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LanePoint<const K: usize> {
    x: [Limbs; K],
    y: [Limbs; K],
}

/// A curve whose coordinates the lanes handle: K Fq limbs-sets per coordinate.
pub trait LaneCurve<const K: usize>: SWCurveConfig {
    /// A coordinate into lane form (canonical).
    fn to_lanes(c: &Self::BaseField) -> [Limbs; K];
    /// A canonical lane-form coordinate back.
    fn from_lanes(c: &[Limbs; K]) -> Self::BaseField;
}

fn fq_to_lanes(x: &Fq) -> Limbs {
    to_limbs52((*x * SIXTEEN).0.0)
}

fn fq_from_lanes(l: &Limbs) -> Fq {
    // `l` is canonical, so it is a valid Montgomery-2^256 representation (of 16·x).
    Fq::new_unchecked(BigInt(to_limbs64(*l))) * inverse_of_sixteen()
}

fn inverse_of_sixteen() -> Fq {
    const INV16: Fq = MontFp!("12312136615409592312513603231707217237391675025980025810262583815737939742328");
    INV16
}

impl LaneCurve<1> for ark_bn254::g1::Config {
    fn to_lanes(c: &Fq) -> [Limbs; 1] {
        [fq_to_lanes(c)]
    }
    fn from_lanes(c: &[Limbs; 1]) -> Fq {
        fq_from_lanes(&c[0])
    }
}

impl LaneCurve<2> for ark_bn254::g2::Config {
    fn to_lanes(c: &Fq2) -> [Limbs; 2] {
        [fq_to_lanes(&c.c0), fq_to_lanes(&c.c1)]
    }
    fn from_lanes(c: &[Limbs; 2]) -> Fq2 {
        Fq2::new(fq_from_lanes(&c[0]), fq_from_lanes(&c[1]))
    }
}

fn point_to_lanes<const K: usize, P: LaneCurve<K>>(p: &Affine<P>) -> LanePoint<K> {
    LanePoint { x: P::to_lanes(&p.x), y: P::to_lanes(&p.y) }
}

fn point_from_lanes<const K: usize, P: LaneCurve<K>>(p: &LanePoint<K>) -> Affine<P> {
    Affine::new_unchecked(P::from_lanes(&p.x), P::from_lanes(&p.y))
}

/// The bases of one MSM in lane form, converted once per key.
pub struct LaneBases<const K: usize> {
    points: Vec<LanePoint<K>>,
    /// False for the identity (which has no affine coordinates and adds nothing).
    present: Vec<bool>,
}

impl<const K: usize> LaneBases<K> {
    /// Converts `bases`.
    pub fn new<P: LaneCurve<K>>(bases: &[Affine<P>]) -> Self {
        let points = bases
            .par_iter()
            .map(|b| if b.is_zero() { LanePoint { x: [[0; 5]; K], y: [[0; 5]; K] } } else { point_to_lanes(b) })
            .collect();
        LaneBases { points, present: bases.iter().map(|b| !b.is_zero()).collect() }
    }

    /// How many bases.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

fn modulus() -> Modulus {
    Modulus::new(Fq::MODULUS.0, Fq::INV)
}

/// Σ scalars[i]·bases[i] (pairs beyond the shorter are ignored) on the lanes; `None` where the CPU
/// lacks AVX-512 IFMA (the caller then uses the portable MSM).
pub fn msm<const K: usize, P: LaneCurve<K>>(
    bases: &LaneBases<K>,
    scalars: &[<P::ScalarField as PrimeField>::BigInt],
) -> Option<Projective<P>> {
    if !circuits::lanes::available() {
        return None;
    }
    let n = bases.len().min(scalars.len());
    let bits = P::ScalarField::MODULUS_BIT_SIZE as usize;
    let widths = window_widths(n, bits + 1);
    let digits = super::signed_digits(&scalars[..n], &widths);
    let m = modulus();
    let sums: Vec<Projective<P>> = (0..widths.len())
        .into_par_iter()
        .map(|w| {
            let digits = &digits[w * n..(w + 1) * n];
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: `available()` above confirmed avx512f and avx512ifma, the features
                // `window_sum` enables.
                unsafe { x86::window_sum::<K, P>(bases, digits, &m) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (digits, &m);
                Projective::<P>::zero()
            }
        })
        .collect();
    let mut acc = Projective::<P>::zero();
    for (sum, &c) in sums.iter().zip(&widths).rev() {
        for _ in 0..c {
            acc.double_in_place();
        }
        acc += sum;
    }
    Some(acc)
}

/// Window widths covering `bits` bits (low windows first). Additions on the lanes cost about a
/// third of a bucket's share of the final reduction, so `windows · n + 3 · buckets` is minimised
/// over the widest width c; the windows are then made as even as possible (widths c and c − 1),
/// because a narrow top window (say 3 bits above twenty windows of 12) has so few buckets that
/// its batches stay small and it alone took as long as five others.
fn window_widths(n: usize, bits: usize) -> Vec<usize> {
    let even = |c: usize| {
        let windows = bits.div_ceil(c);
        let (base, extra) = (bits / windows, bits % windows);
        (0..windows).map(|w| if w < extra { base + 1 } else { base }).collect::<Vec<_>>()
    };
    let cost = |widths: &Vec<usize>| widths.len() * n + 3 * widths.iter().map(|c| 1usize << (c - 1)).sum::<usize>();
    (4..=18).map(even).min_by_key(cost).unwrap_or_else(|| even(15))
}

/// The lane form of −y (y canonical): p − y, or 0 for 0.
fn negate(y: &Limbs, p: &Limbs) -> Limbs {
    if y.iter().all(|l| *l == 0) {
        return *y;
    }
    let mut out = [0u64; 5];
    let mut borrow = 0u64;
    for i in 0..5 {
        let (v, b1) = p[i].overflowing_sub(y[i]);
        let (v, b2) = v.overflowing_sub(borrow);
        if b1 || b2 {
            out[i] = v.wrapping_add(1 << 52);
            borrow = 1;
        } else {
            out[i] = v;
            borrow = 0;
        }
    }
    out
}

/// Inverts eight lane values (canonical, nonzero except padding) with one field inversion.
fn invert_lanes<const K: usize, P: LaneCurve<K>>(values: [[Limbs; K]; 8]) -> [[Limbs; K]; 8] {
    let mut elements = values.map(|v| P::from_lanes(&v));
    ark_ff::batch_inversion(&mut elements);
    elements.map(|e| P::to_lanes(&e))
}

/// A point `p` added to a bucket holding `q` with the same x: 2q, or the identity (`None`).
fn double_or_cancel<const K: usize, P: LaneCurve<K>>(q: &LanePoint<K>, p: &LanePoint<K>) -> Option<LanePoint<K>> {
    if q.y != p.y {
        return None;
    }
    let doubled = point_from_lanes::<K, P>(q).into_group().double().into_affine();
    (!doubled.is_zero()).then(|| point_to_lanes(&doubled))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{
        BATCH, LaneBases, LaneCurve, LanePoint, SEGMENTS, double_or_cancel, invert_lanes, negate, point_from_lanes,
        point_to_lanes,
    };
    use ark_ec::short_weierstrass::Projective;
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::Zero;
    use circuits::lanes::{
        F8, Limbs, Modulus, add, canonical, gather, mul, normalize, reduce, scatter, splat_limbs, sub,
    };

    /// One coordinate of eight points.
    type C<const K: usize> = [F8; K];

    const ZERO: Limbs = [0; 5];

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn csub<const K: usize>(a: C<K>, b: C<K>, kp: &Limbs) -> C<K> {
        std::array::from_fn(|i| sub(a[i], b[i], kp))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn creduce<const K: usize>(a: C<K>, m: &Modulus) -> C<K> {
        a.map(|v| reduce(v, m))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn ccanonical<const K: usize>(a: C<K>, m: &Modulus) -> C<K> {
        a.map(|v| canonical(v, m))
    }

    /// Product in Fq (K = 1) or Fq2 = Fq[u]/(u² + 1) (K = 2, Karatsuba): inputs and output
    /// normalised, below 2.1p.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn cmul<const K: usize>(a: C<K>, b: C<K>, m: &Modulus) -> C<K> {
        let mut out = a;
        if K == 1 {
            out[0] = mul(a[0], b[0], m);
        } else {
            let (a0, a1, b0, b1) = (a[0], a[K - 1], b[0], b[K - 1]);
            let t0 = mul(a0, b0, m);
            let t1 = mul(a1, b1, m);
            let t2 = mul(normalize(add(a0, a1)), normalize(add(b0, b1)), m);
            out[0] = reduce(sub(t0, t1, &m.p2), m);
            out[K - 1] = reduce(sub(sub(t2, t0, &m.p2), t1, &m.p2), m);
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gather_coord<const K: usize>(values: [&[Limbs; K]; 8]) -> C<K> {
        std::array::from_fn(|k| gather(values.map(|v| &v[k])))
    }

    /// Eight additions' operands and the running products of Montgomery's trick.
    #[derive(Clone, Copy)]
    struct Group<const K: usize> {
        qx: C<K>,
        qy: C<K>,
        px: C<K>,
        py: C<K>,
        den: C<K>,
        prefix: C<K>,
    }

    const EMPTY: u8 = 0;
    const FULL: u8 = 1;
    const BUSY: u8 = 2;

    /// One window's buckets.
    struct Buckets<'m, const K: usize> {
        points: Vec<LanePoint<K>>,
        state: Vec<u8>,
        batch: Vec<(u32, LanePoint<K>)>,
        batch_size: usize,
        /// Points that met their bucket in the batch, for the next batch (at most `batch_size`).
        deferred: Vec<(u32, LanePoint<K>)>,
        /// Past that: summed per bucket in projective form at the end.
        overflow: Vec<(u32, LanePoint<K>)>,
        groups: Vec<Group<K>>,
        m: &'m Modulus,
        /// The lane form of one (Montgomery 2^260 mod p), and of the padding lanes' points.
        one: [Limbs; K],
    }

    impl<'m, const K: usize> Buckets<'m, K> {
        fn new(count: usize, m: &'m Modulus, one: [Limbs; K]) -> Self {
            let batch_size = (count / 4).clamp(8, BATCH);
            Buckets {
                points: vec![LanePoint { x: [ZERO; K], y: [ZERO; K] }; count],
                state: vec![EMPTY; count],
                batch: Vec::with_capacity(batch_size),
                batch_size,
                deferred: Vec::with_capacity(batch_size),
                overflow: Vec::new(),
                groups: Vec::with_capacity(batch_size.div_ceil(8)),
                m,
                one,
            }
        }

        /// Queues `p` for bucket `b`; true when the batch is full.
        fn push<P: LaneCurve<K>>(&mut self, b: usize, p: LanePoint<K>) -> bool {
            match self.state[b] {
                EMPTY => {
                    self.points[b] = p;
                    self.state[b] = FULL;
                }
                FULL if self.points[b].x == p.x => match double_or_cancel::<K, P>(&self.points[b], &p) {
                    Some(sum) => self.points[b] = sum,
                    None => self.state[b] = EMPTY,
                },
                FULL => {
                    self.state[b] = BUSY;
                    self.batch.push((b as u32, p));
                }
                _ if self.deferred.len() < self.batch_size => self.deferred.push((b as u32, p)),
                _ => self.overflow.push((b as u32, p)),
            }
            self.batch.len() >= self.batch_size
        }

        /// Adds `p` into bucket `b`, running the batch when it is full.
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn add<P: LaneCurve<K>>(&mut self, b: usize, p: LanePoint<K>) {
            if self.push::<P>(b, p) {
                self.flush_and_retry::<P>();
            }
        }

        /// Runs the batch, then queues the deferred points again, as long as that fills batches.
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn flush_and_retry<P: LaneCurve<K>>(&mut self) {
            loop {
                self.flush::<P>();
                let pending = std::mem::take(&mut self.deferred);
                let mut rest = pending.into_iter();
                let mut full = false;
                for (b, p) in rest.by_ref() {
                    if self.push::<P>(b as usize, p) {
                        full = true;
                        break;
                    }
                }
                self.deferred.extend(rest);
                if !full {
                    return;
                }
            }
        }

        /// The batch's additions, eight at a time, with one inversion.
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn flush<P: LaneCurve<K>>(&mut self) {
            if self.batch.is_empty() {
                return;
            }
            let m = self.m;
            let pad = LanePoint { x: [ZERO; K], y: [ZERO; K] };
            let pad_p = LanePoint { x: self.one, y: [ZERO; K] };
            self.groups.clear();
            let mut acc: C<K> = std::array::from_fn(|k| splat_limbs(&self.one[k]));
            for chunk in self.batch.chunks(8) {
                let q: [&LanePoint<K>; 8] =
                    std::array::from_fn(|l| chunk.get(l).map_or(&pad, |(b, _)| &self.points[*b as usize]));
                let p: [&LanePoint<K>; 8] = std::array::from_fn(|l| chunk.get(l).map_or(&pad_p, |(_, p)| p));
                let qx = gather_coord(q.map(|v| &v.x));
                let px = gather_coord(p.map(|v| &v.x));
                let den = csub(px, qx, &m.p);
                self.groups.push(Group {
                    qx,
                    qy: gather_coord(q.map(|v| &v.y)),
                    px,
                    py: gather_coord(p.map(|v| &v.y)),
                    den,
                    prefix: acc,
                });
                acc = cmul(acc, den, m);
            }
            let acc = scatter_coord(ccanonical(acc, m));
            let inverses = invert_lanes::<K, P>(acc);
            let mut inv: C<K> = gather_coord(std::array::from_fn(|l| &inverses[l]));
            for (g, chunk) in self.groups.iter().zip(self.batch.chunks(8)).rev() {
                let inv_g = cmul(inv, g.prefix, m);
                inv = cmul(inv, g.den, m);
                let slope = cmul(csub(g.py, g.qy, &m.p), inv_g, m);
                let x3 = ccanonical(creduce(csub(csub(cmul(slope, slope, m), g.qx, &m.p2), g.px, &ZERO), m), m);
                let y3 = ccanonical(creduce(csub(cmul(slope, csub(g.qx, x3, &m.p), m), g.qy, &m.p), m), m);
                let (x3, y3) = (scatter_coord(x3), scatter_coord(y3));
                for (l, (b, _)) in chunk.iter().enumerate() {
                    let b = *b as usize;
                    self.points[b] = LanePoint { x: x3[l], y: y3[l] };
                    self.state[b] = FULL;
                }
            }
            self.batch.clear();
        }

        /// Everything pending, then Σ (b + 1)·bucket[b].
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn finish<P: LaneCurve<K>>(mut self) -> Projective<P> {
            // What is still deferred shares buckets; a few rounds, then the overflow takes it.
            for _ in 0..4 {
                self.flush_and_retry::<P>();
                if self.deferred.is_empty() {
                    break;
                }
            }
            self.flush::<P>();
            self.overflow.append(&mut self.deferred);
            self.merge_overflow::<P>();
            self.reduce::<P>()
        }

        /// Folds the overflow into the buckets: summed per bucket in projective form, then one
        /// batch (each bucket at most once).
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn merge_overflow<P: LaneCurve<K>>(&mut self) {
            if self.overflow.is_empty() {
                return;
            }
            let mut overflow = std::mem::take(&mut self.overflow);
            overflow.sort_unstable_by_key(|(b, _)| *b);
            let mut sums: Vec<(u32, Projective<P>)> = Vec::new();
            for (b, p) in overflow {
                let p = point_from_lanes::<K, P>(&p);
                match sums.last_mut() {
                    Some((last, sum)) if *last == b => *sum += p,
                    _ => sums.push((b, p.into_group())),
                }
            }
            let affine = Projective::normalize_batch(&sums.iter().map(|(_, s)| *s).collect::<Vec<_>>());
            for ((b, _), p) in sums.iter().zip(&affine) {
                if !p.is_zero() && self.push::<P>(*b as usize, point_to_lanes(p)) {
                    self.flush::<P>();
                }
            }
            self.flush::<P>();
        }

        /// Σ (b + 1)·bucket[b]. The buckets are cut into [`SEGMENTS`] runs of `len` whose running
        /// sums advance together, one batch per step (as additions on the lanes, not one chain of
        /// projective additions): bucket `s·len + j` weighs `s·len + j + 1`, so the sum is
        /// Σ_s acc_s + len·Σ_s s·running_s with running_s = Σ_j B_sj and acc_s = Σ_j (j + 1)·B_sj.
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn reduce<P: LaneCurve<K>>(mut self) -> Projective<P> {
            let count = self.points.len();
            let segments = SEGMENTS.min(count);
            let len = count.div_ceil(segments);
            let buckets = std::mem::take(&mut self.points);
            let states = std::mem::take(&mut self.state);
            // Slots 0..segments hold the running sums, segments..2·segments the accumulators.
            self.points = vec![LanePoint { x: [ZERO; K], y: [ZERO; K] }; 2 * segments];
            self.state = vec![EMPTY; 2 * segments];
            self.batch_size = usize::MAX;
            for j in (0..len).rev() {
                for s in 0..segments {
                    let b = s * len + j;
                    if b < count && states[b] == FULL {
                        self.push::<P>(s, buckets[b]);
                    }
                }
                self.flush::<P>();
                for s in 0..segments {
                    if self.state[s] == FULL {
                        self.push::<P>(segments + s, self.points[s]);
                    }
                }
                self.flush::<P>();
            }
            let slot = |i: usize| (self.state[i] == FULL).then(|| point_from_lanes::<K, P>(&self.points[i]));
            let mut total = Projective::<P>::zero();
            let (mut running, mut weighted) = (Projective::<P>::zero(), Projective::<P>::zero());
            for s in (0..segments).rev() {
                if let Some(acc) = slot(segments + s) {
                    total += acc;
                }
                if s > 0 {
                    if let Some(r) = slot(s) {
                        running += r;
                    }
                    weighted += running;
                }
            }
            total + weighted * <P::ScalarField as From<u64>>::from(len as u64)
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn scatter_coord<const K: usize>(x: C<K>) -> [[Limbs; K]; 8] {
        let parts: [[Limbs; 8]; K] = x.map(|v| scatter(v));
        std::array::from_fn(|l| std::array::from_fn(|k| parts[k][l]))
    }

    /// Σ d_i·P_i for one window's digits.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn window_sum<const K: usize, P: LaneCurve<K>>(
        bases: &LaneBases<K>,
        digits: &[i32],
        m: &Modulus,
    ) -> Projective<P> {
        let used = digits.iter().map(|d| d.unsigned_abs() as usize).max().unwrap_or(0);
        if used == 0 {
            return Projective::zero();
        }
        let one = P::to_lanes(&<P::BaseField as ark_ff::Field>::ONE);
        let mut buckets = Buckets::<K>::new(used, m, one);
        for ((point, present), &d) in bases.points.iter().zip(&bases.present).zip(digits) {
            if d == 0 || !present {
                continue;
            }
            let mut point = *point;
            if d < 0 {
                point.y = point.y.map(|y| negate(&y, &m.p));
            }
            buckets.add::<P>(d.unsigned_abs() as usize - 1, point);
        }
        buckets.finish::<P>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::{PrimeGroup, VariableBaseMSM};
    use ark_ff::{Field, UniformRand};
    use ark_std::rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn lane_form_round_trips() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let x = Fq::rand(&mut rng);
            assert_eq!(fq_from_lanes(&fq_to_lanes(&x)), x);
        }
        assert_eq!(inverse_of_sixteen() * SIXTEEN, Fq::ONE);
        let m = modulus();
        let x = Fq::rand(&mut rng);
        assert_eq!(fq_from_lanes(&negate(&fq_to_lanes(&x), &m.p)), -x);
        assert_eq!(negate(&[0; 5], &m.p), [0; 5]);
    }

    fn check<const K: usize, P>(bases: &[Affine<P>], scalars: &[Fr])
    where
        P: LaneCurve<K> + SWCurveConfig<ScalarField = Fr>,
    {
        let big: Vec<_> = scalars.iter().map(|s| s.into_bigint()).collect();
        let Some(ours) = msm::<K, P>(&LaneBases::new(bases), &big) else {
            eprintln!("no AVX-512 IFMA on this CPU: skipped");
            return;
        };
        let expected = Projective::<P>::msm(bases, scalars).expect("lengths");
        assert_eq!(ours.into_affine(), expected.into_affine(), "{} points", bases.len());
    }

    #[test]
    fn matches_arkworks_on_g1_and_g2_including_edge_cases() {
        let mut rng = StdRng::seed_from_u64(11);
        for n in [0usize, 1, 7, 8, 9, 33, 300, 5000] {
            let (g1, scalars) = crate::msm::tests::inputs_with_edge_cases(n, &mut rng);
            check::<1, _>(&g1, &scalars);
            let g2: Vec<G2Affine> = (0..n.min(600)).map(|_| G2Projective::rand(&mut rng).into_affine()).collect();
            check::<2, _>(&g2, &scalars[..g2.len()]);
        }
        // One bucket for everything: the deferred queue and the overflow.
        let p = G1Projective::generator().into_affine();
        check::<1, _>(&vec![p; 5000], &vec![Fr::from(123_456_789u64); 5000]);
        // Mostly bits, as witnesses have.
        let g1: Vec<G1Affine> = (0..4000).map(|_| G1Projective::rand(&mut rng).into_affine()).collect();
        let scalars: Vec<Fr> =
            (0..4000u64).map(|i| if i % 3 == 0 { Fr::rand(&mut rng) } else { Fr::from(i % 2) }).collect();
        check::<1, _>(&g1, &scalars);
    }

    /// Products and differences on the lanes against ark-ff's.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lane_arithmetic_matches_ark_ff() {
        use circuits::lanes::{canonical, gather, mul, reduce, scatter, sub};

        #[target_feature(enable = "avx512f,avx512ifma")]
        fn ops(a: [Limbs; 8], b: [Limbs; 8], m: &Modulus) -> ([Limbs; 8], [Limbs; 8]) {
            let x = gather(std::array::from_fn(|i| &a[i]));
            let y = gather(std::array::from_fn(|i| &b[i]));
            (scatter(canonical(mul(x, y, m), m)), scatter(canonical(reduce(sub(x, y, &m.p), m), m)))
        }

        if !circuits::lanes::available() {
            eprintln!("no AVX-512 IFMA on this CPU: skipped");
            return;
        }
        let mut rng = StdRng::seed_from_u64(3);
        let m = modulus();
        for round in 0..50 {
            let mut a: [Fq; 8] = std::array::from_fn(|_| Fq::rand(&mut rng));
            let b: [Fq; 8] = std::array::from_fn(|_| Fq::rand(&mut rng));
            if round == 0 {
                a[0] = -Fq::ONE;
                a[1] = Fq::ZERO;
            }
            // SAFETY: `available()` confirmed the features `ops` enables.
            let (prod, diff) = unsafe { ops(a.map(|x| fq_to_lanes(&x)), b.map(|x| fq_to_lanes(&x)), &m) };
            for i in 0..8 {
                assert_eq!(fq_from_lanes(&diff[i]), a[i] - b[i]);
                assert_eq!(fq_from_lanes(&prod[i]), a[i] * b[i]);
            }
        }
    }
}
