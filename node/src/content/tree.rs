//! The content tree: a binary BLAKE3 Merkle tree over a dataset's blocks.
//!
//! Leaves and inner nodes are hashed under different BLAKE3 keys, so a leaf can never pass for an
//! inner node. An odd node at the end of a level is carried up unchanged; the verifier knows the
//! leaf count (from the manifest), so it knows which levels carry instead of pairing. Every block
//! that crosses the network travels with its [`BlockProof`] and is checked against the root here.

use std::sync::LazyLock;

/// A 32-byte tree hash.
pub type Hash = [u8; 32];

static LEAF_KEY: LazyLock<Hash> = LazyLock::new(|| blake3::derive_key("vellum content-tree leaf v1", b""));
static NODE_KEY: LazyLock<Hash> = LazyLock::new(|| blake3::derive_key("vellum content-tree node v1", b""));
static EMPTY_ROOT: LazyLock<Hash> = LazyLock::new(|| blake3::derive_key("vellum content-tree empty v1", b""));

/// Errors in building or loading a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A serialized tree whose length does not fit its leaf count.
    #[error("tree data of {len} bytes does not hold a tree of {leaves} leaves")]
    BadEncoding {
        /// Bytes found.
        len: usize,
        /// Leaves expected.
        leaves: u64,
    },
    /// A proof or block asked for a leaf past the end.
    #[error("leaf {index} out of range for {leaves} leaves")]
    OutOfRange {
        /// Index asked for.
        index: u64,
        /// Leaves in the tree.
        leaves: u64,
    },
}

/// The hash of one block, as a leaf.
pub fn leaf_hash(block: &[u8]) -> Hash {
    *blake3::Hasher::new_keyed(&LEAF_KEY).update(block).finalize().as_bytes()
}

/// The hash of an inner node over its two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new_keyed(&NODE_KEY);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// The root of a tree with no leaves.
pub fn empty_root() -> Hash {
    *EMPTY_ROOT
}

/// Number of nodes in each level, from the leaves up to the root.
pub fn level_sizes(leaves: u64) -> Vec<u64> {
    let mut sizes = vec![leaves];
    let mut n = leaves;
    while n > 1 {
        n = n.div_ceil(2);
        sizes.push(n);
    }
    sizes
}

/// A whole tree kept in memory: 64 bytes per block at most (about 0.1 % of 64 KiB blocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree from its leaf hashes.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(next);
        }
        Self { levels }
    }

    /// Number of leaves (blocks).
    pub fn leaf_count(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The root; a fixed constant for an empty dataset.
    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => *EMPTY_ROOT,
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The sibling path that proves leaf `index`.
    pub fn proof(&self, index: u64) -> Result<BlockProof, TreeError> {
        let leaves = self.leaf_count();
        if index >= leaves {
            return Err(TreeError::OutOfRange { index, leaves });
        }
        let mut siblings = Vec::with_capacity(self.levels.len());
        let mut i = index as usize;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(s) = level.get(i ^ 1) {
                siblings.push(*s);
            }
            i /= 2;
        }
        Ok(BlockProof { siblings })
    }

    /// Serialises every level, leaves first, for storing beside the data.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.levels.iter().flatten().flatten().copied().collect()
    }

    /// Loads a tree written by [`MerkleTree::to_bytes`].
    pub fn from_bytes(bytes: &[u8], leaves: u64) -> Result<Self, TreeError> {
        let sizes = level_sizes(leaves);
        let total: u64 = if leaves == 0 { 0 } else { sizes.iter().sum() };
        if bytes.len() as u64 != total * 32 {
            return Err(TreeError::BadEncoding { len: bytes.len(), leaves });
        }
        let mut levels = Vec::with_capacity(sizes.len());
        let mut rest = bytes;
        for size in sizes {
            let (level, tail) = rest.split_at(size as usize * 32);
            levels.push(level.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect());
            rest = tail;
        }
        Ok(Self { levels })
    }
}

/// The siblings from a leaf up to the root, omitting levels where the node is carried up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockProof {
    /// Sibling hashes, lowest level first.
    pub siblings: Vec<Hash>,
}

impl BlockProof {
    /// Whether `leaf` is leaf `index` of the tree of `leaves` leaves with root `root`.
    pub fn verify(&self, root: &Hash, leaves: u64, index: u64, leaf: &Hash) -> bool {
        if index >= leaves {
            return false;
        }
        let mut acc = *leaf;
        let mut i = index;
        let mut width = leaves;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let has_sibling = (i ^ 1) < width;
            if has_sibling {
                let Some(s) = siblings.next() else { return false };
                acc = if i.is_multiple_of(2) { node_hash(&acc, s) } else { node_hash(s, &acc) };
            }
            i /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && &acc == root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(n: u64) -> (MerkleTree, Vec<Vec<u8>>) {
        let blocks: Vec<Vec<u8>> = (0..n).map(|i| i.to_le_bytes().repeat(3)).collect();
        (MerkleTree::from_leaves(blocks.iter().map(|b| leaf_hash(b)).collect()), blocks)
    }

    #[test]
    fn every_leaf_proves_for_every_shape() {
        for n in 1..=37u64 {
            let (tree, blocks) = tree_of(n);
            let root = tree.root();
            for (i, block) in blocks.iter().enumerate() {
                let i = i as u64;
                let proof = tree.proof(i).expect("in range");
                assert!(proof.verify(&root, n, i, &leaf_hash(block)), "n={n} i={i}");
                // The same proof must not pass for another index, leaf count or content.
                assert!(!proof.verify(&root, n, (i + 1) % n, &leaf_hash(block)) || n == 1);
                assert!(!proof.verify(&root, n, i, &leaf_hash(b"other")));
                assert!(!proof.verify(&root, n + 1, i, &leaf_hash(block)) || proof_shape_same(n, i));
            }
            assert!(tree.proof(n).is_err());
        }
    }

    // Growing the leaf count by one changes the path shape only for some leaves; where it does
    // not, the old proof is still a valid path, which is why manifests pin the size.
    fn proof_shape_same(n: u64, i: u64) -> bool {
        let (a, _) = tree_of(n);
        let (b, _) = tree_of(n + 1);
        a.proof(i).map(|p| p.siblings.len()).ok() == b.proof(i).map(|p| p.siblings.len()).ok()
    }

    #[test]
    fn a_flipped_sibling_fails() {
        let (tree, blocks) = tree_of(10);
        let mut proof = tree.proof(3).expect("in range");
        proof.siblings[1][0] ^= 1;
        assert!(!proof.verify(&tree.root(), 10, 3, &leaf_hash(&blocks[3])));
    }

    #[test]
    fn serialises_and_reloads() {
        for n in [0u64, 1, 2, 5, 64, 65] {
            let (tree, _) = tree_of(n);
            let bytes = tree.to_bytes();
            let back = MerkleTree::from_bytes(&bytes, n).expect("reload");
            assert_eq!(back.root(), tree.root());
            assert!(MerkleTree::from_bytes(&bytes[..bytes.len().saturating_sub(1)], n).is_err() || n == 0);
        }
    }

    #[test]
    fn leaves_and_nodes_are_domain_separated() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut concat = a.to_vec();
        concat.extend_from_slice(&b);
        assert_ne!(leaf_hash(&concat), node_hash(&a, &b));
        assert_ne!(MerkleTree::from_leaves(vec![]).root(), leaf_hash(b""));
    }
}
