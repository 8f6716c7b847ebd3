//! Streaming encoder: dataset bytes in, one cell per row appended to every slot.

use std::io::{Read, Write};

use reed_solomon_simd::ReedSolomonEncoder;

use super::{ErasureError, SlotLayout};

/// Bytes of input processed per batch of rows (a few MiB keeps reads and writes large).
const BATCH_BYTES: usize = 4 << 20;

/// What an encode did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Rows encoded.
    pub rows: u64,
    /// Bytes written to all slots together.
    pub slot_bytes: u64,
}

/// Fills `buf` from `input` as far as it goes; returns the bytes read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encodes `layout.dataset_size` bytes from `input` into `slots` (K data then M parity writers).
pub fn encode<R: Read, W: Write>(
    layout: &SlotLayout,
    mut input: R,
    slots: &mut [W],
) -> Result<EncodeStats, ErasureError> {
    if slots.len() != layout.slot_count() {
        return Err(ErasureError::InvalidParams(format!(
            "{} slot writers for {} slots",
            slots.len(),
            layout.slot_count()
        )));
    }
    let (k, cs) = (layout.k, layout.cell_size);
    let row_bytes = k * cs;
    let rows_per_batch = (BATCH_BYTES / row_bytes).max(1);
    let mut buf = vec![0u8; rows_per_batch * row_bytes];
    let mut encoder = ReedSolomonEncoder::new(k, layout.m, cs)?;
    let mut left = layout.dataset_size;
    let mut stats = EncodeStats::default();
    let total_rows = layout.rows();
    while stats.rows < total_rows {
        let rows = (total_rows - stats.rows).min(rows_per_batch as u64) as usize;
        let want = (rows * row_bytes).min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = read_full(&mut input, &mut buf[..want])?;
        if got < want {
            return Err(ErasureError::Truncated {
                expected: layout.dataset_size,
                got: layout.dataset_size - left + got as u64,
            });
        }
        // Zero padding of the last row.
        buf[want..rows * row_bytes].fill(0);
        left -= want as u64;
        for row in buf[..rows * row_bytes].chunks_exact(row_bytes) {
            for cell in row.chunks_exact(cs) {
                encoder.add_original_shard(cell)?;
            }
            let result = encoder.encode()?;
            for (slot, cell) in row.chunks_exact(cs).enumerate() {
                slots[slot].write_all(cell)?;
            }
            for (j, parity) in result.recovery_iter().enumerate() {
                slots[k + j].write_all(parity)?;
            }
        }
        stats.rows += rows as u64;
    }
    stats.slot_bytes = stats.rows * (layout.slot_count() * cs) as u64;
    Ok(stats)
}
