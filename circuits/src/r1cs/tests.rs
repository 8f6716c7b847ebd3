use super::gadgets::{compress, permute, sponge, to_bits_canonical};
use super::*;
use crate::poseidon2::{POSEIDON2_T12, POSEIDON2_T16};
use crate::{DOMAIN_CELL, TreeKind, hash_cells, hash_elements, node_key, tree_levels};
use ark_ff::{BigInteger, PrimeField};

fn random_fr(seed: &mut u64) -> Fr {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&next(seed).to_le_bytes());
    }
    Fr::from_le_bytes_mod_order(&bytes)
}

fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A test circuit over some witnesses.
trait Lay {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V>;
}

/// Lays `circuit` out over witnesses `values` in both modes, checks the assignment against the
/// matrices, and returns the outputs' values and the matrices.
fn run(values: &[Fr], circuit: &impl Lay) -> (Vec<Fr>, R1cs) {
    let mut m = MatrixBuilder::new();
    let vars: Vec<Lc> = values.iter().map(|v| m.witness(*v)).collect();
    circuit.lay(&mut m, &vars);
    let r1cs = m.finish();
    let mut w = WitnessBuilder::new();
    let vals: Vec<Fr> = values.iter().map(|v| w.witness(*v)).collect();
    let out = circuit.lay(&mut w, &vals);
    let assignment = w.finish().expect("satisfied");
    assert_eq!(assignment.len(), 1 + r1cs.num_inputs + r1cs.num_witness);
    assert_eq!(r1cs.check(&assignment), Ok(()));
    (out, r1cs)
}

struct Perm<const T: usize>;
impl Lay for Perm<12> {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V> {
        let mut x = inputs.to_vec();
        permute(cs, &POSEIDON2_T12, &mut x);
        x
    }
}
impl Lay for Perm<16> {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V> {
        let mut x = inputs.to_vec();
        permute(cs, &POSEIDON2_T16, &mut x);
        x
    }
}

struct Sponge;
impl Lay for Sponge {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V> {
        vec![sponge(cs, DOMAIN_CELL, inputs)]
    }
}

struct Compress(u64);
impl Lay for Compress {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V> {
        let key = cs.constant(Fr::from(self.0));
        vec![compress(cs, inputs, &key)]
    }
}

struct Canonical;
impl Lay for Canonical {
    fn lay<C: Cs>(&self, cs: &mut C, inputs: &[C::V]) -> Vec<C::V> {
        to_bits_canonical(cs, &inputs[0])
    }
}

#[test]
fn permutation_gadgets_match_native() {
    let mut seed = 1;
    for _ in 0..5 {
        let state: Vec<Fr> = (0..16).map(|_| random_fr(&mut seed)).collect();
        let (out, r1cs) = run(&state, &Perm::<16>);
        assert_eq!(out, POSEIDON2_T16.permutation(state.clone().try_into().expect("16")).to_vec());
        assert_eq!(r1cs.num_constraints(), POSEIDON2_T16.r1cs_constraints());
        let (out, r1cs) = run(&state[..12], &Perm::<12>);
        assert_eq!(out, POSEIDON2_T12.permutation(state[..12].try_into().expect("12")).to_vec());
        assert_eq!(r1cs.num_constraints(), POSEIDON2_T12.r1cs_constraints());
    }
}

#[test]
fn sponge_and_compression_gadgets_match_native() {
    let mut seed = 2;
    for n in [0usize, 1, 14, 15, 16, 67] {
        let elements: Vec<Fr> = (0..n).map(|_| random_fr(&mut seed)).collect();
        let (out, _) = run(&elements, &Sponge);
        assert_eq!(out, vec![hash_elements(DOMAIN_CELL, &elements)], "{n} elements");
    }
    for key in [0u64, 1, 13, 33] {
        let children: Vec<Fr> = (0..8).map(|_| random_fr(&mut seed)).collect();
        let (out, _) = run(&children, &Compress(key));
        assert_eq!(out, vec![crate::compress(&children.clone().try_into().expect("8"), key)]);
    }
}

