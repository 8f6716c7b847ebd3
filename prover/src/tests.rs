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
