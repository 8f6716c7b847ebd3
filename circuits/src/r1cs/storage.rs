//! The storage-proof circuit: "the host holds the sampled cells of slot `slot_index` of the
//! dataset with root `dataset_root`, the samples drawn from `entropy`".
//!
//! Public inputs: dataset root, entropy, slot index. Private: the slot root and its path in the
//! dataset tree; for each sample the cell's packed elements and its path in the slot tree.
//!
//! Shape: a slot has exactly 2^d cells (slots are padded to a power of two with zero cells), so
//! every group of the slot tree is full except its top one, and every slot-tree key is a
//! constant. The top of the tree is formed once per proof: every node of one level (the "shared
//! level", 2^(d − 3t) nodes at level t) is a witness, and the circuit compresses them up to the
//! slot root; each sample climbs t levels and must land on the shared node its index names (a
//! selection among 2^(d − 3t) nodes). Lowering t saves a 459-constraint compression per sample
//! and costs more selection per sample and more compressions per proof, so the shape picks the t
//! that minimises the total for its number of samples: at depth 19, the level of 16 nodes for 10
//! samples, of 128 nodes for 100.
//!
//! Sample indices: permutation `k` of Poseidon2_16 over (entropy, slot root, k, 0, …, 0,
//! [`DOMAIN_SAMPLE_INDEX`]) gives 16 lanes; each lane's canonical 254 bits are cut into
//! ⌊254/d⌋ indices of d bits, least significant first. [`sample_indices`] is the native
//! definition. Uniform over the 2^d cells (lanes are below p, so the top bits of a lane are very
//! slightly biased; the bias on any index is below 2^-250).
//!
//! Soundness notes: a path's children are free witnesses, but the node must be the child the
//! index selects and the parent is their compression, so any other opening is a Poseidon2
//! collision. Dataset-tree keys carry the dataset bit and a 3-bit missing count (range checked),
//! so no dataset node can be opened as a slot node.

use super::Cs;
use super::gadgets::{compress, enforce_selected, sponge, to_bits, to_bits_canonical};
use crate::compress::{TREE_ARITY, TreeKind, node_key};
use crate::pack::{pack_bytes, packed_len};
use crate::poseidon2::POSEIDON2_T16;
use crate::sponge::{DOMAIN_CELL, DOMAIN_SAMPLE_INDEX, SPONGE_WIDTH};
use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField, Zero};

/// Bits of a canonical field element.
const LANE_BITS: usize = 254;
/// Bits per 8-ary tree level.
const DIGIT_BITS: usize = 3;

/// The parameters a proving key is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProofShape {
    /// Cells sampled per proof.
    pub samples: usize,
    /// A slot holds 2^slot_depth cells.
    pub slot_depth: u32,
    /// Levels of the dataset tree (1 for up to 8 slots, 2 for up to 64, …).
    pub dataset_levels: usize,
    /// Bytes per cell.
    pub cell_size: usize,
}

impl ProofShape {
    /// Cells in a slot.
    pub fn slot_cells(&self) -> u64 {
        1u64 << self.slot_depth
    }

    /// Levels of compressions in the slot tree (at least one).
    pub fn slot_levels(&self) -> usize {
        (self.slot_depth as usize).div_ceil(DIGIT_BITS).max(1)
    }

    /// Nodes at slot-tree level `t` (level 0 = the cells' leaves), for `t` below the root.
    fn nodes_at(&self, t: usize) -> usize {
        1 << (self.slot_depth as usize - DIGIT_BITS * t)
    }

    /// Compressions that turn the nodes of level `t` into the root.
    fn compressions_above(&self, t: usize) -> usize {
        let sizes = crate::level_sizes(self.slot_cells());
        sizes[t + 1..].iter().map(|&n| n as usize).sum()
    }

    /// The shared level: the one whose nodes are witnesses and from which the root is formed
    /// once per proof (see the module documentation); the cheapest total for this many samples.
    pub fn shared_level(&self) -> usize {
        const COMPRESSION: usize = 459; // one t = 12 permutation
        const CLIMB: usize = COMPRESSION + 7; // a compression and the child's selection
        (0..self.slot_levels())
            .filter(|&t| DIGIT_BITS * t <= self.slot_depth as usize)
            .min_by_key(|&t| {
                let per_sample = CLIMB * t + self.nodes_at(t) - 1;
                self.samples * per_sample + COMPRESSION * self.compressions_above(t)
            })
            .unwrap_or(0)
    }

