//! Proofs end to end with small parameters: a slot written to disk as the node writes it.

use std::path::{Path, PathBuf};

use ark_bn254::Fr;
use ark_ff::PrimeField;
use circuits::r1cs::{ProofShape, build_inputs, dataset_path};
use circuits::{fr_to_bytes, hash_cells, tree_levels};

use super::*;

/// Writes a slot of 2^depth pseudo-random cells and its tree file; returns (cells, tree, root).
fn write_slot(dir: &Path, name: &str, depth: u32, cell_size: usize, seed: u8) -> (PathBuf, PathBuf, Fr) {
    let bytes: Vec<u8> = (0..(1usize << depth) * cell_size)
        .map(|i| (i as u8).wrapping_mul(151).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect();
    let levels = tree_levels(&hash_cells(&bytes, cell_size, 1));
    let tree: Vec<u8> = levels.iter().flatten().flat_map(fr_to_bytes).collect();
    let (cells_path, tree_path) = (dir.join(format!("{name}.cells")), dir.join(format!("{name}.tree")));
    std::fs::write(&cells_path, &bytes).expect("cells");
    std::fs::write(&tree_path, tree).expect("tree");
    (cells_path, tree_path, levels[levels.len() - 1][0])
}

#[test]
fn proofs_verify_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let shape = ProofShape { samples: 5, slot_depth: 5, dataset_levels: 1, cell_size: 128 };
    let slots: Vec<_> =
        (0..3u8).map(|i| write_slot(dir.path(), &format!("slot{i}"), shape.slot_depth, shape.cell_size, i)).collect();
    let roots: Vec<Fr> = slots.iter().map(|s| s.2).collect();
    let dataset_root = circuits::dataset_root(&roots);
    let slot_index = 1u64;
    let (cells, tree, root) = &slots[slot_index as usize];
    let slot = DiskSlot::open(cells, tree, shape.cell_size, shape.slot_cells()).expect("open");
    assert_eq!(slot.root().expect("root"), *root);
    let entropy = entropy_from_block_hash(&[7u8; 32]);
    let inputs = build_inputs(&shape, &slot, dataset_path(&roots, slot_index), dataset_root, entropy, slot_index)
        .expect("inputs");

    // Setup, keys through files named by their hashes.
    let keys = setup(&shape).expect("setup");
    let (pk_path, vk_path) = write_keys(&keys, &dir.path().join("keys")).expect("write keys");
    let prover = Prover::new(read_proving_key(&pk_path).expect("read pk"));
    let (vk_shape, vk) = read_verifying_key(&vk_path).expect("read vk");
    assert_eq!(vk_shape, shape);
    // The proving key file holds the same verifying key, read without laying out the circuit.
    assert_eq!(read_proving_key_vk(&pk_path).expect("vk of the pk"), (shape, vk.clone()));

    let proof = prover.prove(&inputs).expect("prove");
    assert!(prover.verify(dataset_root, entropy, slot_index, &proof));
    assert!(verify(&vk, dataset_root, entropy, slot_index, &proof));

    // The same proof under any other public input is refused.
    assert!(!verify(&vk, dataset_root + Fr::from(1u64), entropy, slot_index, &proof), "wrong dataset root");
    assert!(!verify(&vk, dataset_root, entropy + Fr::from(1u64), slot_index, &proof), "wrong entropy");
    assert!(!verify(&vk, dataset_root, entropy, 2, &proof), "wrong slot index");

    // Bad inputs are caught before any proving work.
    let mut bad = inputs.clone();
    bad.samples[2].cell[0] ^= 0x80;
    assert!(matches!(prover.prove(&bad), Err(ProverError::Unsatisfied(_))));
    let mut bad = inputs.clone();
    bad.slot_root = roots[0];
    assert!(matches!(prover.prove(&bad), Err(ProverError::Unsatisfied(_))));

    // A prover that skips the check and proves a doctored assignment gets no accepted proof.
    let mut assignment = prover.witness(&inputs).expect("witness");
    let last = assignment.len() - 1;
    assignment[last] += Fr::from(1u64);
    assignment[last / 2] += Fr::from(1u64);
    let forged = prover.prove_assignment(&assignment).expect("arkworks proves anything");
    assert!(!verify(&vk, dataset_root, entropy, slot_index, &forged));

    // EVM form: eight words for the proof, A first.
    let evm = EvmProof::new(&proof);
    assert_eq!(evm.words().len(), 8);
    assert_eq!(evm.a[0].to_vec(), ark_ff::BigInteger::to_bytes_be(&proof.a.x.into_bigint()));
    assert_eq!(EvmVerifyingKey::new(&vk).ic.len(), 4, "one per public input plus the constant");

    // Off the chain: the words a host publishes decode to the same proof and verify as it does.
    let words = evm.words();
    let verifier = Verifier::new(&vk);
    assert_eq!(EvmProof::proof_of_words(&words).expect("decodes"), proof);
    assert_eq!(verify_words(&verifier, dataset_root, entropy, slot_index, &words), Ok(true));
    assert_eq!(verify_words(&verifier, dataset_root, entropy + Fr::from(1u64), slot_index, &words), Ok(false));
    assert_eq!(
        verify_words(&verifier, dataset_root, entropy, slot_index, &words[..7]),
        Err(ProofWordsError::Length(7))
    );
    let mut swapped = words.clone();
    swapped.swap(2, 3); // B's imaginary and real parts in the wrong order: another point
    assert!(!matches!(verify_words(&verifier, dataset_root, entropy, slot_index, &swapped), Ok(true)));

    // The portable path (CPUs without AVX-512 IFMA) and arkworks' own prover make valid proofs too.
    let portable = Prover::portable(read_proving_key(&pk_path).expect("read pk"));
    let assignment = portable.witness(&inputs).expect("witness");
    for proof in [
        portable.prove_assignment(&assignment).expect("portable"),
        portable.prove_assignment_arkworks(&assignment).expect("arkworks"),
    ] {
        assert!(verify(&vk, dataset_root, entropy, slot_index, &proof));
    }

    // A damaged key file is refused.
    let mut bytes = std::fs::read(&pk_path).expect("pk");
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&pk_path, bytes).expect("write");
    assert!(matches!(read_proving_key(&pk_path), Err(KeyError::Corrupt { .. })));
}

