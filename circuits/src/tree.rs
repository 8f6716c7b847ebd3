//! 8-ary Merkle trees over field elements: slot trees (over cell hashes) and the dataset tree (over
//! slot roots), built level by level, with membership proofs.
//!
//! Shape: level 0 holds the leaves; each next level holds one node per group of 8 consecutive nodes
//! of the level below (the last group may be shorter: its node is padded with zeros and says how
//! many children it lacks, see [`node_key`](crate::node_key)); the first level with a single node is
//! the root. A tree over one leaf still compresses once, so a root is never a leaf; the empty tree's
//! root is the bottom node with no children.
//!
//! Levels can be built from chunks read from disk: [`parent_level`] on each chunk, concatenated,
//! gives the next level, as long as every chunk but the level's last has a length that is a multiple
//! of [`TREE_ARITY`] (a short group can only be the last one).

use crate::compress::{TREE_ARITY, TreeKind, parent};
use crate::field::{fr_from_bytes, fr_to_bytes};
use ark_bn254::Fr;
use ark_ff::Zero;

/// Siblings per level in a membership proof.
pub const PATH_SIBLINGS: usize = TREE_ARITY - 1;

/// The sizes of the levels of a tree over `leaf_count` leaves, leaves first, root (always 1) last.
pub fn level_sizes(leaf_count: u64) -> Vec<u64> {
    let mut sizes = vec![leaf_count];
    let mut n = leaf_count;
    loop {
        n = n.div_ceil(TREE_ARITY as u64).max(1);
        sizes.push(n);
        if n == 1 {
            return sizes;
        }
    }
}

/// The parents of a chunk of a slot-tree level (`bottom` when the chunk holds leaves). See the
/// module documentation for chunking.
pub fn parent_level(children: &[Fr], bottom: bool) -> Vec<Fr> {
    TreeKind::Slot.parent_level(children, bottom)
}

/// All levels of the slot tree over `leaves`, leaves first, `[root]` last.
pub fn tree_levels(leaves: &[Fr]) -> Vec<Vec<Fr>> {
    TreeKind::Slot.levels(leaves)
}

/// The root of the slot tree over `leaves` (cell hashes).
pub fn merkle_root(leaves: &[Fr]) -> Fr {
    TreeKind::Slot.root(leaves)
}

/// The dataset root (the request's verify root) over the slot roots.
pub fn dataset_root(slot_roots: &[Fr]) -> Fr {
    TreeKind::Dataset.root(slot_roots)
}

/// Checks that `leaf` is leaf `index` of the slot tree with `leaf_count` leaves and root `root`.
pub fn verify_path(root: &Fr, leaf_count: u64, index: u64, leaf: &Fr, path: &MerklePath) -> bool {
    TreeKind::Slot.verify(root, leaf_count, index, leaf, path)
}

/// Checks that `slot_root` is slot `index` of the dataset tree with `slot_count` slots.
pub fn verify_dataset_path(root: &Fr, slot_count: u64, index: u64, slot_root: &Fr, path: &MerklePath) -> bool {
    TreeKind::Dataset.verify(root, slot_count, index, slot_root, path)
}

impl TreeKind {
    /// The parents of a chunk of one level of this kind of tree.
    pub fn parent_level(self, children: &[Fr], bottom: bool) -> Vec<Fr> {
        children.chunks(TREE_ARITY).map(|group| parent(self, bottom, group)).collect()
    }

    /// All levels of the tree over `leaves`, leaves first, `[root]` last.
    pub fn levels(self, leaves: &[Fr]) -> Vec<Vec<Fr>> {
        let mut levels = vec![leaves.to_vec()];
        if leaves.is_empty() {
            levels.push(vec![parent(self, true, &[])]);
            return levels;
        }
        loop {
            let below = levels.len() - 1;
            let next = self.parent_level(&levels[below], below == 0);
            let done = next.len() == 1;
            levels.push(next);
            if done {
                return levels;
            }
        }
    }

    /// The root of the tree over `leaves`.
    pub fn root(self, leaves: &[Fr]) -> Fr {
        if leaves.is_empty() {
            return parent(self, true, &[]);
        }
        let mut level = self.parent_level(leaves, true);
        while level.len() > 1 {
            level = self.parent_level(&level, false);
        }
        level.first().copied().unwrap_or_default()
    }

    /// Checks a membership proof (see [`verify_path`]).
    pub fn verify(self, root: &Fr, leaf_count: u64, index: u64, leaf: &Fr, path: &MerklePath) -> bool {
        if index >= leaf_count {
            return false;
        }
        let sizes = level_sizes(leaf_count);
        if path.siblings.len() + 1 != sizes.len() {
            return false;
        }
        let arity = TREE_ARITY as u64;
        let mut node = *leaf;
        let mut idx = index;
        for (level, (siblings, &len)) in path.siblings.iter().zip(&sizes).enumerate() {
            let group = idx / arity;
            let pos = (idx % arity) as usize;
            // At least 1, at most 8: idx < len.
            let size = (len - group * arity).min(arity) as usize;
            let children = place(node, pos, siblings);
            if children[size..].iter().any(|c| !c.is_zero()) {
                return false;
            }
            node = parent(self, level == 0, &children[..size]);
            idx = group;
        }
        node == *root
    }
}

