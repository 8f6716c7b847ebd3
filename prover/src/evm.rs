//! Keys and proofs in the form an EVM Groth16 verifier takes (the BN254 precompiles of EIP-196
//! and EIP-197), and the rule that turns a block hash into the challenge entropy.
//!
//! Every coordinate is a 32-byte big-endian word. G2 points are written imaginary part first,
//! (x.c1, x.c0, y.c1, y.c0), as the pairing precompile reads them.

use ark_bn254::{Fq, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField};

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
