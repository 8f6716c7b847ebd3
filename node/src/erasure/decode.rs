//! Streaming decoder: rows read back from whichever slots are present, damaged cells treated as
//! erasures, missing data cells rebuilt, the original bytes written out in order.
//!
//! Parity slots are read only for the batches that need them, so a dataset whose data slots are
//! intact is read at the speed of a copy.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use reed_solomon_simd::ReedSolomonDecoder;

use super::{ErasureError, SlotLayout};

/// Bytes of cells held per batch across all slots.
const BATCH_BYTES: usize = 8 << 20;

/// Random access to one slot's cells.
pub trait SlotReader {
    /// Fills `buf` with the cells from row `row` on (`buf.len()` is a whole number of cells).
    fn read_rows(&self, row: u64, cell_size: usize, buf: &mut [u8]) -> std::io::Result<()>;
}

impl SlotReader for File {
    fn read_rows(&self, row: u64, cell_size: usize, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_exact_at(buf, row * cell_size as u64)
    }
}

impl SlotReader for Vec<u8> {
    fn read_rows(&self, row: u64, cell_size: usize, buf: &mut [u8]) -> std::io::Result<()> {
        let from = usize::try_from(row).unwrap_or(usize::MAX).saturating_mul(cell_size);
        let src = self.get(from..from.saturating_add(buf.len())).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// What a decode did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Rows that needed the code (some data cell missing or damaged).
    pub rows_repaired: u64,
    /// Data cells rebuilt.
    pub cells_rebuilt: u64,
    /// Cells that were present but failed the check.
    pub cells_damaged: u64,
}

/// Per-slot buffer for one batch: `None` when the slot is absent or unreadable.
type Batch = Vec<Option<Vec<u8>>>;

fn read_batch<S: SlotReader>(
    slots: &[Option<S>],
    which: std::ops::Range<usize>,
    row: u64,
    rows: usize,
    cs: usize,
    batch: &mut Batch,
) {
    for i in which {
        batch[i] = slots[i].as_ref().and_then(|s| {
            let mut buf = vec![0u8; rows * cs];
            s.read_rows(row, cs, &mut buf).ok().map(|()| buf)
        });
    }
}

/// Writes a cell, cut short at the end of the dataset; returns the bytes still to write.
fn write_cell<W: Write>(output: &mut W, cell: &[u8], left: u64) -> std::io::Result<u64> {
    let n = (cell.len() as u64).min(left) as usize;
    output.write_all(&cell[..n])?;
    Ok(left - n as u64)
}

/// Rebuilds the dataset from `slots` (K data then M parity; `None` for a missing slot) into
/// `output`. `intact(slot, row, cell)` says whether a cell's bytes are genuine (for example, match
/// its leaf in the slot tree); a cell that fails is an erasure.
pub fn decode<S: SlotReader, W: Write>(
    layout: &SlotLayout,
    slots: &[Option<S>],
    mut output: W,
    intact: &dyn Fn(usize, u64, &[u8]) -> bool,
) -> Result<DecodeStats, ErasureError> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    if slots.len() != layout.slot_count() {
        return Err(ErasureError::InvalidParams(format!("{} slots given for {}", slots.len(), layout.slot_count())));
    }
    let present = slots.iter().filter(|s| s.is_some()).count();
    if present < k {
        return Err(ErasureError::NotEnoughSlots { row: 0, available: present, needed: k });
    }
    let rows_per_batch = (BATCH_BYTES / ((k + m) * cs)).max(1);
    let mut decoder = ReedSolomonDecoder::new(k, m, cs)?;
    let mut stats = DecodeStats::default();
    let mut left = layout.dataset_size;
    let total_rows = layout.rows();
    let mut first = 0u64;
    let mut batch: Batch = vec![None; k + m];
    let mut missing = Vec::with_capacity(k);
    while first < total_rows {
        let rows = (total_rows - first).min(rows_per_batch as u64) as usize;
        read_batch(slots, 0..k, first, rows, cs, &mut batch);
        let mut parity_read = false;
        for r in 0..rows {
            let row = first + r as u64;
            fn cell(b: &Batch, i: usize, r: usize, cs: usize) -> Option<&[u8]> {
                b[i].as_ref().map(|buf| &buf[r * cs..(r + 1) * cs])
            }
            missing.clear();
            for i in 0..k {
                match cell(&batch, i, r, cs) {
                    Some(c) if intact(i, row, c) => {}
                    Some(_) => {
                        stats.cells_damaged += 1;
                        missing.push(i);
                    }
                    None => missing.push(i),
                }
            }
            if missing.is_empty() {
                for i in 0..k {
                    let bytes = cell(&batch, i, r, cs).unwrap_or_default();
                    left = write_cell(&mut output, bytes, left)?;
                }
                continue;
            }
            if !parity_read {
                read_batch(slots, k..k + m, first, rows, cs, &mut batch);
                parity_read = true;
            }
            let mut available = 0;
            for i in (0..k).filter(|i| !missing.contains(i)) {
                if let Some(c) = cell(&batch, i, r, cs) {
                    decoder.add_original_shard(i, c)?;
                    available += 1;
                }
            }
            for j in 0..m {
                if available >= k {
                    break;
                }
                if let Some(c) = cell(&batch, k + j, r, cs) {
                    if intact(k + j, row, c) {
                        decoder.add_recovery_shard(j, c)?;
                        available += 1;
                    } else {
                        stats.cells_damaged += 1;
                    }
                }
            }
            if available < k {
                return Err(ErasureError::NotEnoughSlots { row, available, needed: k });
            }
            let result = decoder.decode()?;
            for i in 0..k {
                let bytes = if missing.contains(&i) {
                    result.restored_original(i).ok_or_else(|| {
                        ErasureError::InvalidParams(format!("decoder did not restore cell {i} of row {row}"))
                    })?
                } else {
                    cell(&batch, i, r, cs).unwrap_or_default()
                };
                left = write_cell(&mut output, bytes, left)?;
            }
            stats.rows_repaired += 1;
            stats.cells_rebuilt += missing.len() as u64;
        }
        first += rows as u64;
    }
    output.flush()?;
    Ok(stats)
}