    /// Nodes at the shared level.
    pub fn shared_nodes(&self) -> usize {
        self.nodes_at(self.shared_level())
    }

    /// Indices cut from one lane.
    fn indices_per_lane(&self) -> usize {
        if self.slot_depth == 0 { usize::MAX } else { LANE_BITS / self.slot_depth as usize }
    }

    /// Permutations spent on sample indices.
    fn index_permutations(&self) -> usize {
        if self.slot_depth == 0 { 0 } else { self.samples.div_ceil(self.indices_per_lane()).div_ceil(SPONGE_WIDTH) }
    }

    /// The largest slot count the dataset tree covers.
    pub fn max_slots(&self) -> u64 {
        1u64 << (DIGIT_BITS * self.dataset_levels)
    }

    fn check(&self) -> Result<(), StorageProofError> {
        if self.slot_depth > 40 || self.dataset_levels == 0 || self.dataset_levels > 8 || self.cell_size == 0 {
            return Err(StorageProofError::Shape(format!("unsupported proof shape {self:?}")));
        }
        Ok(())
    }
}

/// One sample's private inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleInputs {
    /// The cell's bytes (`cell_size` of them).
    pub cell: Vec<u8>,
    /// For each level from the leaves up to the shared level, the 8 children of the cell's group.
    pub path: Vec<[Fr; TREE_ARITY]>,
}

/// Everything a proof needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofInputs {
    /// Public: the dataset tree's root.
    pub dataset_root: Fr,
    /// Public: the challenge.
    pub entropy: Fr,
    /// Public: which slot.
    pub slot_index: u64,
    /// The slot tree's root.
    pub slot_root: Fr,
    /// For each dataset-tree level from the slot roots up: the group's 8 children (zeros where
    /// the group is short) and how many are real.
    pub dataset_path: Vec<([Fr; TREE_ARITY], usize)>,
    /// Every node of the slot tree's shared level ([`ProofShape::shared_level`]), in order.
    pub slot_nodes: Vec<Fr>,
    /// One per sample, in index order.
    pub samples: Vec<SampleInputs>,
}

impl ProofInputs {
    /// Inputs of the right shape with every value zero (what the matrices are built from).
    pub fn blank(shape: &ProofShape) -> ProofInputs {
        let zeros = [Fr::zero(); TREE_ARITY];
        ProofInputs {
            dataset_root: Fr::zero(),
            entropy: Fr::zero(),
            slot_index: 0,
            slot_root: Fr::zero(),
            dataset_path: vec![(zeros, TREE_ARITY); shape.dataset_levels],
            slot_nodes: vec![Fr::zero(); shape.shared_nodes()],
            samples: vec![
                SampleInputs { cell: vec![0; shape.cell_size], path: vec![zeros; shape.shared_level()] };
                shape.samples
            ],
        }
    }
}

/// Why a circuit could not be laid out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageProofError {
    /// The shape is out of range.
    #[error("{0}")]
    Shape(String),
    /// The inputs do not have the shape's sizes.
    #[error("inputs do not fit the proof shape: {0}")]
    Inputs(String),
}

/// The public inputs, in the circuit's order.
pub fn public_inputs(dataset_root: Fr, entropy: Fr, slot_index: u64) -> [Fr; 3] {
    [dataset_root, entropy, Fr::from(slot_index)]
}

/// The lanes of index permutation `k`.
fn index_lanes(entropy: Fr, slot_root: Fr, k: u64) -> [Fr; SPONGE_WIDTH] {
    let mut state = [Fr::zero(); SPONGE_WIDTH];
    state[0] = entropy;
    state[1] = slot_root;
    state[2] = Fr::from(k);
    state[SPONGE_WIDTH - 1] = Fr::from(u64::from(DOMAIN_SAMPLE_INDEX));
    POSEIDON2_T16.permutation(state)
}

