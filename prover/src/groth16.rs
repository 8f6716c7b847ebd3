//! Proving and verifying.

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::{Groth16, PreparedVerifyingKey, prepare_verifying_key};
use ark_relations::gr1cs::SynthesisError;
use circuits::r1cs::{ProofInputs, StorageProofError, WitnessBuilder, public_inputs, synthesize};

use crate::keys::{Keys, VerifyingKey, os_seeded_rng};

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
}

impl Prover {
    /// A prover for `keys`.
    pub fn new(keys: Keys) -> Self {
        let pvk = prepare_verifying_key(&keys.pk.vk);
        Prover { keys, pvk }
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

    /// Proves from an assignment that [`Prover::witness`] made.
    pub fn prove_assignment(&self, assignment: &[Fr]) -> Result<Proof, ProverError> {
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
    let public = public_inputs(dataset_root, entropy, slot_index);
    Groth16::<Bn254>::verify_proof(&prepare_verifying_key(vk), proof, &public).unwrap_or(false)
}
