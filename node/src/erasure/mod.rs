//! Erasure coding with interleaved slots.
//!
//! A dataset is cut into cells (2 KiB by default) and padded with zeros to whole rows of K cells.
//! Cell `c` goes to data slot `c mod K`, row `c div K`; each row of K cells is one Reed–Solomon
//! codeword (Leopard, through `reed-solomon-simd`) extended by M parity cells, one in each parity
//! slot. So every slot holds exactly one shard of every codeword, any K slots give back the
//! dataset, and the unit the code erases is the unit a storage proof hashes whole: a cell.
//!
//! This module is streaming and I/O-generic: [`encode`] reads the dataset once and appends one
//! cell per row to each slot writer; [`decode`] reads the rows back from whatever slots are
//! present, treats cells that fail the caller's check as erasures, and rebuilds what is missing.

mod decode;
mod encode;
mod layout;

pub use self::decode::{CellCheck, DecodeStats, SlotReader, decode, rows_per_batch, trust_all};
pub use self::encode::{EncodeStats, encode, rows_per_call};
pub use self::layout::{DEFAULT_CELL_SIZE, MAX_CELL_SIZE, SlotLayout};

/// Why coding failed.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// K, M or the cell size are outside what the code supports.
    #[error("invalid erasure parameters: {0}")]
    InvalidParams(String),
    /// Fewer than K usable cells in a row.
    #[error("not enough slots: row {row} has {available} usable cells of the {needed} needed")]
    NotEnoughSlots {
        /// The row.
        row: u64,
        /// Cells present and intact.
        available: usize,
        /// K.
        needed: usize,
    },
    /// The input ended before the dataset's size.
    #[error("input ended after {got} of {expected} bytes")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes read.
        got: u64,
    },
    /// Reading or writing a slot or the dataset failed.
    #[error("erasure I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The Reed–Solomon library refused.
    #[error("reed-solomon: {0}")]
    Codec(#[from] reed_solomon_simd::Error),
}

#[cfg(test)]
mod tests;
