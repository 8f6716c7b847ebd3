//! Proving and verifying.

use std::time::Instant;

use ark_bn254::{Bn254, Fr, G1Projective, G2Projective};
use ark_ec::CurveGroup;
use ark_ff::{PrimeField, UniformRand};
use ark_groth16::{Groth16, PreparedVerifyingKey, prepare_verifying_key};
use ark_relations::gr1cs::SynthesisError;
use circuits::r1cs::{ProofInputs, StorageProofError, WitnessBuilder, public_inputs, synthesize};

use crate::keys::{Keys, VerifyingKey, os_seeded_rng};
use crate::msm::lanes::{LaneBases, msm as msm_lanes};
use crate::msm::msm;
use crate::ntt::LaneDomain;
use crate::qap::{domain, witness_map};

/// A Groth16 proof over BN254 (128 bytes compressed, 256 uncompressed).
pub type Proof = ark_groth16::Proof<Bn254>;

/// Why a proof could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// The inputs do not have the key's shape.
    #[error(transparent)]
    Shape(#[from] StorageProofError),
    /// The inputs do not satisfy the circuit (wrong data, path, root, index or entropy).
    #[error("the inputs do not satisfy the storage-proof circuit (constraint {0} fails)")]
    Unsatisfied(usize),
    /// arkworks failed.
    #[error("groth16: {0}")]
    Synthesis(#[from] SynthesisError),
}

/// Proves with one set of keys.
pub struct Prover {
    keys: Keys,
    pvk: PreparedVerifyingKey<Bn254>,
    /// The query bases in lane form, where the CPU has AVX-512 IFMA.
    lanes: Option<LaneQueries>,
    /// The FFT tables in lane form, likewise.
    ntt: Option<LaneDomain>,
}

/// The proving key's queries converted for `msm::lanes` (skipping the constant's entry of A and B).
struct LaneQueries {
    h: LaneBases<1>,
    l: LaneBases<1>,
    a: LaneBases<1>,
    b_g1: LaneBases<1>,
    b_g2: LaneBases<2>,
}

impl Prover {
    /// A prover for `keys`.
    pub fn new(keys: Keys) -> Self {
        let pvk = prepare_verifying_key(&keys.pk.vk);
        let pk = &keys.pk;
        let lanes = circuits::lanes::available().then(|| LaneQueries {
            h: LaneBases::new(&pk.h_query),
            l: LaneBases::new(&pk.l_query),
            a: LaneBases::new(&pk.a_query[1..]),
            b_g1: LaneBases::new(&pk.b_g1_query[1..]),
            b_g2: LaneBases::new(&pk.b_g2_query[1..]),
        });
        let ntt = domain(keys.num_constraints, 1 + keys.num_inputs).ok().and_then(|d| LaneDomain::new(&d));
        Prover { keys, pvk, lanes, ntt }
    }

    /// A prover that keeps to portable code (ark-poly's FFTs, `msm.rs`'s scalar MSM) even where
    /// the CPU has AVX-512 IFMA: what other CPUs run, for tests and comparisons.
    pub fn portable(keys: Keys) -> Self {
        let pvk = prepare_verifying_key(&keys.pk.vk);
        Prover { keys, pvk, lanes: None, ntt: None }
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The full assignment for `inputs` (one, public inputs, witness), computed natively.
    pub fn witness(&self, inputs: &ProofInputs) -> Result<Vec<Fr>, ProverError> {
        let k = &self.keys;
        let mut w = WitnessBuilder::with_capacity(1 + k.num_inputs + k.num_witness);
        synthesize(&mut w, &k.shape, inputs)?;
        let assignment = w.finish().map_err(ProverError::Unsatisfied)?;
        debug_assert_eq!(assignment.len(), 1 + k.num_inputs + k.num_witness);
        Ok(assignment)
    }

    /// Proves that the host holds the cells `inputs` samples.
    pub fn prove(&self, inputs: &ProofInputs) -> Result<Proof, ProverError> {
        let assignment = self.witness(inputs)?;
        self.prove_assignment(&assignment)
    }

    /// Proves from an assignment that [`Prover::witness`] made: the witness map (FFTs) from
    /// arkworks, the five MSMs from `msm.rs` (batch-affine buckets), combined as Groth16's prover
    /// does (A = α + Σ a_i·A_i + rδ, B = β + Σ a_i·B_i + sδ, C = Σ aux_i·L_i + H(τ)t(τ)/δ + sA + rB − rsδ).
    pub fn prove_assignment(&self, assignment: &[Fr]) -> Result<Proof, ProverError> {
        let k = &self.keys;
        let pk = &k.pk;
        let mut rng = os_seeded_rng();
        let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        let start = Instant::now();
        let h = witness_map(&k.matrices[0], &k.matrices[1], 1 + k.num_inputs, assignment, self.ntt.as_ref())?;
        let values: Vec<_> = assignment[1..].iter().map(|x| x.into_bigint()).collect(); // inputs, then witness
        let aux = &values[k.num_inputs..];
        if tracing::enabled!(target: "vellum::prover", tracing::Level::TRACE) {
            let small =
                |limit: u64| values.iter().filter(|v| v.0[1..].iter().all(|l| *l == 0) && v.0[0] < limit).count();
            tracing::trace!(target: "vellum::prover", zeros = small(1), bits = small(2), below_2_16 = small(1 << 16), n = values.len(), "assignment");
        }
        let mut lap = Lap(start);
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), "witness map (FFTs)");
        let lanes = self.lanes.as_ref();
        let h_acc: G1Projective = lanes.and_then(|q| msm_lanes(&q.h, &h)).unwrap_or_else(|| msm(&pk.h_query, &h));
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), n = h.len(), "MSM H");
        let l_acc: G1Projective = lanes.and_then(|q| msm_lanes(&q.l, aux)).unwrap_or_else(|| msm(&pk.l_query, aux));
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), n = aux.len(), "MSM L");
        let a_acc: G1Projective =
            lanes.and_then(|q| msm_lanes(&q.a, &values)).unwrap_or_else(|| msm(&pk.a_query[1..], &values));
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), n = values.len(), "MSM A");
        let b1_acc: G1Projective =
            lanes.and_then(|q| msm_lanes(&q.b_g1, &values)).unwrap_or_else(|| msm(&pk.b_g1_query[1..], &values));
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), "MSM B in G1");
        let b2_acc: G2Projective =
            lanes.and_then(|q| msm_lanes(&q.b_g2, &values)).unwrap_or_else(|| msm(&pk.b_g2_query[1..], &values));
        tracing::debug!(target: "vellum::prover", ms = lap.ms(), "MSM B in G2");

        let g_a = pk.delta_g1 * r + pk.a_query[0] + a_acc + pk.vk.alpha_g1;
        let g1_b = pk.delta_g1 * s + pk.b_g1_query[0] + b1_acc + pk.beta_g1;
        let g2_b = pk.vk.delta_g2 * s + pk.b_g2_query[0] + b2_acc + pk.vk.beta_g2;
        let g_c = g_a * s + g1_b * r - pk.delta_g1 * (r * s) + l_acc + h_acc;
        Ok(Proof { a: g_a.into_affine(), b: g2_b.into_affine(), c: g_c.into_affine() })
    }

    /// The same proof through arkworks' own prover (its MSMs), for comparison.
    pub fn prove_assignment_arkworks(&self, assignment: &[Fr]) -> Result<Proof, ProverError> {
        let k = &self.keys;
        let mut rng = os_seeded_rng();
        let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        Ok(Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
            &k.pk,
            r,
            s,
            &k.matrices,
            1 + k.num_inputs,
            k.num_constraints,
            assignment,
        )?)
    }

    /// Checks a proof against this prover's verifying key.
    pub fn verify(&self, dataset_root: Fr, entropy: Fr, slot_index: u64, proof: &Proof) -> bool {
        let public = public_inputs(dataset_root, entropy, slot_index);
        Groth16::<Bn254>::verify_proof(&self.pvk, proof, &public).unwrap_or(false)
    }
}

