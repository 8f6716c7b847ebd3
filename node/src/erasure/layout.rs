//! Where each cell of a dataset lives: slot and row, slot sizes, padding.

use super::ErasureError;

/// The default cell size: the RS shard, and the unit a storage proof hashes whole.
pub const DEFAULT_CELL_SIZE: u32 = 2048;
/// The largest cell size accepted.
pub const MAX_CELL_SIZE: u32 = 1 << 20;

/// The interleaved layout of one protected dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout {
    /// Data slots.
    pub k: usize,
    /// Parity slots.
    pub m: usize,
    /// Bytes per cell.
    pub cell_size: usize,
    /// Bytes of the original dataset.
    pub dataset_size: u64,
    /// Rows every slot is padded to with zero rows (0: no padding beyond the data's rows). A
    /// storage proof needs slots of exactly 2^depth cells.
    pub padded_rows: u64,
}

impl SlotLayout {
    /// Checks the parameters: K ≥ 1, M ≥ 1, K + M within the codec's limits, an even cell size.
    pub fn new(k: usize, m: usize, cell_size: usize, dataset_size: u64) -> Result<Self, ErasureError> {
        if k == 0 || m == 0 {
            return Err(ErasureError::InvalidParams(format!("K = {k} and M = {m} must both be at least 1")));
        }
        if !reed_solomon_simd::ReedSolomonEncoder::supports(k, m) {
            return Err(ErasureError::InvalidParams(format!("K = {k}, M = {m} is beyond the codec's limits")));
        }
        if cell_size == 0 || !cell_size.is_multiple_of(2) || cell_size > MAX_CELL_SIZE as usize {
            return Err(ErasureError::InvalidParams(format!(
                "cell size {cell_size} must be even and at most {MAX_CELL_SIZE}"
            )));
        }
        Ok(Self { k, m, cell_size, dataset_size, padded_rows: 0 })
    }

    /// The same layout with every slot padded to `rows` rows (zero data cells code to zero
    /// parity cells, so padding rows are valid codewords).
    pub fn with_rows(mut self, rows: u64) -> Result<Self, ErasureError> {
        if rows < self.data_rows() {
            return Err(ErasureError::InvalidParams(format!(
                "{} bytes in K = {} slots need {} rows of {}-byte cells, more than {rows}",
                self.dataset_size,
                self.k,
                self.data_rows(),
                self.cell_size
            )));
        }
        self.padded_rows = rows;
        Ok(self)
    }

    /// Cells of data before padding.
    pub fn data_cells(&self) -> u64 {
        self.dataset_size.div_ceil(self.cell_size as u64)
    }

    /// Rows that hold data (the last one padded with zeros).
    pub fn data_rows(&self) -> u64 {
        self.data_cells().div_ceil(self.k as u64)
    }

    /// Rows (codewords) in every slot: the data rows, or more when padded.
    pub fn rows(&self) -> u64 {
        self.data_rows().max(self.padded_rows)
    }

    /// K + M.
    pub fn slot_count(&self) -> usize {
        self.k + self.m
    }

    /// Bytes in each slot.
    pub fn slot_size(&self) -> u64 {
        self.rows() * self.cell_size as u64
    }

    /// The (slot, row) of data cell `cell`.
    pub fn locate(&self, cell: u64) -> (usize, u64) {
        ((cell % self.k as u64) as usize, cell / self.k as u64)
    }
}
