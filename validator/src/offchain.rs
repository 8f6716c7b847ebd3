//! Proofs off the chain, as the validator checks them (issue 15). Hosts publish their periodic
//! proofs over libp2p; the validator checks each one against what the chain fixes, never against
//! what the proof states: the request's dataset root, the period's entropy (computed from the
//! period's seed, [`contracts::rules::entropy`]) and the slot's index, then the Groth16 pairing
//! with the deployment's verifying key. A proof whose stated inputs differ from the chain's is
//! refused before any pairing, and a (slot, period) gets at most [`MAX_TRIES`] pairings, so a
//! peer flooding the topic with well-formed junk costs the validator a bounded amount of work.
//!
//! - [`ProofNet`]: how the validator asks a host for a proof it did not receive (the node's
//!   libp2p network in the binary, a table in tests);
//! - [`Checker`]: the verifying key, prepared once, and batch checks spread over the cores
//!   (behind [`ProofCheck`], so that the loop's tests need no Groth16 keys).

use std::future::Future;
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use contracts::offchain::PublishedProof;

/// Pairings spent on one (slot, period) before its further proofs are dropped unchecked.
pub const MAX_TRIES: u8 = 4;

/// How the validator reaches hosts for proofs.
pub trait ProofNet: Send + Sync + 'static {
    /// Asks the host whose wallet is `host` for its proof of `slot_id` in `period`: `Ok(None)`
    /// when it answers that it has none, `Err` when it cannot be found or does not answer.
    fn ask(
        &self,
        host: Address,
        slot_id: B256,
        period: u64,
    ) -> impl Future<Output = Result<Option<PublishedProof>, String>> + Send;

    /// The hosts whose slots the validator watches, given once per period and whenever new ones
    /// appear: the network may connect to them ahead, so their broadcasts arrive directly.
    fn watch(&self, _hosts: Vec<Address>) {}
}

/// No network: nothing can be asked (a validator without libp2p only sees proofs on chain).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNet;

impl ProofNet for NoNet {
    async fn ask(&self, _: Address, _: B256, _: u64) -> Result<Option<PublishedProof>, String> {
        Err("no network".into())
    }
}

/// What the chain fixes for a proof of a slot in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The request's dataset root.
    pub dataset_root: B256,
    /// The period's entropy.
    pub entropy: U256,
    /// The slot's index.
    pub slot_index: u64,
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The proof proves the slot for the period.
    Valid,
    /// It states other public inputs than the chain's (no pairing spent).
    WrongInputs,
    /// Its points are malformed or the pairing fails.
    Invalid,
}

/// How proofs are checked: the [`Checker`] with the deployment's key (tests use a stand-in).
pub trait ProofCheck: Send + Sync + 'static {
    /// A verdict for each proof against what the chain fixes for it (a blocking call).
    fn check_all(&self, items: &[(PublishedProof, Expected)]) -> Vec<Verdict>;
}

impl ProofCheck for Checker {
    fn check_all(&self, items: &[(PublishedProof, Expected)]) -> Vec<Verdict> {
        self.check_many(items)
    }
}

/// The deployment's verifying key, prepared for many checks.
#[derive(Clone)]
pub struct Checker {
    verifier: Arc<prover::Verifier>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker for proofs made with `vk`'s proving key.
    pub fn new(vk: &prover::VerifyingKey) -> Self {
        Self { verifier: Arc::new(prover::Verifier::new(vk)) }
    }

    /// Checks one proof against what the chain fixes.
    pub fn check(&self, proof: &PublishedProof, expected: &Expected) -> Verdict {
        if proof.dataset_root != expected.dataset_root
            || proof.entropy != expected.entropy
            || proof.slot_index != expected.slot_index
        {
            return Verdict::WrongInputs;
        }
        // (the chain's word is big-endian; field elements are read little-endian)
        let mut le = expected.dataset_root.0;
        le.reverse();
        let Some(root) = circuits::fr_from_bytes(&le) else { return Verdict::Invalid };
        let entropy = prover::entropy_from_block_hash(&expected.entropy.to_be_bytes::<32>());
        match prover::verify_words(&self.verifier, root, entropy, expected.slot_index, &proof.proof_words()) {
            Ok(true) => Verdict::Valid,
            Ok(false) | Err(_) => Verdict::Invalid,
        }
    }

