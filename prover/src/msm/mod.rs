//! Multi-scalar multiplication for the prover: Pippenger's bucket method with signed digits and
//! **batch-affine** bucket accumulation, for any short-Weierstrass curve (G1 and G2 of BN254).
//!
//! A Groth16 proof is mostly five MSMs over the proving key. arkworks adds each point into its
//! bucket with a mixed Jacobian addition (7 multiplications and 4 squarings). Here the buckets are
//! affine: a batch of up to [`BATCH`] additions into distinct buckets shares one field inversion
//! (Montgomery's trick: 3 multiplications per element), after which each addition costs a
//! multiplication for the slope, a squaring and a multiplication. That is about 6 products per
//! addition instead of 11. A batch holds at most a quarter of the buckets' count, so few points
//! find their bucket busy; those go into the bucket's projective overflow with a mixed addition,
//! which keeps hot buckets (the top window, runs of equal scalars) as cheap as in arkworks.
//! Doubling (the same point twice) and cancellation (a point and its negation) are exact. Signed digits in [−2^(c−1), 2^(c−1)] halve the buckets; windows run in
//! parallel on rayon's threads.

use ark_ec::AdditiveGroup;
use ark_ec::AffineRepr;
use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ff::{BigInteger, Field, PrimeField, Zero};
use rayon::prelude::*;

pub(crate) mod lanes;

/// Most additions per shared inversion.
const BATCH: usize = 2048;

/// Batches hold at most this fraction of the buckets, so that few points find their bucket busy.
const BATCH_PER_BUCKETS: usize = 4;

/// Below this many points the plain double-and-add sum is used.
const SMALL: usize = 32;

/// Σ scalars[i] · bases[i] (pairs beyond the shorter slice are ignored).
pub fn msm<P: SWCurveConfig>(bases: &[Affine<P>], scalars: &[<P::ScalarField as PrimeField>::BigInt]) -> Projective<P> {
    let n = bases.len().min(scalars.len());
    if n < SMALL {
        return bases.iter().zip(scalars).map(|(b, s)| b.mul_bigint(s)).sum();
    }
    let bits = P::ScalarField::MODULUS_BIT_SIZE as usize;
    let c = window_bits(n, bits);
    let windows = (bits + 1).div_ceil(c);
    let digits = signed_digits(&scalars[..n], &vec![c; windows]);
    let sums: Vec<Projective<P>> =
        (0..windows).into_par_iter().map(|w| window_sum(&bases[..n], &digits[w * n..(w + 1) * n], c)).collect();
    let mut acc = Projective::<P>::zero();
    for sum in sums.iter().rev() {
        for _ in 0..c {
            acc.double_in_place();
        }
        acc += sum;
    }
    acc
}

/// The window width with the fewest field products: `windows · (n · 6 + buckets · 2 · 12)`.
fn window_bits(n: usize, bits: usize) -> usize {
    (4..=20)
        .min_by_key(|&c| {
            let windows = (bits + 1).div_ceil(c);
            windows * (n * 6 + (1usize << (c - 1)) * 24)
        })
        .unwrap_or(16)
}

/// `c` bits of `limbs` from bit `pos`.
fn bits_at(limbs: &[u64], pos: usize, c: usize) -> u64 {
    let (limb, off) = (pos / 64, pos % 64);
    let mut v = limbs.get(limb).copied().unwrap_or(0) >> off;
    if off + c > 64 && off > 0 {
        v |= limbs.get(limb + 1).copied().unwrap_or(0) << (64 - off);
    }
    v & ((1u64 << c) - 1)
}