/// The 8 children of a group: `node` at `pos`, the siblings in order around it.
fn place(node: Fr, pos: usize, siblings: &[Fr; PATH_SIBLINGS]) -> [Fr; TREE_ARITY] {
    let mut children = [Fr::zero(); TREE_ARITY];
    let mut rest = siblings.iter();
    for (j, c) in children.iter_mut().enumerate() {
        *c = if j == pos { node } else { rest.next().copied().unwrap_or_default() };
    }
    children
}

/// A membership proof: for each level from the leaves up, the other 7 children of the node's
/// group in order (zeros where the group is short).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerklePath {
    /// One entry per compression level, bottom first.
    pub siblings: Vec<[Fr; PATH_SIBLINGS]>,
}

impl MerklePath {
    /// 32 canonical little-endian bytes per sibling, level by level.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.siblings.iter().flatten().flat_map(fr_to_bytes).collect()
    }

    /// Parses [`MerklePath::to_bytes`]; `None` if the length is not a whole number of levels or an
    /// element is not canonical.
    pub fn from_bytes(bytes: &[u8]) -> Option<MerklePath> {
        const LEVEL_BYTES: usize = 32 * PATH_SIBLINGS;
        if !bytes.len().is_multiple_of(LEVEL_BYTES) {
            return None;
        }
        let mut siblings = Vec::with_capacity(bytes.len() / LEVEL_BYTES);
        for level in bytes.chunks_exact(LEVEL_BYTES) {
            let mut out = [Fr::zero(); PATH_SIBLINGS];
            for (o, chunk) in out.iter_mut().zip(level.chunks_exact(32)) {
                let mut b = [0u8; 32];
                b.copy_from_slice(chunk);
                *o = fr_from_bytes(&b)?;
            }
            siblings.push(out);
        }
        Some(MerklePath { siblings })
    }
}

