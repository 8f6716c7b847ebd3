//! Slot trees on disk: the Poseidon2 tree over a slot's cells, every level stored beside the
//! slot (leaves first, 32 bytes a node, little-endian field elements), built in bounded chunks
//! so memory does not depend on the slot's size, with cell hashing spread over threads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) use circuits::level_sizes;
use circuits::{Fr, TREE_ARITY, fr_from_bytes, fr_to_bytes, hash_cells, parent_level};

/// Cells hashed per read while building the leaves.
const LEAF_CHUNK_CELLS: usize = 4096;
/// Nodes read per chunk while building the levels above (a multiple of the arity).
const NODE_CHUNK: usize = TREE_ARITY * 16384;

fn encode(nodes: &[Fr]) -> Vec<u8> {
    nodes.iter().flat_map(fr_to_bytes).collect()
}

fn read_nodes(file: &File, offset: u64, count: usize) -> io::Result<Vec<Fr>> {
    let mut buf = vec![0u8; count * 32];
    file.read_exact_at(&mut buf, offset)?;
    buf.chunks_exact(32)
        .map(|c| {
            let bytes: &[u8; 32] = c.try_into().map_err(|_| io::Error::other("short node"))?;
            fr_from_bytes(bytes).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "non-canonical tree node"))
        })
        .collect()
}

/// Hashes the `cells` cells of `cells_file` and writes the whole tree to `tree_file`; returns
/// the slot root.
pub(crate) fn build(
    cells_file: &File,
    cells: u64,
    cell_size: usize,
    tree_file: &File,
    threads: usize,
) -> io::Result<Fr> {
    let mut buf = vec![0u8; LEAF_CHUNK_CELLS * cell_size];
    let mut done = 0u64;
    while done < cells {
        let n = (cells - done).min(LEAF_CHUNK_CELLS as u64) as usize;
        cells_file.read_exact_at(&mut buf[..n * cell_size], done * cell_size as u64)?;
        let leaves = hash_cells(&buf[..n * cell_size], cell_size, threads);
        tree_file.write_all_at(&encode(&leaves), done * 32)?;
        done += n as u64;
    }
    let sizes = level_sizes(cells);
    let mut offset = 0u64;
    for (level, &size) in sizes.iter().enumerate().take(sizes.len().saturating_sub(1)) {
        let next = offset + size * 32;
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(NODE_CHUNK as u64) as usize;
            let nodes = read_nodes(tree_file, offset + at * 32, n)?;
            let parents = parent_level(&nodes, level == 0);
            tree_file.write_all_at(&encode(&parents), next + (at / TREE_ARITY as u64) * 32)?;
            at += n as u64;
        }
        offset = next;
    }
    match cells {
        0 => Ok(circuits::merkle_root(&[])),
        _ => Ok(read_nodes(tree_file, offset, 1)?.first().copied().unwrap_or_default()),
    }
}

/// The `n` leaves (cell hashes) from `first` on.
pub(crate) fn leaves(tree_file: &File, first: u64, n: usize) -> io::Result<Vec<Fr>> {
    read_nodes(tree_file, first * 32, n)
}
