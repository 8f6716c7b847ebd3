//! Streaming encoder: dataset bytes in, one cell per row appended to every slot.
//!
//! Two stages on two threads, joined by bounded queues that recycle their buffers: the first
//! reads a batch of rows and computes its parity, the second appends the batch's data and parity
//! cells to the slot writers. Coding and writing overlap, so the pipeline runs at close to the
//! speed of the slower of the two rather than their sum.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use reed_solomon_simd::ReedSolomonEncoder;

use super::{ErasureError, SlotLayout};

/// Bytes of input processed per batch of rows (a few MiB keeps reads and writes large).
const BATCH_BYTES: usize = 4 << 20;
/// Batches in flight between the stages.
const BATCHES_IN_FLIGHT: usize = 2;

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

/// One batch: `rows` rows of data, row-major, and their parity, slot-major.
struct Batch {
    rows: usize,
    data: Vec<u8>,
    parity: Vec<Vec<u8>>,
}

/// Stage one: read rows and compute parity.
fn code_batches<R: Read>(
    layout: &SlotLayout,
    mut input: R,
    full: &SyncSender<Batch>,
    empty: &Receiver<Batch>,
) -> Result<u64, ErasureError> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    let row_bytes = k * cs;
    let mut encoder = ReedSolomonEncoder::new(k, m, cs)?;
    let mut left = layout.dataset_size;
    let total_rows = layout.rows();
    let mut done = 0u64;
    while done < total_rows {
        let Ok(mut batch) = empty.recv() else { break }; // the writer stopped: it reports why
        let rows = (total_rows - done).min((batch.data.len() / row_bytes) as u64) as usize;
        let want = (rows * row_bytes).min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = read_full(&mut input, &mut batch.data[..want])?;
        if got < want {
            return Err(ErasureError::Truncated {
                expected: layout.dataset_size,
                got: layout.dataset_size - left + got as u64,
            });
        }
        batch.data[want..rows * row_bytes].fill(0); // zero padding of the last row
        left -= want as u64;
        for (r, row) in batch.data[..rows * row_bytes].chunks_exact(row_bytes).enumerate() {
            for cell in row.chunks_exact(cs) {
                encoder.add_original_shard(cell)?;
            }
            let result = encoder.encode()?;
            for (j, parity) in result.recovery_iter().enumerate() {
                batch.parity[j][r * cs..(r + 1) * cs].copy_from_slice(parity);
            }
        }
        batch.rows = rows;
        done += rows as u64;
        if full.send(batch).is_err() {
            break;
        }
    }
    Ok(done)
}

/// Stage two: append each batch's cells to the slots.
fn write_batches<W: Write>(
    layout: &SlotLayout,
    slots: &mut [W],
    full: &Receiver<Batch>,
    empty: &SyncSender<Batch>,
) -> Result<(), ErasureError> {
    let (k, cs) = (layout.k, layout.cell_size);
    while let Ok(batch) = full.recv() {
        for (slot, writer) in slots.iter_mut().enumerate().take(k) {
            for r in 0..batch.rows {
                let at = (r * k + slot) * cs;
                writer.write_all(&batch.data[at..at + cs])?;
            }
        }
        for (parity, writer) in batch.parity.iter().zip(&mut slots[k..]) {
            writer.write_all(&parity[..batch.rows * cs])?;
        }
        let _ = empty.send(batch); // the coder may have finished
    }
    Ok(())
}

/// Encodes `layout.dataset_size` bytes from `input` into `slots` (K data then M parity writers).
pub fn encode<R: Read + Send, W: Write + Send>(
    layout: &SlotLayout,
    input: R,
    slots: &mut [W],
) -> Result<EncodeStats, ErasureError> {
    if slots.len() != layout.slot_count() {
        return Err(ErasureError::InvalidParams(format!(
            "{} slot writers for {} slots",
            slots.len(),
            layout.slot_count()
        )));
    }
    let row_bytes = layout.k * layout.cell_size;
    let rows_per_batch = (BATCH_BYTES / row_bytes).max(1);
    let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    for _ in 0..BATCHES_IN_FLIGHT {
        let batch = Batch {
            rows: 0,
            data: vec![0; rows_per_batch * row_bytes],
            parity: vec![vec![0; rows_per_batch * layout.cell_size]; layout.m],
        };
        let _ = empty_tx.send(batch);
    }
    let (coded, written) = std::thread::scope(|scope| {
        let coder = scope.spawn(move || code_batches(layout, input, &full_tx, &empty_rx));
        let written = write_batches(layout, slots, &full_rx, &empty_tx);
        drop(full_rx); // unblocks the coder if the writer failed
        (coder.join(), written)
    });
    written?;
    let rows = coded.map_err(|_| ErasureError::InvalidParams("encoder thread panicked".into()))??;
    Ok(EncodeStats { rows, slot_bytes: rows * (layout.slot_count() * layout.cell_size) as u64 })
}