/// The cells a proof samples (native definition; see the module documentation).
pub fn sample_indices(entropy: Fr, slot_root: Fr, slot_depth: u32, count: usize) -> Vec<u64> {
    if slot_depth == 0 {
        return vec![0; count];
    }
    let d = slot_depth as usize;
    let per_lane = LANE_BITS / d;
    let mut out = Vec::with_capacity(count);
    let mut k = 0u64;
    while out.len() < count {
        for lane in index_lanes(entropy, slot_root, k) {
            let bits = lane.into_bigint();
            for j in 0..per_lane {
                if out.len() < count {
                    out.push((0..d).fold(0u64, |acc, b| acc | (u64::from(bits.get_bit(j * d + b)) << b)));
                }
            }
        }
        k += 1;
    }
    out
}

/// Lays out the circuit on `cs` with `inputs` (use [`ProofInputs::blank`] for the matrices).
pub fn synthesize<C: Cs>(cs: &mut C, shape: &ProofShape, inputs: &ProofInputs) -> Result<(), StorageProofError> {
    shape.check()?;
    let shared = shape.shared_level();
    if inputs.dataset_path.len() != shape.dataset_levels
        || inputs.slot_nodes.len() != shape.shared_nodes()
        || inputs.samples.len() != shape.samples
        || inputs.samples.iter().any(|s| s.cell.len() != shape.cell_size || s.path.len() != shared)
    {
        return Err(StorageProofError::Inputs(format!("expected {shape:?}")));
    }
    let [dr, e, si] = public_inputs(inputs.dataset_root, inputs.entropy, inputs.slot_index);
    let dataset_root = cs.input(dr);
    let entropy = cs.input(e);
    let slot_index = cs.input(si);
    let slot_root = cs.witness(inputs.slot_root);

    // The slot root is leaf `slot_index` of the dataset tree.
    let index_bits = to_bits(cs, &slot_index, DIGIT_BITS * shape.dataset_levels);
    let mut node = slot_root.clone();
    for (level, (children, count)) in inputs.dataset_path.iter().enumerate() {
        let children: Vec<C::V> = children.iter().map(|c| cs.witness(*c)).collect();
        enforce_selected(cs, &children, &index_bits[DIGIT_BITS * level..DIGIT_BITS * (level + 1)], &node);
        let missing = cs.witness(Fr::from(TREE_ARITY.saturating_sub(*count) as u64));
        to_bits(cs, &missing, DIGIT_BITS); // 0..=7
        let base = cs.constant(Fr::from(node_key(TreeKind::Dataset, level == 0, TREE_ARITY)));
        let key = cs.add(&base, &cs.scale(&missing, Fr::from(2u64)));
        node = compress(cs, &children, &key);
    }
    cs.enforce_equal(&node, &dataset_root);

    // The slot tree above the shared level, once.
    let shared_nodes: Vec<C::V> = inputs.slot_nodes.iter().map(|c| cs.witness(*c)).collect();
    let mut level_nodes = shared_nodes.clone();
    let mut level = shared;
    loop {
        let mut parents = Vec::with_capacity(level_nodes.len().div_ceil(TREE_ARITY));
        for group in level_nodes.chunks(TREE_ARITY) {
            let mut children = group.to_vec();
            children.resize(TREE_ARITY, cs.constant(Fr::zero()));
            let key = cs.constant(Fr::from(node_key(TreeKind::Slot, level == 0, group.len())));
            parents.push(compress(cs, &children, &key));
        }
        level_nodes = parents;
        level += 1;
        if level_nodes.len() == 1 {
            break;
        }
    }
    cs.enforce_equal(&level_nodes[0], &slot_root);

    // Sample indices, as bits.
    let d = shape.slot_depth as usize;
    let mut sample_bits: Vec<Vec<C::V>> = Vec::with_capacity(shape.samples);
    for k in 0..shape.index_permutations() {
        let mut state: Vec<C::V> = (0..SPONGE_WIDTH).map(|_| cs.constant(Fr::zero())).collect();
        state[0] = entropy.clone();
        state[1] = slot_root.clone();
        state[2] = cs.constant(Fr::from(k as u64));
        state[SPONGE_WIDTH - 1] = cs.constant(Fr::from(u64::from(DOMAIN_SAMPLE_INDEX)));
        super::gadgets::permute(cs, &POSEIDON2_T16, &mut state);
        for lane in &state {
            if sample_bits.len() == shape.samples {
                break;
            }
            let bits = to_bits_canonical(cs, lane);
            for j in 0..shape.indices_per_lane() {
                if sample_bits.len() < shape.samples {
                    sample_bits.push(bits[j * d..(j + 1) * d].to_vec());
                }
            }
        }
    }
    sample_bits.resize(shape.samples, Vec::new()); // depth 0: no bits, index 0

    // Each sample: hash the cell, climb to the shared level, land on the node its index names.
    let elements_per_cell = packed_len(shape.cell_size);
    for (sample, bits) in inputs.samples.iter().zip(&sample_bits) {
        let packed = pack_bytes(&sample.cell);
        debug_assert_eq!(packed.len(), elements_per_cell);
        let elements: Vec<C::V> = packed.iter().map(|x| cs.witness(*x)).collect();
        let mut node = sponge(cs, DOMAIN_CELL, &elements);
        for (level, children) in sample.path.iter().enumerate() {
            let children: Vec<C::V> = children.iter().map(|c| cs.witness(*c)).collect();
            enforce_selected(cs, &children, &bits[DIGIT_BITS * level..DIGIT_BITS * (level + 1)], &node);
            let key = cs.constant(Fr::from(node_key(TreeKind::Slot, level == 0, TREE_ARITY)));
            node = compress(cs, &children, &key);
        }
        enforce_selected(cs, &shared_nodes, &bits[DIGIT_BITS * shared..], &node);
    }
    Ok(())
}

