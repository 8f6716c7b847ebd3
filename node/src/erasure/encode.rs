//! Streaming encoder: dataset bytes in, one cell per row appended to every slot.
//!
//! Rows are coded many at a time. Leopard codes every 64-byte stretch of its shards on its own, so
//! when the cell size is a multiple of 64, one library call whose shards are the cells of B rows
//! laid end to end (slot-major) gives exactly the parity of B separate per-row calls. Each row is
//! still one codeword, but the library's fixed cost per call is paid once per B rows, and each
//! slot's cells for the batch are one contiguous write. Other cell sizes code one row per call.
//!
//! Two coder threads take turns reading a batch (each cell read straight into its slot's place),
//! code it, then wait for their turn to append it to the slot writers, in order, straight from the
//! library's output. While one writes, the other codes. Memory is two batches plus the writers'
//! buffers, whatever the dataset's size.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use reed_solomon_simd::ReedSolomonEncoder;

use super::{ErasureError, SlotLayout};

/// Bytes of input coded per library call (a few MiB keeps calls and writes large and the
/// coder's working set near the caches).
const BATCH_BYTES: usize = 256 << 10;
/// Coding threads.
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

/// The input and how far it has been read; coders take turns at it.
struct Source<R> {
    input: R,
    left: u64,
    rows_read: u64,
    next_seq: u64,
}

/// The slot writers and whose turn it is to append.
struct Sink<'a, W> {
    slots: &'a mut [W],
    next_seq: u64,
}

/// The sink, the turn signal, and whether a coder failed. The flag is read without the sink's
/// lock (a coder about to read its next batch must not wait for the other's write) and set only
/// while holding it, so a coder waiting for its turn cannot miss it.
type Shared<'a, W> = (Mutex<Sink<'a, W>>, Condvar, AtomicBool);

/// Rows coded per library call: whole batches only when a cell is a whole number of Leopard's
/// 64-byte chunks (see the module documentation).
pub fn rows_per_call(layout: &SlotLayout) -> usize {
    if layout.cell_size.is_multiple_of(64) { (BATCH_BYTES / (layout.k * layout.cell_size)).max(1) } else { 1 }
}

/// A coder: reads the next batch of rows (in turn with the other coder) into slot-major shards,
/// computes their parity, and appends both to the slots when its turn comes. Returns the rows it
/// coded.
fn code_batches<R: Read, W: Write>(
    layout: &SlotLayout,
    source: &Mutex<Source<R>>,
    sink: &Shared<'_, W>,
) -> Result<u64, ErasureError> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    let per_call = rows_per_call(layout);
    let stride = per_call * cs; // bytes of one slot's shard in `data`
    let mut data = vec![0u8; k * stride];
    let mut encoder = ReedSolomonEncoder::new(k, m, stride)?;
    let mut shard_bytes = stride;
    let total_rows = layout.rows();
    let mut coded = 0u64;
    loop {
        let (seq, rows) = {
            let mut src = source.lock().unwrap_or_else(PoisonError::into_inner);
            if src.rows_read >= total_rows || sink.2.load(Ordering::Acquire) {
                break;
            }
            let rows = (total_rows - src.rows_read).min(per_call as u64) as usize;
            for r in 0..rows {
                for slot in 0..k {
                    let cell = &mut data[slot * stride + r * cs..slot * stride + (r + 1) * cs];
                    let want = (cs as u64).min(src.left) as usize;
                    let got = read_full(&mut src.input, &mut cell[..want])?;
                    if got < want {
                        let expected = layout.dataset_size;
                        return Err(ErasureError::Truncated { expected, got: expected - src.left + got as u64 });
                    }
                    cell[want..].fill(0); // zero padding of the last row
                    src.left -= want as u64;
                }
            }
            src.rows_read += rows as u64;
            src.next_seq += 1;
            (src.next_seq - 1, rows)
        };
        if rows * cs != shard_bytes {
            shard_bytes = rows * cs;
            encoder.reset(k, m, shard_bytes)?;
        }
        for slot in 0..k {
            encoder.add_original_shard(&data[slot * stride..slot * stride + shard_bytes])?;
        }
        let parity = encoder.encode()?;

        let (lock, turn, failed) = sink;
        let mut out = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while out.next_seq != seq && !failed.load(Ordering::Acquire) {
            out = turn.wait(out).unwrap_or_else(PoisonError::into_inner);
        }
        if failed.load(Ordering::Acquire) {
            break;
        }
        let written = (|| {
            for (slot, writer) in out.slots[..k].iter_mut().enumerate() {
                writer.write_all(&data[slot * stride..slot * stride + shard_bytes])?;
            }
            for (j, writer) in out.slots[k..].iter_mut().enumerate() {
                writer.write_all(parity.recovery(j).unwrap_or_default())?;
            }
            Ok::<_, std::io::Error>(())
        })();
        if written.is_err() {
            failed.store(true, Ordering::Release);
        }
        out.next_seq += 1;
        drop(out);
        turn.notify_all();
        written?;
        coded += rows as u64;
    }
    Ok(coded)
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
    let source = Mutex::new(Source { input, left: layout.dataset_size, rows_read: 0, next_seq: 0 });
    let sink: Shared<'_, W> = (Mutex::new(Sink { slots, next_seq: 0 }), Condvar::new(), AtomicBool::new(false));
    let coded: Vec<_> = std::thread::scope(|scope| {
        let coders: Vec<_> = (0..CODERS)
            .map(|_| {
                let (source, sink) = (&source, &sink);
                scope.spawn(move || {
                    let result = code_batches(layout, source, sink);
                    if result.is_err() {
                        // Let the other coder stop instead of waiting for a turn that never comes.
                        let guard = sink.0.lock().unwrap_or_else(PoisonError::into_inner);
                        sink.2.store(true, Ordering::Release);
                        drop(guard);
                        sink.1.notify_all();
                    }
                    result
                })
            })
            .collect();
        coders.into_iter().map(|c| c.join()).collect()
    });
    let mut rows = 0;
    for c in coded {
        rows += c.map_err(|_| ErasureError::InvalidParams("encoder thread panicked".into()))??;
    }
    if rows != layout.rows() {
        return Err(ErasureError::InvalidParams(format!("coded {rows} of {} rows", layout.rows())));
    }
    Ok(EncodeStats { rows, slot_bytes: rows * (layout.slot_count() * layout.cell_size) as u64 })
}