/// Signed digits of every scalar in windows of the given widths (low bits first), window-major:
/// `digits[w · n + i]` is digit `w` of scalar `i`, in [−2^(c_w−1), 2^(c_w−1)] for width c_w. The
/// widths must cover one bit more than the scalars have (the top window absorbs the last carry).
pub(crate) fn signed_digits<B: BigInteger>(scalars: &[B], widths: &[usize]) -> Vec<i32> {
    let n = scalars.len();
    let mut digits = vec![0i32; n * widths.len()];
    for (i, s) in scalars.iter().enumerate() {
        let limbs = s.as_ref();
        let (mut carry, mut pos) = (0i64, 0usize);
        for (w, &c) in widths.iter().enumerate() {
            let half = 1i64 << (c - 1);
            let mut d = bits_at(limbs, pos, c) as i64 + carry;
            carry = 0;
            if d > half {
                d -= 1 << c;
                carry = 1;
            }
            digits[w * n + i] = d as i32;
            pos += c;
        }
        debug_assert_eq!(carry, 0, "the top window absorbs the last carry");
    }
    digits
}

/// Σ d_i · P_i for one window's digits.
fn window_sum<P: SWCurveConfig>(bases: &[Affine<P>], digits: &[i32], c: usize) -> Projective<P> {
    let mut acc = Buckets::<P>::new(1 << (c - 1));
    for (base, &d) in bases.iter().zip(digits) {
        if d == 0 || base.is_zero() {
            continue;
        }
        let point = if d > 0 { *base } else { -*base };
        acc.add(d.unsigned_abs() as usize - 1, point);
    }
    acc.finish()
}

/// Affine buckets filled through batches of additions, with a projective overflow per bucket.
struct Buckets<P: SWCurveConfig> {
    buckets: Vec<Affine<P>>,
    /// Points that met their bucket busy in the batch: summed per bucket with mixed additions at
    /// the end. This keeps hot buckets cheap (the top window, which sees only the scalars' top
    /// bits; witnesses with many equal values such as bits) and the bucket array small.
    conflicts: Vec<(usize, Affine<P>)>,
    busy: Vec<bool>,
    batch: Vec<(usize, Affine<P>)>,
    batch_size: usize,
    denominators: Vec<P::BaseField>,
}

impl<P: SWCurveConfig> Buckets<P> {
    fn new(count: usize) -> Self {
        let batch_size = (count / BATCH_PER_BUCKETS).clamp(1, BATCH);
        Buckets {
            buckets: vec![Affine::identity(); count],
            conflicts: Vec::new(),
            busy: vec![false; count],
            batch: Vec::with_capacity(batch_size),
            batch_size,
            denominators: Vec::with_capacity(batch_size),
        }
    }

    /// Adds `point` (not the identity) into bucket `b`.
    fn add(&mut self, b: usize, point: Affine<P>) {
        if self.busy[b] {
            self.conflicts.push((b, point));
        } else if self.buckets[b].is_zero() {
            self.buckets[b] = point;
        } else {
            self.busy[b] = true;
            self.batch.push((b, point));
            if self.batch.len() >= self.batch_size {
                self.flush();
            }
        }
    }

    /// Performs the pending additions with one inversion.
    fn flush(&mut self) {
        self.denominators.clear();
        for (b, p) in &self.batch {
            let q = &self.buckets[*b];
            let den = if q.x != p.x {
                p.x - q.x
            } else if q.y == p.y {
                q.y.double() // doubling (y ≠ 0 in a group of odd order)
            } else {
                P::BaseField::ONE // q = −p: the sum is the identity; no inverse needed
            };
            self.denominators.push(den);
        }
        serial_batch_inversion(&mut self.denominators);
        for ((b, p), inv) in self.batch.iter().zip(&self.denominators) {
            let q = self.buckets[*b];
            self.busy[*b] = false;
            let slope = if q.x != p.x {
                (p.y - q.y) * inv
            } else if q.y == p.y {
                (q.x.square() * P::BaseField::from(3u64) + P::COEFF_A) * inv
            } else {
                self.buckets[*b] = Affine::identity();
                continue;
            };
            let x3 = slope.square() - q.x - p.x;
            let y3 = slope * (q.x - x3) - q.y;
            self.buckets[*b] = Affine::new_unchecked(x3, y3);
        }
        self.batch.clear();
    }

