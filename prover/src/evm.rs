//! Keys and proofs in the form an EVM Groth16 verifier takes (the BN254 precompiles of EIP-196
//! and EIP-197), and the rule that turns a block hash into the challenge entropy.
//!
//! Every coordinate is a 32-byte big-endian word. G2 points are written imaginary part first,
//! (x.c1, x.c0, y.c1, y.c0), as the pairing precompile reads them.

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField, Zero};

use crate::groth16::Proof;
use crate::keys::VerifyingKey;

/// A 32-byte big-endian word.
pub type Word = [u8; 32];

fn word(x: &Fq) -> Word {
    let mut w = [0u8; 32];
    w.copy_from_slice(&x.into_bigint().to_bytes_be());
    w
}

fn g1(p: &G1Affine) -> [Word; 2] {
    if p.is_zero() { [[0; 32]; 2] } else { [word(&p.x), word(&p.y)] }
}

fn g2(p: &G2Affine) -> [Word; 4] {
    if p.is_zero() { [[0; 32]; 4] } else { [word(&p.x.c1), word(&p.x.c0), word(&p.y.c1), word(&p.y.c0)] }
}

fn hex(w: &Word) -> String {
    format!("0x{}", w.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn json_list(words: &[Word]) -> String {
    format!("[{}]", words.iter().map(|w| format!("\"{}\"", hex(w))).collect::<Vec<_>>().join(", "))
}

/// A proof as the verifier contract takes it: A, B and C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvmProof {
    /// A (G1).
    pub a: [Word; 2],
    /// B (G2, imaginary parts first).
    pub b: [Word; 4],
    /// C (G1).
    pub c: [Word; 2],
}

impl EvmProof {
    /// The proof's words.
    pub fn new(proof: &Proof) -> Self {
        EvmProof { a: g1(&proof.a), b: g2(&proof.b), c: g1(&proof.c) }
    }

    /// The eight words in order (A, B, C), as `uint256[8]`.
    pub fn words(&self) -> Vec<Word> {
        [&self.a[..], &self.b[..], &self.c[..]].concat()
    }

    /// `{"a": [...], "b": [...], "c": [...]}` with 0x-prefixed hex words.
    pub fn to_json(&self) -> String {
        format!("{{\"a\": {}, \"b\": {}, \"c\": {}}}", json_list(&self.a), json_list(&self.b), json_list(&self.c))
    }
}

/// Why eight words are not a proof (as a host publishes it off the chain, or anyone could).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofWordsError {
    /// Not eight words.
    #[error("a proof is 8 words, not {0}")]
    Length(usize),
    /// A coordinate is not below the base field's modulus (the pairing precompile refuses it).
    #[error("word {0} is not a base field element")]
    NotReduced(usize),
    /// A point is not on the curve.
    #[error("{0} is not a point of the curve")]
    NotOnCurve(&'static str),
    /// A G2 point is outside the prime-order subgroup.
    #[error("{0} is not in the prime-order subgroup")]
    NotInSubgroup(&'static str),
}

/// A base field element from its big-endian word, refusing any word not below the modulus.
fn fq(w: &Word, index: usize) -> Result<Fq, ProofWordsError> {
    let x = Fq::from_be_bytes_mod_order(w);
    if word(&x) == *w { Ok(x) } else { Err(ProofWordsError::NotReduced(index)) }
}

fn g1_of(words: &[Word], at: usize, name: &'static str) -> Result<G1Affine, ProofWordsError> {
    let (x, y) = (fq(&words[at], at)?, fq(&words[at + 1], at + 1)?);
    if x.is_zero() && y.is_zero() {
        return Ok(G1Affine::zero()); // the precompile's point at infinity
    }
    let p = G1Affine::new_unchecked(x, y);
    if !p.is_on_curve() {
        return Err(ProofWordsError::NotOnCurve(name));
    }
    Ok(p) // BN254's G1 has cofactor 1: on the curve is in the group
}

fn g2_of(words: &[Word], at: usize, name: &'static str) -> Result<G2Affine, ProofWordsError> {
    let c = |i: usize| fq(&words[at + i], at + i);
    let (x, y) = (Fq2::new(c(1)?, c(0)?), Fq2::new(c(3)?, c(2)?));
    if x.is_zero() && y.is_zero() {
        return Ok(G2Affine::zero());
    }
    let p = G2Affine::new_unchecked(x, y);
    if !p.is_on_curve() {
        return Err(ProofWordsError::NotOnCurve(name));
    }
    if !p.is_in_correct_subgroup_assuming_on_curve() {
        return Err(ProofWordsError::NotInSubgroup(name));
    }
    Ok(p)
}

impl EvmProof {
    /// The proof its eight words (A, B, C, as `uint256[8]`) encode, checked as the pairing
    /// precompile would: every coordinate below the modulus, every point on the curve and, for
    /// B, in the prime-order subgroup. Words from a peer go through here before any pairing.
    pub fn proof_of_words(words: &[Word]) -> Result<Proof, ProofWordsError> {
        if words.len() != 8 {
            return Err(ProofWordsError::Length(words.len()));
        }
        Ok(Proof { a: g1_of(words, 0, "A")?, b: g2_of(words, 2, "B")?, c: g1_of(words, 6, "C")? })
    }
}

/// Verifies a proof given as the eight words a host publishes, against the public inputs the
/// chain fixes (the request's dataset root, the period's entropy, the slot's index): the check a
/// validator makes off the chain, with the same outcome as the verifier contract.
pub fn verify_words(
    verifier: &crate::groth16::Verifier,
    dataset_root: Fr,
    entropy: Fr,
    slot_index: u64,
    words: &[Word],
) -> Result<bool, ProofWordsError> {
    let proof = EvmProof::proof_of_words(words)?;
    Ok(verifier.verify(dataset_root, entropy, slot_index, &proof))
}

/// A verifying key as the verifier contract is deployed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvmVerifyingKey {
    /// α (G1).
    pub alpha: [Word; 2],
    /// β (G2).
    pub beta: [Word; 4],
    /// γ (G2).
    pub gamma: [Word; 4],
    /// δ (G2).
    pub delta: [Word; 4],
    /// The input commitments (G1): one for the constant and one per public input.
    pub ic: Vec<[Word; 2]>,
}

impl EvmVerifyingKey {
    /// The key's words.
    pub fn new(vk: &VerifyingKey) -> Self {
        EvmVerifyingKey {
            alpha: g1(&vk.alpha_g1),
            beta: g2(&vk.beta_g2),
            gamma: g2(&vk.gamma_g2),
            delta: g2(&vk.delta_g2),
            ic: vk.gamma_abc_g1.iter().map(g1).collect(),
        }
    }

    /// The key as JSON with 0x-prefixed hex words.
    pub fn to_json(&self) -> String {
        let ic: Vec<String> = self.ic.iter().map(|p| json_list(p)).collect();
        format!(
            "{{\"alpha\": {}, \"beta\": {}, \"gamma\": {}, \"delta\": {}, \"ic\": [{}]}}",
            json_list(&self.alpha),
            json_list(&self.beta),
            json_list(&self.gamma),
            json_list(&self.delta),
            ic.join(", ")
        )
    }
}

/// The challenge entropy of a block hash: the hash read as a big-endian 256-bit integer, reduced
/// modulo the BN254 scalar field's order, which is `uint256(blockhash(n)) % r` in Solidity.
pub fn entropy_from_block_hash(hash: &[u8; 32]) -> Fr {
    Fr::from_be_bytes_mod_order(hash)
}
