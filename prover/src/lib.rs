//! # prover
//!
//! Vellum's storage proofs with Groth16 over BN254: the proof inputs read from a slot on disk
//! (`slot.rs`), setup and key files named by their hash (`keys.rs`), proving and verifying
//! (`groth16.rs`), the EVM encoding of keys and proofs and the block-hash-to-entropy rule
//! (`evm.rs`), and how many samples a target needs (`samples.rs`).
//!
//! Proving spends per proof only what Groth16 must: the constraint matrices are laid out once per
//! key (`circuits::r1cs::MatrixBuilder`, never re-synthesised), the witness is computed natively
//! by the same circuit code in value-only mode (`circuits::r1cs::WitnessBuilder`, which also
//! catches an unsatisfiable input before any group operation), and the rest is the witness map
//! (`qap.rs`, with C·z taken as A·z∘B·z) and five multi-scalar multiplications (`msm/`), over
//! rayon on every core. Where the CPU has AVX-512 IFMA, the FFTs (`ntt.rs`) and the MSMs' bucket
//! additions (`msm/lanes.rs`) run eight at a time in 52-bit lanes (`circuits::lanes`); elsewhere
//! ark-poly's FFTs and the portable batch-affine MSM (`msm/mod.rs`). `docs/design.md` has the
//! measurements.

mod evm;
mod groth16;
mod keys;
mod msm;
mod ntt;
mod qap;
mod samples;
mod slot;

pub use circuits::r1cs::{ProofInputs, ProofShape};
pub use evm::{EvmProof, EvmVerifyingKey, ProofWordsError, Word, entropy_from_block_hash, verify_words};
pub use groth16::{Proof, Prover, ProverError, Verifier, verify};
pub use keys::{
    KeyError, Keys, VerifyingKey, matrices, read_proving_key, read_proving_key_vk, read_verifying_key, setup,
    write_keys,
};

#[cfg(test)]
mod tests;
pub use msm::lanes::{LaneBases, LaneCurve, msm as msm_lanes};
pub use msm::msm;
pub use samples::{pass_probability, samples_needed};
pub use slot::{DiskSlot, SlotReadError};
