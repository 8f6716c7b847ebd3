//! Streaming decoder: rows read back from whichever slots are present, damaged cells treated as
//! erasures, missing data cells rebuilt, the original bytes written out in order.
//!
//! Parity slots are read only for the batches that need them, so a dataset whose data slots are
//! intact is read at the speed of a copy. Consecutive rows that lost the same cells and use the
//! same parity are rebuilt by one library call over their cells laid end to end (exact when the
//! cell size is a multiple of Leopard's 64-byte chunk, see `encode.rs`), which pays the decoder's
//! large fixed cost per call (it locates the erasures over the whole field) once per run, not once
//! per row.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use reed_solomon_simd::ReedSolomonDecoder;

use super::{ErasureError, SlotLayout};

/// Bytes of cells held per batch across all slots.
const BATCH_BYTES: usize = 8 << 20;

/// Rows read per batch (the longest run one decoder call can rebuild).
pub fn rows_per_batch(layout: &SlotLayout) -> usize {
    (BATCH_BYTES / (layout.slot_count() * layout.cell_size)).max(1)
}

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

/// Says which cells of a slot are genuine (for example, match their leaves in the slot tree):
/// called with a slot, a first row and that slot's cells for consecutive rows from it, it returns
/// one flag per cell (a missing flag counts as false; extra flags are ignored). Whole batches at a time let a check hash
/// many cells at once.
pub type CellCheck<'a> = dyn Fn(usize, u64, &[u8]) -> Vec<bool> + 'a;

/// A [`CellCheck`] that trusts every cell (one flag per byte: at least one per cell whatever the
/// cell size).
pub fn trust_all(_slot: usize, _first_row: u64, cells: &[u8]) -> Vec<bool> {
    vec![true; cells.len()]
}

/// Rebuilds the dataset from `slots` (K data then M parity; `None` for a missing slot) into
/// `output`. `intact` (see [`CellCheck`]) says which cells are genuine; a cell that fails is an
/// erasure.
pub fn decode<S: SlotReader, W: Write>(
    layout: &SlotLayout,
    slots: &[Option<S>],
    mut output: W,
    intact: &CellCheck<'_>,
) -> Result<DecodeStats, ErasureError> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    if slots.len() != layout.slot_count() {
        return Err(ErasureError::InvalidParams(format!("{} slots given for {}", slots.len(), layout.slot_count())));
    }
    let present = slots.iter().filter(|s| s.is_some()).count();
    if present < k {
        return Err(ErasureError::NotEnoughSlots { row: 0, available: present, needed: k });
    }
    let rows_per_batch = rows_per_batch(layout);
    let runs_allowed = cs.is_multiple_of(64);
    let mut decoder = ReedSolomonDecoder::new(k, m, cs)?;
    let mut shard_bytes = cs;
    let mut stats = DecodeStats::default();
    let mut left = layout.dataset_size;
    let total_rows = layout.data_rows(); // padding rows hold nothing of the dataset
    let mut first = 0u64;
    let mut batch: Batch = vec![None; k + m];
    // Per row of the batch: the data cells to rebuild and the parity cells to rebuild them from
    // (both empty when the row is whole).
    let mut plans: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    while first < total_rows {
        let rows = (total_rows - first).min(rows_per_batch as u64) as usize;
        read_batch(slots, 0..k, first, rows, cs, &mut batch);
        // Per slot and row: None when the slot is absent, else whether the cell is genuine.
        let mut ok: Vec<Option<Vec<bool>>> = vec![None; k + m];
        let check = |i: usize, batch: &Batch| batch[i].as_deref().map(|cells| intact(i, first, cells));
        for (i, flags) in ok.iter_mut().enumerate().take(k) {
            *flags = check(i, &batch);
        }
        let good = |ok: &[Option<Vec<bool>>], i: usize, r: usize| {
            ok[i].as_ref().map(|flags| flags.get(r).copied().unwrap_or(false))
        };
        plans.clear();
        let mut parity_read = false;
        for r in 0..rows {
            let row = first + r as u64;
            let mut missing = Vec::new();
            for i in 0..k {
                match good(&ok, i, r) {
                    Some(true) => {}
                    Some(false) => {
                        stats.cells_damaged += 1;
                        missing.push(i);
                    }
                    None => missing.push(i),
                }
            }
            let mut parity = Vec::new();
            if !missing.is_empty() {
                if !parity_read {
                    read_batch(slots, k..k + m, first, rows, cs, &mut batch);
                    parity_read = true;
                }
                for j in 0..m {
                    if parity.len() == missing.len() {
                        break;
                    }
                    if batch[k + j].is_some() && ok[k + j].is_none() {
                        ok[k + j] = check(k + j, &batch); // checked only once a row needs it
                    }
                    match good(&ok, k + j, r) {
                        Some(true) => parity.push(j),
                        Some(false) => stats.cells_damaged += 1,
                        None => {}
                    }
                }
                if parity.len() < missing.len() {
                    let available = k - missing.len() + parity.len();
                    return Err(ErasureError::NotEnoughSlots { row, available, needed: k });
                }
            }
            plans.push((missing, parity));
        }
        let mut r = 0;
        while r < rows {
            let plan = &plans[r];
            let mut end = r + 1;
            while runs_allowed && end < rows && plans[end] == *plan {
                end += 1;
            }
            let (missing, parity) = plan;
            if !missing.is_empty() {
                let (from, to) = (r * cs, end * cs);
                if to - from != shard_bytes {
                    shard_bytes = to - from;
                    decoder.reset(k, m, shard_bytes)?;
                }
                for i in (0..k).filter(|i| !missing.contains(i)) {
                    decoder.add_original_shard(i, &batch[i].as_deref().unwrap_or_default()[from..to])?;
                }
                for &j in parity {
                    decoder.add_recovery_shard(j, &batch[k + j].as_deref().unwrap_or_default()[from..to])?;
                }
                let result = decoder.decode()?;
                for &i in missing {
                    let restored = result.restored_original(i).ok_or_else(|| {
                        ErasureError::InvalidParams(format!(
                            "decoder did not restore cell {i} of row {}",
                            first + r as u64
                        ))
                    })?;
                    batch[i].get_or_insert_with(|| vec![0u8; rows * cs])[from..to].copy_from_slice(restored);
                }
                stats.rows_repaired += (end - r) as u64;
                stats.cells_rebuilt += (missing.len() * (end - r)) as u64;
            }
            r = end;
        }
        for r in 0..rows {
            for i in 0..k {
                left = write_cell(&mut output, cell(&batch, i, r, cs).unwrap_or_default(), left)?;
            }
        }
        first += rows as u64;
    }
    output.flush()?;
    Ok(stats)
}

/// Cell `r` of slot `i` in a batch.
fn cell(b: &Batch, i: usize, r: usize, cs: usize) -> Option<&[u8]> {
    b[i].as_ref().map(|buf| &buf[r * cs..(r + 1) * cs])
}
