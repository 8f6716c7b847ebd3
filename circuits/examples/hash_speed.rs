//! Native hashing speed: each candidate Poseidon2 width, then Vellum's slot-tree hashing end to end.
//!
//! `cargo run -p circuits --release --example hash_speed [slot MiB] [runs]`
//!
//! Prints medians of repeated wall-clock runs (and the load average, since other work on the
//! machine slows everything down). MB/s are 10^6 bytes of cell data per second.

use circuits::poseidon2::{POSEIDON2_T3, POSEIDON2_T8, POSEIDON2_T12, POSEIDON2_T16, Poseidon2Params};
use circuits::{DEFAULT_CELL_SIZE, Fr, hash_cells, merkle_root, packed_len};
use std::hint::black_box;
use std::time::Instant;

/// Median of `runs` timings of `f`, in seconds.
fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median time of one permutation, in microseconds.
fn perm_micros<const T: usize>(params: &Poseidon2Params<T>, runs: usize) -> f64 {
    let mut state: [Fr; T] = std::array::from_fn(|i| Fr::from(i as u64));
    let batch = 20_000 / T;
    median_secs(runs, || {
        for _ in 0..batch {
            params.permute(black_box(&mut state));
        }
    }) / batch as f64
        * 1e6
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let slot_mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(9);
    let elements = packed_len(DEFAULT_CELL_SIZE);
    println!("load average before: {}", load());
    println!(
        "\ncell sponge candidates ({DEFAULT_CELL_SIZE}-byte cell = {elements} elements, rate t-1, median of {runs})"
    );
    println!(
        "{:>4} {:>12} {:>10} {:>11} {:>12} {:>14}",
        "t", "perm (us)", "R1CS/perm", "perms/cell", "R1CS/cell", "sponge MB/s"
    );
    let rows = [
        (3, perm_micros(&POSEIDON2_T3, runs), POSEIDON2_T3.r1cs_constraints()),
        (8, perm_micros(&POSEIDON2_T8, runs), POSEIDON2_T8.r1cs_constraints()),
        (12, perm_micros(&POSEIDON2_T12, runs), POSEIDON2_T12.r1cs_constraints()),
        (16, perm_micros(&POSEIDON2_T16, runs), POSEIDON2_T16.r1cs_constraints()),
    ];
    for &(t, micros, r1cs) in &rows {
        let perms = elements.div_ceil(t - 1);
        let mbs = DEFAULT_CELL_SIZE as f64 / (perms as f64 * micros);
        println!("{t:>4} {micros:>12.2} {r1cs:>10} {perms:>11} {:>12} {mbs:>14.2}", perms * r1cs);
    }

    println!("\ntree candidates (per cell: one node per arity-1 leaves; per path at depth 19)");
    println!("{:>6} {:>4} {:>12} {:>8} {:>12}", "arity", "t", "us/cell", "levels", "R1CS/path");
    for &(arity, t, bits) in &[(2usize, 3usize, 1u32), (4, 8, 2), (8, 12, 3)] {
        let (micros, r1cs) = rows.iter().find(|r| r.0 == t).map(|r| (r.1, r.2)).unwrap_or_default();
        let levels = 19u32.div_ceil(bits) as usize;
        // ~arity constraints per level to place the node among its siblings.
        println!("{arity:>6} {t:>4} {:>12.2} {levels:>8} {:>12}", micros / (arity - 1) as f64, levels * (r1cs + arity));
    }

    let cells = slot_mib * 1024 * 1024 / DEFAULT_CELL_SIZE;
    let data: Vec<u8> =
        (0..cells * DEFAULT_CELL_SIZE).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect();
    println!("\nslot tree: {slot_mib} MiB = {cells} cells, t=16 sponge + 8-ary t=12 tree, median of {runs}");
    for threads in [1usize, 2] {
        let secs = median_secs(runs, || {
            let leaves = hash_cells(&data, DEFAULT_CELL_SIZE, threads);
            black_box(merkle_root(&leaves));
        });
        let mbs = data.len() as f64 / secs / 1e6;
        println!("{threads} thread(s): {:.3} s, {mbs:.2} MB/s ({:.2} MB/s per thread)", secs, mbs / threads as f64);
    }
    println!("\nload average after: {}", load());
}
