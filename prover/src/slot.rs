//! A slot on disk as the prover reads it: the cells file (cell `i` at byte `i · cell_size`) and
//! the tree file beside it (every level from the leaves up, 32 bytes per node, canonical
//! little-endian field elements), as the node writes them. Only the sampled cells and their paths
//! are read; nothing is rehashed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ark_bn254::Fr;
use circuits::r1cs::SlotSource;
use circuits::{fr_from_bytes, level_sizes};

/// Why reading a slot failed.
#[derive(Debug, thiserror::Error)]
pub enum SlotReadError {
    /// A read failed or came up short.
    #[error("reading the slot: {0}")]
    Io(#[from] std::io::Error),
    /// A tree node that is not a canonical field element.
    #[error("tree node {index} of level {level} is not a field element")]
    BadNode {
        /// The level (0 = leaves).
        level: usize,
        /// The node.
        index: u64,
    },
    /// A node or cell beyond the slot.
    #[error("{0} is outside the slot")]
    OutOfRange(String),
    /// A file whose size does not fit the slot's shape.
    #[error("{file} holds {actual} bytes; a slot of {cells} cells of {cell_size} bytes needs {expected}")]
    WrongSize {
        /// Which file ("cells file" or "tree file").
        file: &'static str,
        /// Its size.
        actual: u64,
        /// The size the shape implies.
        expected: u64,
        /// Cells in the slot.
        cells: u64,
        /// Bytes per cell.
        cell_size: usize,
    },
}

/// A slot's cells and tree files.
#[derive(Debug)]
pub struct DiskSlot {
    cells: File,
    tree: File,
    cell_size: usize,
    level_offsets: Vec<u64>,
    level_sizes: Vec<u64>,
}

impl DiskSlot {
    /// Opens a slot of `cell_count` cells of `cell_size` bytes.
    pub fn open(cells: &Path, tree: &Path, cell_size: usize, cell_count: u64) -> Result<Self, SlotReadError> {
        let sizes = level_sizes(cell_count);
        let offsets = sizes.iter().scan(0u64, |at, n| Some(std::mem::replace(at, *at + n))).collect();
        let (cells, tree) = (File::open(cells)?, File::open(tree)?);
        let expect = |file: &'static str, f: &File, expected: u64| -> Result<(), SlotReadError> {
            let actual = f.metadata()?.len();
            if actual == expected {
                Ok(())
            } else {
                Err(SlotReadError::WrongSize { file, actual, expected, cells: cell_count, cell_size })
            }
        };
        expect("cells file", &cells, cell_count * cell_size as u64)?;
        expect("tree file", &tree, sizes.iter().sum::<u64>() * 32)?;
        Ok(DiskSlot { cells, tree, cell_size, level_offsets: offsets, level_sizes: sizes })
    }

    /// The slot root (the top of the tree file).
    pub fn root(&self) -> Result<Fr, SlotReadError> {
        self.node(self.level_sizes.len() - 1, 0)
    }
}

impl SlotSource for DiskSlot {
    type Error = SlotReadError;

    fn cell(&self, index: u64) -> Result<Vec<u8>, SlotReadError> {
        if index >= self.level_sizes[0] {
            return Err(SlotReadError::OutOfRange(format!("cell {index}")));
        }
        let mut buf = vec![0u8; self.cell_size];
        self.cells.read_exact_at(&mut buf, index * self.cell_size as u64)?;
        Ok(buf)
    }

    fn node(&self, level: usize, index: u64) -> Result<Fr, SlotReadError> {
        let (Some(offset), Some(size)) = (self.level_offsets.get(level), self.level_sizes.get(level)) else {
            return Err(SlotReadError::OutOfRange(format!("tree level {level}")));
        };
        if index >= *size {
            return Ok(Fr::from(0u64)); // a padded child of a short group
        }
        let mut buf = [0u8; 32];
        self.tree.read_exact_at(&mut buf, (offset + index) * 32)?;
        fr_from_bytes(&buf).ok_or(SlotReadError::BadNode { level, index })
    }
}
