//! Keyed compression of tree nodes: Poseidon2 with t = 12 over up to 8 children and a key.
//!
//! `compress(c, key) = Poseidon2_12(c0, …, c7, key, 0, 0, 0)[0]`. The key (lane 8) separates
//! domains, in the spirit of Codex's keyed compression (bit 0 = bottom layer, bit 1 = odd node):
//!
//! | bits | meaning |
//! | --- | --- |
//! | 0 | 1 for a bottom node (its children are leaves), 0 for an inner node |
//! | 1–4 | the number of missing children: 0 for a full node, 1–7 for the short last node of a level, whose missing children are zeros (8 only for the empty tree) |
//! | 5 | 0 for a slot tree (leaves are cell hashes), 1 for the dataset tree (leaves are slot roots) |
//!
//! Leaves (cell hashes) come from the t = 16 sponge, a different permutation, so a leaf can never
//! be read as a node. Encoding the child count (not just "odd") means trees over `[a, b]` and
//! `[a, b, 0]` differ.

use crate::arith::Fe;
use crate::poseidon2::POSEIDON2_T12;
use ark_bn254::Fr;

/// Children per tree node.
pub const TREE_ARITY: usize = 8;
/// Width of the compression permutation.
pub const COMPRESS_WIDTH: usize = 12;
/// The lane that carries the key.
pub const KEY_LANE: usize = TREE_ARITY;

/// Which tree a node belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TreeKind {
    /// A slot tree: leaves are cell hashes, the root is the slot root.
    Slot,
    /// The dataset tree: leaves are slot roots, the root is the dataset (verify) root.
    Dataset,
}

/// The key of a node with `children` real children (1..=8; 0 only for the empty tree's root; more
/// than 8 counts as 8).
pub fn node_key(kind: TreeKind, bottom: bool, children: usize) -> u64 {
    let missing = TREE_ARITY.saturating_sub(children) as u64;
    let dataset = matches!(kind, TreeKind::Dataset) as u64;
    (bottom as u64) | (missing << 1) | (dataset << 5)
}

/// Compresses 8 children under `key` (a short group passes zeros for its missing children).
pub fn compress(children: &[Fr; TREE_ARITY], key: u64) -> Fr {
    compress_slice(children, key)
}

/// Compresses up to 8 children, the missing ones zero; only the first 8 are read.
fn compress_slice(children: &[Fr], key: u64) -> Fr {
    let mut state = [Fe::ZERO; COMPRESS_WIDTH];
    for (s, c) in state.iter_mut().zip(children.iter().take(TREE_ARITY)) {
        *s = Fe::from_fr(c);
    }
    state[KEY_LANE] = Fe::from_fr(&Fr::from(key));
    POSEIDON2_T12.permute_fe(&mut state);
    state[0].to_fr()
}

/// The parent of one group of at most 8 children (the tree only forms such groups).
pub(crate) fn parent(kind: TreeKind, bottom: bool, group: &[Fr]) -> Fr {
    compress_slice(group, node_key(kind, bottom, group.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Zero;

    #[test]
    fn keys() {
        assert_eq!(node_key(TreeKind::Slot, false, 8), 0);
        assert_eq!(node_key(TreeKind::Slot, true, 8), 1);
        assert_eq!(node_key(TreeKind::Slot, true, 1), 1 | (7 << 1));
        assert_eq!(node_key(TreeKind::Slot, false, 2), 6 << 1);
        assert_eq!(node_key(TreeKind::Slot, true, 0), 1 | (8 << 1));
        assert_eq!(node_key(TreeKind::Dataset, false, 8), 32);
    }

    #[test]
    fn compress_is_the_permutation_lane_zero() {
        let children: [Fr; 8] = std::array::from_fn(|i| Fr::from(i as u64 + 1));
        let mut state = [Fr::zero(); 12];
        state[..8].copy_from_slice(&children);
        state[8] = Fr::from(5u64);
        POSEIDON2_T12.permute(&mut state);
        assert_eq!(compress(&children, 5), state[0]);
        // A short group is zero padded.
        let mut padded = [Fr::zero(); 8];
        padded[..3].copy_from_slice(&children[..3]);
        let key = node_key(TreeKind::Slot, true, 3);
        assert_eq!(parent(TreeKind::Slot, true, &children[..3]), compress(&padded, key));
        assert_ne!(compress(&children, 0), compress(&children, 1));
    }
}