#[test]
fn canonical_bits_refuse_the_second_decomposition() {
    // x below 2^254 − p also reads as x + p in 254 bits; only x itself is accepted.
    let x = Fr::from(12_345u64);
    let (bits, r1cs) = run(&[x], &Canonical);
    let value: u64 = bits.iter().enumerate().take(64).map(|(i, b)| u64::from(!b.is_zero()) << i).sum();
    assert_eq!(value, 12_345);

    let mut forged = x.into_bigint();
    forged.add_with_carry(&Fr::MODULUS);
    let forged_bits: Vec<Fr> = (0..254).map(|i| Fr::from(forged.get_bit(i))).collect();
    // Assignment: one, x, the 254 bits, then the running products of the comparison.
    let mut assignment = vec![Fr::from(1u64), x];
    assignment.extend(&forged_bits);
    let mut limit = Fr::MODULUS;
    limit.sub_with_borrow(&ark_ff::BigInt::from(1u64));
    let mut equal: Option<Fr> = None;
    for i in (0..254).rev() {
        if limit.get_bit(i) {
            equal = Some(match equal {
                None => forged_bits[i],
                Some(e) => {
                    assignment.push(e * forged_bits[i]);
                    e * forged_bits[i]
                }
            });
        }
    }
    assert_eq!(assignment.len(), 1 + r1cs.num_witness);
    let failed = r1cs.check(&assignment).expect_err("the second decomposition must fail");
    assert!(failed > 254, "booleans and the sum hold; the comparison with p − 1 fails (constraint {failed})");
}

/// A slot held in memory.
struct MemSlot {
    cells: Vec<Vec<u8>>,
    levels: Vec<Vec<Fr>>,
}

impl MemSlot {
    fn random(depth: u32, cell_size: usize, seed: &mut u64) -> MemSlot {
        let bytes: Vec<u8> = (0..(1usize << depth) * cell_size).map(|_| next(seed) as u8).collect();
        let levels = tree_levels(&hash_cells(&bytes, cell_size, 1));
        MemSlot { cells: bytes.chunks(cell_size).map(<[u8]>::to_vec).collect(), levels }
    }

    fn root(&self) -> Fr {
        self.levels[self.levels.len() - 1][0]
    }
}

impl SlotSource for MemSlot {
    type Error = String;
    fn cell(&self, index: u64) -> Result<Vec<u8>, String> {
        self.cells.get(index as usize).cloned().ok_or_else(|| format!("no cell {index}"))
    }
    fn node(&self, level: usize, index: u64) -> Result<Fr, String> {
        self.levels
            .get(level)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| format!("no node {level}/{index}"))
    }
}

fn witness(shape: &ProofShape, inputs: &ProofInputs) -> Result<Vec<Fr>, usize> {
    let mut w = WitnessBuilder::new();
    synthesize(&mut w, shape, inputs).expect("shape");
    w.finish()
}