/// The proof for leaf `index` from a tree's levels (as [`tree_levels`] returns them, or slices read
/// from disk): `None` if `index` is out of range or the levels do not have a tree's shape.
pub fn merkle_proof<L: AsRef<[Fr]>>(levels: &[L], index: u64) -> Option<MerklePath> {
    let leaf_count = levels.first()?.as_ref().len() as u64;
    if index >= leaf_count {
        return None;
    }
    let sizes = level_sizes(leaf_count);
    if sizes.len() != levels.len() || levels.iter().zip(&sizes).any(|(l, &s)| l.as_ref().len() as u64 != s) {
        return None;
    }
    let mut idx = index as usize;
    let mut siblings = Vec::with_capacity(levels.len() - 1);
    for level in &levels[..levels.len() - 1] {
        let level = level.as_ref();
        let start = idx - idx % TREE_ARITY;
        let group = level.get(start..(start + TREE_ARITY).min(level.len()))?;
        let mut out = [Fr::zero(); PATH_SIBLINGS];
        for (o, c) in out.iter_mut().zip(group.iter().enumerate().filter(|(j, _)| *j != idx % TREE_ARITY)) {
            *o = *c.1;
        }
        siblings.push(out);
        idx /= TREE_ARITY;
    }
    Some(MerklePath { siblings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::node_key;

    /// Compresses a group the long way: zero padding and the key written out.
    fn node(kind: TreeKind, bottom: bool, group: &[Fr]) -> Fr {
        let mut children = [Fr::zero(); TREE_ARITY];
        children[..group.len()].copy_from_slice(group);
        crate::compress::compress(&children, node_key(kind, bottom, group.len()))
    }
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Fr> {
        (0..n).map(|i| Fr::from(i as u64 * 31 + 7)).collect()
    }

    #[test]
    fn level_sizes_shape() {
        assert_eq!(level_sizes(0), vec![0, 1]);
        assert_eq!(level_sizes(1), vec![1, 1]);
        assert_eq!(level_sizes(8), vec![8, 1]);
        assert_eq!(level_sizes(9), vec![9, 2, 1]);
        assert_eq!(level_sizes(64), vec![64, 8, 1]);
        assert_eq!(level_sizes(65), vec![65, 9, 2, 1]);
        assert_eq!(level_sizes(1 << 19).len(), 8); // 7 compression levels
    }

    #[test]
    fn small_trees_by_hand() {
        let l = leaves(10);
        let bottom: Vec<Fr> = vec![node(TreeKind::Slot, true, &l[..8]), node(TreeKind::Slot, true, &l[8..])];
        let root = node(TreeKind::Slot, false, &bottom);
        assert_eq!(merkle_root(&l), root);
        assert_eq!(tree_levels(&l), vec![l.clone(), bottom, vec![root]]);
        assert_eq!(merkle_root(&l[..1]), node(TreeKind::Slot, true, &l[..1]));
        assert_ne!(merkle_root(&l[..1]), l[0]);
        assert_eq!(merkle_root(&[]), node(TreeKind::Slot, true, &[]));
        assert_eq!(dataset_root(&l[..3]), node(TreeKind::Dataset, true, &l[..3]));
        // The dataset tree is a different domain.
        assert_ne!(dataset_root(&l), merkle_root(&l));
        // Appending a zero leaf changes the root.
        let mut l11 = l.clone();
        l11.push(Fr::zero());
        assert_ne!(merkle_root(&l11), merkle_root(&l));
    }

    #[test]
    fn chunked_levels_match() {
        let l = leaves(203);
        let whole = parent_level(&l, true);
        let mut chunked = Vec::new();
        for chunk in l.chunks(64) {
            chunked.extend(parent_level(chunk, true));
        }
        assert_eq!(whole, chunked);
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        for n in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 100, 513] {
            for kind in [TreeKind::Slot, TreeKind::Dataset] {
                let l = leaves(n);
                let levels = kind.levels(&l);
                let root = kind.root(&l);
                assert_eq!(levels.last().map(|v| v[0]), Some(root));
                let count = n as u64;
                for i in 0..count {
                    let path = merkle_proof(&levels, i).expect("index in range");
                    let leaf = l[i as usize];
                    assert!(kind.verify(&root, count, i, &leaf, &path), "n={n} i={i}");
                    assert_eq!(MerklePath::from_bytes(&path.to_bytes()).as_ref(), Some(&path));
                    // Wrong leaf, index, leaf count, root or sibling.
                    assert!(!kind.verify(&root, count, i, &(leaf + Fr::from(1u64)), &path));
                    if n > 1 {
                        assert!(!kind.verify(&root, count, (i + 1) % count, &leaf, &path));
                    }
                    // A leaf count only enters through the group sizes on the path (and the number of
                    // levels); the last leaf's ancestors are all last nodes, so any change shows there.
                    assert!(!kind.verify(&root, count * 8 + 1, i, &leaf, &path));
                    if i == count - 1 {
                        assert!(!kind.verify(&root, count + 1, i, &leaf, &path));
                        assert!(!kind.verify(&root, count - 1, i, &leaf, &path));
                    }
                    assert!(!kind.verify(&(root + Fr::from(1u64)), count, i, &leaf, &path));
                    for level in 0..path.siblings.len() {
                        for s in 0..PATH_SIBLINGS {
                            let mut bad = path.clone();
                            bad.siblings[level][s] += Fr::from(1u64);
                            assert!(!kind.verify(&root, count, i, &leaf, &bad), "n={n} i={i} level={level} s={s}");
                        }
                    }
                    let mut short = path.clone();
                    short.siblings.pop();
                    assert!(!kind.verify(&root, count, i, &leaf, &short));
                }
                assert!(merkle_proof(&levels, count).is_none());
                assert!(!kind.verify(&root, count, count, &l[0], &MerklePath { siblings: vec![] }));
            }
        }
    }

    #[test]
    fn wrong_kind_fails_and_bad_levels_are_refused() {
        let l = leaves(20);
        let levels = tree_levels(&l);
        let path = merkle_proof(&levels, 3).expect("in range");
        assert!(verify_path(&merkle_root(&l), 20, 3, &l[3], &path));
        assert!(!verify_dataset_path(&merkle_root(&l), 20, 3, &l[3], &path));
        let mut broken = levels.clone();
        broken[1].pop();
        assert!(merkle_proof(&broken, 3).is_none());
        assert!(merkle_proof::<Vec<Fr>>(&[], 0).is_none());
        assert!(MerklePath::from_bytes(&[0u8; 100]).is_none());
        assert!(MerklePath::from_bytes(&[0xffu8; 224]).is_none());
        assert_eq!(MerklePath::from_bytes(&[]), Some(MerklePath { siblings: vec![] }));
        // Leaf count 0: nothing verifies.
        assert!(!verify_path(&merkle_root(&[]), 0, 0, &Fr::zero(), &MerklePath { siblings: vec![Default::default()] }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_trees_prove(n in 1usize..300, pick in any::<u64>(), seed in any::<u64>()) {
            let l: Vec<Fr> = (0..n as u64).map(|i| Fr::from(i.wrapping_mul(seed) ^ seed)).collect();
            let levels = tree_levels(&l);
            let i = pick % n as u64;
            let path = merkle_proof(&levels, i).expect("in range");
            prop_assert!(verify_path(&merkle_root(&l), n as u64, i, &l[i as usize], &path));
            prop_assert_eq!(path.siblings.len(), level_sizes(n as u64).len() - 1);
        }
    }
}
