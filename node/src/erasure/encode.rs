//! Streaming encoder: dataset bytes in, one cell per row appended to every slot.
//!
//! Coders on two threads take turns reading batches of rows and compute their parity; a writer
//! appends each batch's data and parity cells to the slot writers, in order. Bounded queues that
//! recycle their buffers join them. Coding and writing overlap and coding uses both cores, so the
//! pipeline keeps up with the library coding on one.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use reed_solomon_simd::ReedSolomonEncoder;

use super::{ErasureError, SlotLayout};

/// Bytes of input processed per batch of rows (a few MiB keeps reads and writes large).
const BATCH_BYTES: usize = 4 << 20;
/// Batches in flight between the stages.
const BATCHES_IN_FLIGHT: usize = 4;
/// Coding threads (the writer is a third, lighter one).
const CODERS: usize = 2;

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

/// One batch: `rows` rows of data, row-major, and their parity, slot-major; `seq` orders batches.
struct Batch {
    seq: u64,
    rows: usize,
    data: Vec<u8>,
    parity: Vec<Vec<u8>>,
}

/// The input and how far it has been read; coders take turns at it.
struct Source<R> {
    input: R,
    left: u64,
    rows_read: u64,
    next_seq: u64,
}

/// A coder: takes an empty batch, reads the next rows into it (in turn with the other coders),
/// computes their parity, and passes it on. Returns the rows it coded.
fn code_batches<R: Read>(
    layout: &SlotLayout,
    source: &Mutex<Source<R>>,
    full: &SyncSender<Batch>,
    empty: &Mutex<Receiver<Batch>>,
) -> Result<u64, ErasureError> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    let row_bytes = k * cs;
    let mut encoder = ReedSolomonEncoder::new(k, m, cs)?;
    let total_rows = layout.rows();
    let mut coded = 0u64;
    loop {
        let Ok(mut batch) = empty.lock().map_err(|_| ErasureError::InvalidParams("coder poisoned".into()))?.recv()
        else {
            break; // the writer stopped: it reports why
        };
        {
            let mut src = source.lock().map_err(|_| ErasureError::InvalidParams("coder poisoned".into()))?;
            if src.rows_read >= total_rows {
                break;
            }
            let rows = (total_rows - src.rows_read).min((batch.data.len() / row_bytes) as u64) as usize;
            let want = (rows * row_bytes).min(usize::try_from(src.left).unwrap_or(usize::MAX));
            let got = read_full(&mut src.input, &mut batch.data[..want])?;
            if got < want {
                let expected = layout.dataset_size;
                return Err(ErasureError::Truncated { expected, got: expected - src.left + got as u64 });
            }
            batch.data[want..rows * row_bytes].fill(0); // zero padding of the last row
            src.left -= want as u64;
            src.rows_read += rows as u64;
            batch.seq = src.next_seq;
            src.next_seq += 1;
            batch.rows = rows;
        }
        for (r, row) in batch.data[..batch.rows * row_bytes].chunks_exact(row_bytes).enumerate() {
            for cell in row.chunks_exact(cs) {
                encoder.add_original_shard(cell)?;
            }
            let result = encoder.encode()?;
            for (j, parity) in result.recovery_iter().enumerate() {
                batch.parity[j][r * cs..(r + 1) * cs].copy_from_slice(parity);
            }
        }
        coded += batch.rows as u64;
        if full.send(batch).is_err() {
            break;
        }
    }
    Ok(coded)
}

/// The writer: appends each batch's cells to the slots, in order.
fn write_batches<W: Write>(
    layout: &SlotLayout,
    slots: &mut [W],
    full: &Receiver<Batch>,
    empty: &SyncSender<Batch>,
) -> Result<(), ErasureError> {
    let (k, cs) = (layout.k, layout.cell_size);
    let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
    let mut next = 0u64;
    while let Ok(batch) = full.recv() {
        waiting.insert(batch.seq, batch);
        while let Some(batch) = waiting.remove(&next) {
            for (slot, writer) in slots.iter_mut().enumerate().take(k) {
                for r in 0..batch.rows {
                    let at = (r * k + slot) * cs;
                    writer.write_all(&batch.data[at..at + cs])?;
                }
            }
            for (parity, writer) in batch.parity.iter().zip(&mut slots[k..]) {
                writer.write_all(&parity[..batch.rows * cs])?;
            }
            next += 1;
            let _ = empty.send(batch); // the coders may have finished
        }
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
            seq: 0,
            rows: 0,
            data: vec![0; rows_per_batch * row_bytes],
            parity: vec![vec![0; rows_per_batch * layout.cell_size]; layout.m],
        };
        let _ = empty_tx.send(batch);
    }
    let source = Mutex::new(Source { input, left: layout.dataset_size, rows_read: 0, next_seq: 0 });
    let empty_rx = Mutex::new(empty_rx);
    let (coded, written) = std::thread::scope(|scope| {
        let coders: Vec<_> = (0..CODERS)
            .map(|_| {
                let full = full_tx.clone();
                let (source, empty) = (&source, &empty_rx);
                scope.spawn(move || code_batches(layout, source, &full, empty))
            })
            .collect();
        drop(full_tx);
        let written = write_batches(layout, slots, &full_rx, &empty_tx);
        drop(full_rx); // unblocks the coders if the writer failed
        drop(empty_tx);
        let coded: Vec<_> = coders.into_iter().map(|c| c.join()).collect();
        (coded, written)
    });
    let mut rows = 0;
    for c in coded {
        rows += c.map_err(|_| ErasureError::InvalidParams("encoder thread panicked".into()))??;
    }
    written?;
    Ok(EncodeStats { rows, slot_bytes: rows * (layout.slot_count() * layout.cell_size) as u64 })
}