#[test]
fn storage_circuit_accepts_the_data_and_nothing_else() {
    let mut seed = 3;
    for (depth, slots, dataset_levels) in [(4u32, 10usize, 2), (3, 3, 1), (0, 1, 1), (7, 9, 2)] {
        let shape = ProofShape { samples: 6, slot_depth: depth, dataset_levels, cell_size: 64 };
        let held: Vec<MemSlot> = (0..slots).map(|_| MemSlot::random(depth, 64, &mut seed)).collect();
        let roots: Vec<Fr> = held.iter().map(MemSlot::root).collect();
        let dataset_root = crate::dataset_root(&roots);
        let slot_index = (slots - 1) as u64;
        let entropy = random_fr(&mut seed);
        let path = dataset_path(&roots, slot_index);
        let slot = &held[slot_index as usize];
        let inputs = build_inputs(&shape, slot, path.clone(), dataset_root, entropy, slot_index).expect("inputs");

        let mut m = MatrixBuilder::new();
        synthesize(&mut m, &shape, &ProofInputs::blank(&shape)).expect("shape");
        let r1cs = m.finish();
        let assignment = witness(&shape, &inputs).expect("honest inputs satisfy the circuit");
        assert_eq!(r1cs.num_inputs, 3);
        assert_eq!(assignment.len(), 1 + r1cs.num_inputs + r1cs.num_witness);
        assert_eq!(r1cs.check(&assignment), Ok(()), "depth {depth}");

        let refused = |inputs: &ProofInputs, what: &str| {
            assert!(witness(&shape, inputs).is_err(), "depth {depth}: {what} was accepted");
        };
        let mut bad = inputs.clone();
        bad.samples[0].cell[5] ^= 1;
        refused(&bad, "a flipped byte in a sampled cell");
        let mut bad = inputs.clone();
        bad.slot_root = roots[0];
        if slots > 1 {
            refused(&bad, "another slot's root");
        }
        let mut bad = inputs.clone();
        bad.dataset_root += Fr::from(1u64);
        refused(&bad, "a wrong dataset root");
        let mut bad = inputs.clone();
        bad.slot_index = 0;
        if slots > 1 {
            refused(&bad, "a wrong slot index");
        }
        let mut bad = inputs.clone();
        bad.entropy += Fr::from(1u64);
        if depth > 0 {
            refused(&bad, "a wrong entropy");
        }
        let mut bad = inputs.clone();
        if let Some(level) = bad.samples[0].path.first_mut() {
            level.swap(0, 1);
            refused(&bad, "swapped siblings");
        } else if bad.slot_nodes.len() > 1 {
            bad.slot_nodes.swap(0, 1);
            refused(&bad, "swapped shared nodes");
        }
        assert_eq!(inputs.samples[0].path.len(), shape.shared_level());
        let mut bad = inputs.clone();
        bad.dataset_path[0].0.swap(0, 1);
        refused(&bad, "swapped dataset siblings");
        // A host holding another slot cannot answer for this one.
        if slots > 1 {
            let other = build_inputs(&shape, &held[0], path, dataset_root, entropy, slot_index).expect("inputs");
            refused(&other, "another slot's cells");
        }
    }
}

#[test]
fn sample_indices_cover_the_slot() {
    let entropy = Fr::from(77u64);
    let root = Fr::from(5u64);
    let indices = sample_indices(entropy, root, 19, 400);
    assert_eq!(indices.len(), 400);
    assert!(indices.iter().all(|&i| i < 1 << 19));
    let distinct: std::collections::BTreeSet<_> = indices.iter().collect();
    assert!(distinct.len() > 395, "{} distinct of 400", distinct.len());
    // Both halves of the slot get samples, and other entropy gives other cells.
    assert!(indices.iter().any(|&i| i < 1 << 18) && indices.iter().any(|&i| i >= 1 << 18));
    assert_ne!(sample_indices(entropy + Fr::from(1u64), root, 19, 10), indices[..10]);
    assert_eq!(sample_indices(entropy, root, 0, 3), vec![0, 0, 0]);
    let _ = (TreeKind::Slot, node_key(TreeKind::Slot, true, 8));
}

/// The goal: at most 6,000 constraints per sample at slot depth 19 (1 GiB of 2 KiB cells),
/// everything included (the dataset path, the shared top of the slot tree, the index lanes).
#[test]
fn constraints_per_sample_at_depth_19() {
    let count = |samples| {
        let shape = ProofShape { samples, slot_depth: 19, dataset_levels: 1, cell_size: 2048 };
        let mut m = MatrixBuilder::new();
        synthesize(&mut m, &shape, &ProofInputs::blank(&shape)).expect("shape");
        (m.finish().num_constraints(), shape.shared_nodes())
    };
    let (ten, shared_ten) = count(10);
    let (hundred, shared_hundred) = count(100);
    eprintln!("depth 19: 10 samples {ten} ({shared_ten} shared nodes), 100 samples {hundred} ({shared_hundred})");
    assert!(hundred / 100 <= 6_000 && ten / 10 <= 6_000, "{hundred} for 100 samples, {ten} for 10");
    assert!(hundred / 100 > 4_000, "{hundred}: the cell and path hashes are missing");
    // 100 samples fit a 2^19 evaluation domain (constraints plus the 4 instance rows).
    assert!(hundred + 4 <= 1 << 19, "{hundred}");
    assert_eq!((shared_ten, shared_hundred), (16, 128));
}