    /// Checks many proofs on every core (a blocking call: run it off the async threads).
    pub fn check_many(&self, items: &[(PublishedProof, Expected)]) -> Vec<Verdict> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
        if threads <= 1 {
            return items.iter().map(|(p, e)| self.check(p, e)).collect();
        }
        let chunk = items.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = items
                .chunks(chunk)
                .map(|part| (part.len(), scope.spawn(move || part.iter().map(|(p, e)| self.check(p, e)).collect())))
                .collect();
            // (a check that panicked counts its part as invalid: nothing is taken as proven)
            parts.into_iter().flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![Verdict::Invalid; n])).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use circuits::r1cs::{ProofShape, build_inputs, dataset_path};

    /// A real proof of slot 1 of a three-slot dataset, with small parameters, and what the chain
    /// would fix for it.
    fn real_proof() -> (prover::VerifyingKey, PublishedProof, Expected) {
        let dir = tempfile::tempdir().expect("tmp");
        let shape = ProofShape { samples: 3, slot_depth: 4, dataset_levels: 1, cell_size: 64 };
        let mut roots = Vec::new();
        let mut files = Vec::new();
        for s in 0..3u8 {
            let bytes: Vec<u8> =
                (0..shape.slot_cells() as usize * shape.cell_size).map(|i| (i as u8).wrapping_mul(31) ^ s).collect();
            let levels = circuits::tree_levels(&circuits::hash_cells(&bytes, shape.cell_size, 1));
            let tree: Vec<u8> = levels.iter().flatten().flat_map(circuits::fr_to_bytes).collect();
            let (cells, tree_path) = (dir.path().join(format!("{s}.cells")), dir.path().join(format!("{s}.tree")));
            std::fs::write(&cells, &bytes).expect("cells");
            std::fs::write(&tree_path, tree).expect("tree");
            roots.push(levels[levels.len() - 1][0]);
            files.push((cells, tree_path));
        }
        let index = 1u64;
        let slot = prover::DiskSlot::open(&files[1].0, &files[1].1, shape.cell_size, shape.slot_cells()).expect("slot");
        let entropy_word = U256::from(123_456_789u64);
        let entropy = prover::entropy_from_block_hash(&entropy_word.to_be_bytes::<32>());
        let root = circuits::dataset_root(&roots);
        let inputs = build_inputs(&shape, &slot, dataset_path(&roots, index), root, entropy, index).expect("inputs");
        let keys = prover::setup(&shape).expect("setup");
        let vk = keys.pk.vk.clone();
        let proof = prover::Prover::new(keys).prove(&inputs).expect("prove");
        let words = prover::EvmProof::new(&proof).words();
        let mut be = circuits::fr_to_bytes(&root);
        be.reverse();
        let expected = Expected { dataset_root: B256::from(be), entropy: entropy_word, slot_index: index };
        let published = PublishedProof {
            slot_id: B256::repeat_byte(1),
            period: 9,
            slot_index: index,
            dataset_root: expected.dataset_root,
            entropy: entropy_word,
            proof: std::array::from_fn(|i| U256::from_be_bytes(words[i])),
        };
        (vk, published, expected)
    }

    #[test]
    fn the_checker_accepts_a_real_proof_and_nothing_else() {
        let (vk, proof, expected) = real_proof();
        let checker = Checker::new(&vk);
        assert_eq!(checker.check(&proof, &expected), Verdict::Valid);
        // other public inputs than the chain's: refused before any pairing
        let other = Expected { entropy: expected.entropy + U256::from(1u8), ..expected };
        assert_eq!(checker.check(&proof, &other), Verdict::WrongInputs);
        let other = Expected { slot_index: 2, ..expected };
        assert_eq!(checker.check(&proof, &other), Verdict::WrongInputs);
        // the proof restated for other inputs fails the pairing
        let restated = PublishedProof { slot_index: 2, ..proof };
        assert_eq!(checker.check(&restated, &Expected { slot_index: 2, ..expected }), Verdict::Invalid);
        // a damaged word, a point off the curve, words swapped
        let mut bad = proof;
        bad.proof[0] += U256::from(1u8);
        assert_eq!(checker.check(&bad, &expected), Verdict::Invalid);
        let mut swapped = proof;
        swapped.proof.swap(0, 6);
        swapped.proof.swap(1, 7);
        assert_eq!(checker.check(&swapped, &expected), Verdict::Invalid);
        // many at once, on every core, in order
        let items = vec![(proof, expected), (bad, expected), (proof, expected), (swapped, expected), (proof, other)];
        assert_eq!(
            checker.check_many(&items),
            vec![Verdict::Valid, Verdict::Invalid, Verdict::Valid, Verdict::Invalid, Verdict::WrongInputs]
        );
    }
}
