//! The witness map: the coefficients of h(X) = (A(X)·B(X) − C(X)) / Z(X) for Groth16's H query.
//!
//! Following libsnark's reduction (the one the keys were made with): rows `0..m` are the
//! constraints, rows `m..m + inputs` bind the constant and public inputs (A = that input, B = C = 0),
//! and the domain H is the smallest power of two above. The assignment has passed
//! `circuits::r1cs::WitnessBuilder`, which checks every constraint, so C·z is computed as
//! (A·z)∘(B·z) instead of from the C matrix. Then three inverse FFTs, three FFTs on the coset
//! g·H, the quotient there (Z is the constant g^|H| − 1 on it) and one inverse coset FFT: on the
//! lanes of `ntt.rs` where the CPU has AVX-512 IFMA, else with ark-poly.

use std::time::Instant;

use ark_bn254::Fr;
use ark_ff::{BigInt, FftField, Field, One, PrimeField, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use ark_relations::gr1cs::SynthesisError;
use rayon::prelude::*;

use crate::keys::Matrix;
use crate::ntt::LaneDomain;

/// The evaluation domain of a circuit with `rows` constraints and `inputs` inputs (the constant
/// one included).
pub(crate) fn domain(rows: usize, inputs: usize) -> Result<Radix2EvaluationDomain<Fr>, SynthesisError> {
    Radix2EvaluationDomain::<Fr>::new(rows + inputs).ok_or(SynthesisError::PolynomialDegreeTooLarge)
}

/// h's coefficients as integers (domain-size many), for an assignment `z` (one, inputs, witness)
/// that satisfies the constraints `a`, `b` (and the C they imply).
pub(crate) fn witness_map(
    a: &Matrix,
    b: &Matrix,
    inputs: usize,
    z: &[Fr],
    lanes: Option<&LaneDomain>,
) -> Result<Vec<BigInt<4>>, SynthesisError> {
    let rows = a.len();
    let domain = domain(rows, inputs)?;
    let size = domain.size();
    let start = Instant::now();
    let dot = |row: &[(Fr, usize)]| row.iter().map(|(c, v)| if c.is_one() { z[*v] } else { *c * z[*v] }).sum::<Fr>();
    let mut az = vec![Fr::zero(); size];
    let mut bz = vec![Fr::zero(); size];
    az[..rows].par_iter_mut().zip(&mut bz[..rows]).zip(a.par_iter().zip(b)).for_each(|((x, y), (ra, rb))| {
        *x = dot(ra);
        *y = dot(rb);
    });
    az[rows..rows + inputs].copy_from_slice(&z[..inputs]);
    let cz: Vec<Fr> = az.par_iter().zip(&bz).map(|(x, y)| *x * y).collect();
    tracing::trace!(target: "vellum::prover", ms = start.elapsed().as_millis(), "A·z, B·z, C·z");
    let start = Instant::now();
    let lanes = lanes.filter(|d| d.size() == size).and_then(|d| d.quotient(&az, &bz, &cz));
    let h = match lanes {
        Some(h) => h,
        None => quotient_arkworks(&domain, az, bz, cz)?,
    };
    tracing::trace!(target: "vellum::prover", ms = start.elapsed().as_millis(), "seven FFTs and the quotient");
    Ok(h)
}

/// The FFTs and the quotient with ark-poly.
pub(crate) fn quotient_arkworks(
    domain: &Radix2EvaluationDomain<Fr>,
    mut az: Vec<Fr>,
    mut bz: Vec<Fr>,
    mut cz: Vec<Fr>,
) -> Result<Vec<BigInt<4>>, SynthesisError> {
    let coset = domain.get_coset(Fr::GENERATOR).ok_or(SynthesisError::PolynomialDegreeTooLarge)?;
    for v in [&mut az, &mut bz, &mut cz] {
        domain.ifft_in_place(v);
        coset.fft_in_place(v);
    }
    let z_inv = domain.evaluate_vanishing_polynomial(Fr::GENERATOR).inverse().ok_or(SynthesisError::DivisionByZero)?;
    az.par_iter_mut().zip(&bz).zip(&cz).for_each(|((h, y), c)| *h = (*h * y - c) * z_inv);
    coset.ifft_in_place(&mut az);
    Ok(az.par_iter().map(|x| x.into_bigint()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::UniformRand;
    use ark_std::rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn lanes_and_ark_poly_agree() {
        let mut rng = StdRng::seed_from_u64(5);
        for log in [6u32, 9, 16] {
            let n = 1usize << log;
            let domain = Radix2EvaluationDomain::<Fr>::new(n).expect("domain");
            let Some(lanes) = LaneDomain::new(&domain) else {
                eprintln!("no AVX-512 IFMA on this CPU: skipped");
                return;
            };
            let mut v = || (0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>();
            let (mut az, bz, cz) = (v(), v(), v());
            az[0] = -Fr::one();
            az[1] = Fr::zero();
            let ours = lanes.quotient(&az, &bz, &cz).expect("lengths");
            let theirs = quotient_arkworks(&domain, az, bz, cz).expect("domain");
            assert_eq!(ours, theirs, "n = {n}");
        }
    }
}