#[test]
fn entropy_is_the_block_hash_modulo_r() {
    assert_eq!(entropy_from_block_hash(&[0u8; 32]), Fr::from(0u64));
    let mut hash = [0u8; 32];
    hash[31] = 5;
    assert_eq!(entropy_from_block_hash(&hash), Fr::from(5u64));
    // 2^256 − 1 reduced mod r.
    let all = entropy_from_block_hash(&[0xff; 32]);
    assert_eq!(all, Fr::from_be_bytes_mod_order(&[0xff; 32]));
    assert_ne!(all, Fr::from(0u64));
}

#[test]
fn proof_words_from_a_peer_are_checked_before_any_pairing() {
    let zero = [0u8; 32];
    let small = |v: u8| {
        let mut w = [0u8; 32];
        w[31] = v;
        w
    };
    // (1, 2) is on BN254's G1 (2² = 1³ + 3); (1, 1) is not.
    let mut words = vec![small(1), small(2), zero, zero, zero, zero, small(1), small(2)];
    assert!(EvmProof::proof_of_words(&words).is_ok(), "B at infinity is a point (the pairing fails later)");
    words[7] = small(1);
    assert_eq!(EvmProof::proof_of_words(&words), Err(ProofWordsError::NotOnCurve("C")));
    words[7] = small(2);
    words[0] = [0xff; 32];
    assert_eq!(EvmProof::proof_of_words(&words), Err(ProofWordsError::NotReduced(0)));
    words[0] = small(1);
    words[2] = small(1);
    assert_eq!(EvmProof::proof_of_words(&words), Err(ProofWordsError::NotOnCurve("B")));
    assert_eq!(EvmProof::proof_of_words(&words[..3]), Err(ProofWordsError::Length(3)));
}

#[test]
fn a_g2_point_outside_the_subgroup_is_refused() {
    use ark_ec::AffineRepr;
    use ark_ff::{Field, UniformRand};
    // A point on the twist with a random x is almost surely outside the prime-order subgroup.
    let mut rng = ark_std::test_rng();
    let point = loop {
        let x = ark_bn254::Fq2::rand(&mut rng);
        let rhs = x.square() * x + <ark_bn254::g2::Config as ark_ec::short_weierstrass::SWCurveConfig>::COEFF_B;
        if let Some(y) = rhs.sqrt() {
            break ark_bn254::G2Affine::new_unchecked(x, y);
        }
    };
    assert!(point.is_on_curve() && !point.is_in_correct_subgroup_assuming_on_curve());
    let g1 = ark_bn254::G1Affine::generator();
    let proof = Proof { a: g1, b: point, c: g1 };
    let words = EvmProof::new(&proof).words();
    assert_eq!(EvmProof::proof_of_words(&words), Err(ProofWordsError::NotInSubgroup("B")));
}
