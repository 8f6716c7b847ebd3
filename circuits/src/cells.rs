//! Cell hashing: the leaves of a slot tree are the sponge hashes of its cells' bytes.

use crate::pack::{for_each_packed, packed_len};
use crate::sponge::{DOMAIN_CELL, Sponge};
use ark_bn254::Fr;
use ark_ff::Zero;
use std::sync::{Mutex, PoisonError};

/// Vellum's default cell size, in bytes (one Reed–Solomon shard, one proof leaf).
pub const DEFAULT_CELL_SIZE: usize = 2048;

/// The most threads [`hash_cells`] starts.
pub const MAX_THREADS: usize = 256;

/// Work units per thread in [`hash_cells`], so that a slow thread does not hold everyone up.
const PARTS_PER_THREAD: usize = 8;

/// Hashes one cell: its bytes packed 31 to an element (see [`crate::pack_bytes`]) and absorbed by
/// the t = 16 sponge under [`DOMAIN_CELL`](crate::DOMAIN_CELL). Any length works (2 KiB is the
/// default; a 64 KiB cell is 2,115 elements, 141 permutations).
pub fn hash_cell(cell: &[u8]) -> Fr {
    let mut sponge = Sponge::new(DOMAIN_CELL, packed_len(cell.len()) as u64);
    for_each_packed(cell, |e| sponge.absorb(e));
    sponge.finish()
}

/// Hashes consecutive cells of `cell_size` bytes, using up to `threads` OS threads (0 counts as 1;
/// at most [`MAX_THREADS`] and one per cell are used); the result is the same whatever `threads` is. A shorter tail (when `cells.len()` is not a
/// multiple of `cell_size`) is hashed as a cell of its own length; `cell_size == 0` gives no cells.
///
/// On a CPU with AVX-512 IFMA, eight cells at a time go through the eight-lane sponge (same
/// hashes, about 3× the speed); see [`hash_cells_with`] to choose.
pub fn hash_cells(cells: &[u8], cell_size: usize, threads: usize) -> Vec<Fr> {
    hash_cells_with(HashBackend::Auto, cells, cell_size, threads)
}

/// Which implementation [`hash_cells_with`] runs; every choice gives the same hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashBackend {
    /// The eight-lane AVX-512 IFMA sponge where the CPU has it, else the scalar one.
    Auto,
    /// The scalar sponge only (for comparison).
    Scalar,
}

impl HashBackend {
    /// Whether this backend hashes eight cells at a time on this CPU.
    pub fn is_vectorised(self) -> bool {
        self == HashBackend::Auto && crate::ifma::available()
    }
}

/// [`hash_cells`] with a chosen [`HashBackend`].
pub fn hash_cells_with(backend: HashBackend, cells: &[u8], cell_size: usize, threads: usize) -> Vec<Fr> {
    let vector = backend.is_vectorised();
    if cell_size == 0 {
        return Vec::new();
    }
    let n = cells.len().div_ceil(cell_size);
    let mut out = vec![Fr::zero(); n];
    let threads = threads.clamp(1, n.clamp(1, MAX_THREADS));
    if threads == 1 {
        hash_into(cells, cell_size, &mut out, vector);
        return out;
    }
    // Parts of the output go into a shared queue that the spawned threads and this one drain, so
    // the work balances itself, and is still all done if the OS refuses to start a thread.
    let mut per_part = n.div_ceil(threads * PARTS_PER_THREAD).max(1);
    if vector {
        per_part = per_part.next_multiple_of(8); // whole groups of eight in every part
    }
    let parts: Vec<(&[u8], &mut [Fr])> =
        cells.chunks(per_part.saturating_mul(cell_size)).zip(out.chunks_mut(per_part)).collect();
    let queue = Mutex::new(parts);
    let work = || {
        loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match next {
                Some((input, output)) => hash_into(input, cell_size, output, vector),
                None => break,
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            if std::thread::Builder::new().name("hash-cells".into()).spawn_scoped(scope, work).is_err() {
                break;
            }
        }
        work();
    });
    out
}

fn hash_into(cells: &[u8], cell_size: usize, out: &mut [Fr], vector: bool) {
    let mut done = 0;
    if vector {
        // Eight whole cells at a time on the vector unit; the rest (and a short tail) below.
        for (outs, group) in out.chunks_exact_mut(8).zip(cells.chunks_exact(8 * cell_size)) {
            let lanes: [&[u8]; 8] = std::array::from_fn(|i| &group[i * cell_size..(i + 1) * cell_size]);
            match crate::ifma::hash_cells_x8(lanes) {
                Some(hashes) => outs.copy_from_slice(&hashes),
                None => break,
            }
            done += 8;
        }
    }
    for (o, cell) in out[done..].iter_mut().zip(cells[(done * cell_size).min(cells.len())..].chunks(cell_size)) {
        *o = hash_cell(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DOMAIN_CELL, hash_elements, pack_bytes};

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn cell_hash_is_the_sponge_over_the_packing() {
        for n in [0usize, 1, 30, 31, 32, 62, 465, 2048] {
            let cell = bytes(n, 5);
            assert_eq!(hash_cell(&cell), hash_elements(DOMAIN_CELL, &pack_bytes(&cell)), "{n} bytes");
        }
    }

    #[test]
    fn lengths_hash_differently() {
        let hashes: Vec<Fr> = [0usize, 1, 2, 30, 31, 32, 62, 63].iter().map(|&n| hash_cell(&vec![0u8; n])).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn thread_count_does_not_matter() {
        let data = bytes(2048 * 37 + 100, 9);
        let expect: Vec<Fr> = data.chunks(2048).map(hash_cell).collect();
        assert_eq!(expect.len(), 38);
        for threads in [0usize, 1, 2, 3, 4, 7, 64] {
            assert_eq!(hash_cells(&data, 2048, threads), expect, "{threads} threads");
            assert_eq!(hash_cells_with(HashBackend::Scalar, &data, 2048, threads), expect, "{threads} threads");
        }
        // Short cells, a count that is not a multiple of eight, and a tail.
        let small = bytes(100 * 19 + 5, 3);
        let expect_small: Vec<Fr> = small.chunks(100).map(hash_cell).collect();
        for threads in [1usize, 2, 5] {
            assert_eq!(hash_cells(&small, 100, threads), expect_small, "{threads} threads");
        }
        assert_eq!(hash_cells(&data[..2048 * 5], 2048, 2), expect[..5]);
        assert!(hash_cells(&data, 0, 2).is_empty());
        assert!(hash_cells(&[], 2048, 2).is_empty());
    }
}
