//! Times `prover::msm` (portable) and `prover::msm_lanes` (AVX-512 IFMA) against arkworks' MSM on
//! random G1 and G2 inputs: `cargo run -p prover --release --example msm_speed -- 100000`
//! (`--lanes` times the lanes alone, for profiling).

use std::time::Instant;

use ark_bn254::{Fr, G1Projective, G2Projective};
use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{PrimeField, UniformRand};
use ark_std::rand::{SeedableRng, rngs::StdRng};
use prover::LaneCurve;

fn main() {
    let lanes_only = std::env::args().any(|a| a == "--lanes");
    for n in std::env::args().skip(1).filter_map(|a| a.parse().ok()) {
        let mut rng = StdRng::seed_from_u64(1);
        let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let big: Vec<_> = scalars.iter().map(|s| s.into_bigint()).collect();
        one::<1, ark_bn254::g1::Config>("G1", &points::<G1Projective>(n, &mut rng), &big, lanes_only);
        let m = n / 4;
        one::<2, ark_bn254::g2::Config>("G2", &points::<G2Projective>(m, &mut rng), &big[..m], lanes_only);
    }
}

/// `n` distinct points quickly: a random start and a random step.
fn points<G: CurveGroup>(n: usize, rng: &mut StdRng) -> Vec<G::Affine> {
    let step = G::rand(rng);
    let mut p = G::rand(rng);
    let all: Vec<G> = (0..n)
        .map(|_| {
            p += step;
            p
        })
        .collect();
    G::normalize_batch(&all)
}

fn one<const K: usize, P: LaneCurve<K> + SWCurveConfig<ScalarField = Fr>>(
    name: &str,
    bases: &[Affine<P>],
    big: &[<Fr as PrimeField>::BigInt],
    lanes_only: bool,
) {
    let n = bases.len();
    let prepared = prover::LaneBases::new(bases);
    let t = Instant::now();
    let lanes = prover::msm_lanes(&prepared, big);
    let lanes_s = t.elapsed().as_secs_f64();
    if lanes_only {
        println!("{name} n = {n}: lanes {lanes_s:.3} s");
        return;
    }
    let t = Instant::now();
    let ours = prover::msm(bases, big);
    let ours_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let theirs = Projective::<P>::msm_bigint(bases, big);
    let theirs_s = t.elapsed().as_secs_f64();
    assert_eq!(ours.into_affine(), theirs.into_affine());
    if let Some(lanes) = lanes {
        assert_eq!(lanes.into_affine(), theirs.into_affine());
    }
    println!("{name} n = {n}: portable {ours_s:.3} s, lanes {lanes_s:.3} s, arkworks {theirs_s:.3} s");
}
