//! Content trees on disk, built and read without holding them in memory.
//!
//! A tree file holds every level, leaves first, 32 bytes a node (the layout of
//! [`MerkleTree::to_bytes`](crate::content::MerkleTree::to_bytes), which stays the reference
//! definition the tests compare against). Uploads and fetches write leaf hashes into it as blocks
//! arrive; [`build_levels`] then hashes the levels above in fixed-size chunks, and
//! [`read_proofs`] reads the sibling paths of a run of blocks with one read per level. Memory is
//! a few MiB whatever the dataset's size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::content::BlockProof;
use crate::content::tree::{Hash, empty_root, level_sizes, node_hash};

/// Nodes hashed per read while building a level (an even number: pairs never straddle reads).
const CHUNK_NODES: u64 = 1 << 16;

/// Byte offset of each level's first node.
fn level_offsets(sizes: &[u64]) -> Vec<u64> {
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for s in sizes {
        offsets.push(at);
        at += s * 32;
    }
    offsets
}

fn read_nodes(file: &File, offset: u64, count: u64) -> io::Result<Vec<Hash>> {
    let mut buf = vec![0u8; (count * 32) as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

/// Hashes the levels above the `leaves` leaf hashes at the start of `file`, writing them after
/// the leaves; returns the root.
pub(crate) fn build_levels(file: &File, leaves: u64) -> io::Result<Hash> {
    if leaves == 0 {
        return Ok(empty_root());
    }
    let sizes = level_sizes(leaves);
    let offsets = level_offsets(&sizes);
    for level in 0..sizes.len() - 1 {
        let (size, from, to) = (sizes[level], offsets[level], offsets[level + 1]);
        let mut done = 0;
        while done < size {
            let n = (size - done).min(CHUNK_NODES);
            let nodes = read_nodes(file, from + done * 32, n)?;
            let parents: Vec<u8> = nodes
                .chunks(2)
                .flat_map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [single] => *single,
                    _ => [0; 32],
                })
                .collect();
            file.write_all_at(&parents, to + (done / 2) * 32)?;
            done += n;
        }
    }
    let top = offsets[sizes.len() - 1];
    Ok(read_nodes(file, top, 1)?.first().copied().unwrap_or_else(empty_root))
}

/// The proofs of blocks `start..end` of a tree of `leaves` leaves.
pub(crate) fn read_proofs(file: &File, leaves: u64, start: u64, end: u64) -> io::Result<Vec<BlockProof>> {
    let end = end.min(leaves);
    if start >= end {
        return Ok(Vec::new());
    }
    let sizes = level_sizes(leaves);
    let offsets = level_offsets(&sizes);
    let mut proofs = vec![BlockProof::default(); (end - start) as usize];
    for level in 0..sizes.len() - 1 {
        // Every sibling the run needs at this level lies in one stretch.
        let lo = (start >> level) & !1;
        let hi = ((((end - 1) >> level) | 1) + 1).min(sizes[level]);
        let nodes = read_nodes(file, offsets[level] + lo * 32, hi - lo)?;
        for (k, block) in (start..end).enumerate() {
            let sibling = (block >> level) ^ 1;
            if sibling < sizes[level] {
                proofs[k].siblings.push(nodes[(sibling - lo) as usize]);
            }
        }
    }
    Ok(proofs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{MerkleTree, leaf_hash};

    #[test]
    fn file_tree_matches_the_in_memory_definition() {
        for n in [0u64, 1, 2, 3, 7, 16, 33, 100, (CHUNK_NODES * 2) + 3] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let reference = MerkleTree::from_leaves(leaves.clone());
            let dir = tempfile::tempdir().expect("tmp");
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join("t"))
                .expect("open");
            file.write_all_at(&leaves.concat(), 0).expect("leaves");
            let root = build_levels(&file, n).expect("build");
            assert_eq!(root, reference.root(), "n={n}");
            let bytes = std::fs::read(dir.path().join("t")).expect("read");
            assert!(bytes == reference.to_bytes(), "layout n={n}");
            for (start, end) in [(0, n), (n / 3, n / 3 + 16), (n.saturating_sub(5), n)] {
                let proofs = read_proofs(&file, n, start, end).expect("proofs");
                for (k, p) in proofs.iter().enumerate() {
                    let i = start + k as u64;
                    assert_eq!(p, &reference.proof(i).expect("proof"), "n={n} i={i}");
                }
            }
        }
    }
}
