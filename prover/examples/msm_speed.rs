//! Times `prover::msm` against arkworks' MSM on random G1 and G2 inputs:
//! `cargo run -p prover --release --example msm_speed -- 100000`.

use std::time::Instant;

use ark_bn254::{Fr, G1Projective, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{PrimeField, UniformRand};
use ark_std::rand::{SeedableRng, rngs::StdRng};

fn main() {
    for n in std::env::args().skip(1).filter_map(|a| a.parse().ok()) {
        one(n);
    }
}

fn one(n: usize) {
    let mut rng = StdRng::seed_from_u64(1);
    let g1: Vec<_> = (0..n).map(|_| G1Projective::rand(&mut rng)).collect();
    let g1 = G1Projective::normalize_batch(&g1);
    let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    let big: Vec<_> = scalars.iter().map(|s| s.into_bigint()).collect();
    let t = Instant::now();
    let ours = prover::msm(&g1, &big);
    let ours_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let theirs = G1Projective::msm_bigint(&g1, &big);
    let theirs_s = t.elapsed().as_secs_f64();
    assert_eq!(ours.into_affine(), theirs.into_affine());
    println!("G1 n = {n}: ours {ours_s:.3} s, arkworks {theirs_s:.3} s");
    let m = n / 4;
    let g2: Vec<_> = (0..m).map(|_| G2Projective::rand(&mut rng)).collect();
    let g2 = G2Projective::normalize_batch(&g2);
    let t = Instant::now();
    let ours = prover::msm(&g2, &big[..m]);
    let ours_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let theirs = G2Projective::msm_bigint(&g2, &big[..m]);
    let theirs_s = t.elapsed().as_secs_f64();
    assert_eq!(ours.into_affine(), theirs.into_affine());
    println!("G2 n = {m}: ours {ours_s:.3} s, arkworks {theirs_s:.3} s");
}