/// Where [`build_inputs`] reads a slot: its cells and its tree's nodes (level 0 = the leaves).
pub trait SlotSource {
    /// Why a read failed.
    type Error;
    /// The bytes of cell `index`.
    fn cell(&self, index: u64) -> Result<Vec<u8>, Self::Error>;
    /// Node `index` of tree level `level`.
    fn node(&self, level: usize, index: u64) -> Result<Fr, Self::Error>;
}

/// The dataset-tree path of slot `slot_index` among `slot_roots`: per level, the group's 8
/// children (zeros where short) and how many are real.
pub fn dataset_path(slot_roots: &[Fr], slot_index: u64) -> Vec<([Fr; TREE_ARITY], usize)> {
    let levels = TreeKind::Dataset.levels(slot_roots);
    let mut idx = slot_index as usize;
    let mut out = Vec::new();
    for level in &levels[..levels.len() - 1] {
        let group = idx / TREE_ARITY;
        let members = level.get(group * TREE_ARITY..).unwrap_or_default();
        let members = &members[..members.len().min(TREE_ARITY)];
        let mut children = [Fr::zero(); TREE_ARITY];
        children[..members.len()].copy_from_slice(members);
        out.push((children, members.len()));
        idx = group;
    }
    out
}

/// Builds a proof's inputs from a slot: derives the sample indices from `entropy` and the slot
/// root (the top node of `slot`'s tree), reads each sampled cell and the nodes of its path.
pub fn build_inputs<S: SlotSource>(
    shape: &ProofShape,
    slot: &S,
    dataset_path: Vec<([Fr; TREE_ARITY], usize)>,
    dataset_root: Fr,
    entropy: Fr,
    slot_index: u64,
) -> Result<ProofInputs, S::Error> {
    let shared = shape.shared_level();
    let count = shape.shared_nodes() as u64;
    let slot_nodes = (0..count).map(|i| slot.node(shared, i)).collect::<Result<Vec<_>, _>>()?;
    let slot_root = slot.node(shape.slot_levels(), 0)?;
    let mut samples = Vec::with_capacity(shape.samples);
    for index in sample_indices(entropy, slot_root, shape.slot_depth, shape.samples) {
        let cell = slot.cell(index)?;
        let mut path = Vec::with_capacity(shared);
        let mut idx = index;
        for level in 0..shared {
            let first = idx / TREE_ARITY as u64 * TREE_ARITY as u64;
            let mut children = [Fr::zero(); TREE_ARITY];
            for (j, c) in children.iter_mut().enumerate() {
                *c = slot.node(level, first + j as u64)?;
            }
            path.push(children);
            idx /= TREE_ARITY as u64;
        }
        samples.push(SampleInputs { cell, path });
    }
    Ok(ProofInputs { dataset_root, entropy, slot_index, slot_root, dataset_path, slot_nodes, samples })
}