    /// Performs what is pending, then sums the buckets: Σ (b + 1) · bucket[b].
    fn finish(mut self) -> Projective<P> {
        self.flush();
        self.conflicts.sort_unstable_by_key(|(b, _)| std::cmp::Reverse(*b));
        let mut conflicts = self.conflicts.iter().peekable();
        let mut running = Projective::<P>::zero();
        let mut acc = Projective::<P>::zero();
        for (b, bucket) in self.buckets.iter().enumerate().rev() {
            if !bucket.is_zero() {
                running += bucket;
            }
            while let Some((_, p)) = conflicts.next_if(|(c, _)| *c == b) {
                running += p;
            }
            acc += running;
        }
        acc
    }
}

/// Inverts every nonzero element with one field inversion (Montgomery's trick), on this thread
/// (arkworks' version forks onto rayon, which costs more than it saves for a few thousand).
fn serial_batch_inversion<F: Field>(v: &mut [F]) {
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = F::ONE;
    for x in v.iter().filter(|x| !x.is_zero()) {
        prefix.push(acc);
        acc *= x;
    }
    let Some(mut inv) = acc.inverse() else { return };
    for (x, before) in v.iter_mut().rev().filter(|x| !x.is_zero()).zip(prefix.into_iter().rev()) {
        let next = inv * *x;
        *x = inv * before;
        inv = next;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
    use ark_ff::UniformRand;
    use ark_std::rand::{SeedableRng, rngs::StdRng};

    fn check<G: CurveGroup + VariableBaseMSM>(bases: &[G::Affine], scalars: &[Fr], ours: G)
    where
        G::ScalarField: From<Fr>,
    {
        let scalars: Vec<G::ScalarField> = scalars.iter().map(|s| G::ScalarField::from(*s)).collect();
        let expected = G::msm(bases, &scalars).expect("lengths");
        assert_eq!(ours.into_affine(), expected.into_affine(), "{} points", bases.len());
    }

    /// `n` random G1 points and scalars; above 40, with the edge cases an MSM must get right: the
    /// same point many times (doublings), a point and its negation (cancellation), the identity,
    /// zero, one and −1 as scalars, repeated scalars.
    pub(crate) fn inputs_with_edge_cases(n: usize, rng: &mut StdRng) -> (Vec<G1Affine>, Vec<Fr>) {
        let mut g1: Vec<G1Affine> = (0..n).map(|_| G1Projective::rand(rng).into_affine()).collect();
        let mut scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(rng)).collect();
        if n > 40 {
            for i in 0..20 {
                g1[i] = g1[0];
                scalars[i] = scalars[0];
            }
            g1[21] = -g1[22];
            scalars[21] = scalars[22];
            g1[23] = G1Affine::identity();
            scalars[24] = Fr::from(0u64);
            scalars[25] = Fr::from(1u64);
            scalars[26] = -Fr::from(1u64);
        }
        (g1, scalars)
    }

    #[test]
    fn matches_arkworks_on_g1_and_g2_including_edge_cases() {
        let mut rng = StdRng::seed_from_u64(9);
        for n in [0usize, 1, 31, 32, 33, 300, 5000] {
            let (g1, scalars) = inputs_with_edge_cases(n, &mut rng);
            let big: Vec<_> = scalars.iter().map(|s| s.into_bigint()).collect();
            check::<G1Projective>(&g1, &scalars, msm(&g1, &big));

            let g2: Vec<G2Affine> = (0..n.min(400)).map(|_| G2Projective::rand(&mut rng).into_affine()).collect();
            check::<G2Projective>(&g2, &scalars[..g2.len()], msm(&g2, &big[..g2.len()]));
        }
        // All scalars equal and all points equal: every addition lands in one bucket.
        let p = G1Projective::generator().into_affine();
        let bases = vec![p; 3000];
        let scalars = vec![Fr::from(123_456_789u64); 3000];
        let big: Vec<_> = scalars.iter().map(|s| s.into_bigint()).collect();
        check::<G1Projective>(&bases, &scalars, msm(&bases, &big));
    }
}