/// Checks a proof against a verifying key.
pub fn verify(vk: &VerifyingKey, dataset_root: Fr, entropy: Fr, slot_index: u64, proof: &Proof) -> bool {
    Verifier::new(vk).verify(dataset_root, entropy, slot_index, proof)
}

/// A verifying key prepared once for many checks (a validator checks every proof its group
/// owes each period; preparing the key is a pairing and more, worth doing once).
pub struct Verifier {
    pvk: PreparedVerifyingKey<Bn254>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// Prepares `vk`.
    pub fn new(vk: &VerifyingKey) -> Self {
        Self { pvk: prepare_verifying_key(vk) }
    }

    /// Whether `proof` proves the storage statement for these public inputs.
    pub fn verify(&self, dataset_root: Fr, entropy: Fr, slot_index: u64, proof: &Proof) -> bool {
        let public = public_inputs(dataset_root, entropy, slot_index);
        Groth16::<Bn254>::verify_proof(&self.pvk, proof, &public).unwrap_or(false)
    }
}

/// Milliseconds since the last lap, for the phase timings in the debug log.
struct Lap(Instant);

impl Lap {
    fn ms(&mut self) -> u128 {
        let ms = self.0.elapsed().as_millis();
        self.0 = Instant::now();
        ms
    }
}
