//! `vellum bench hash`: slot-tree hashing speed (Poseidon2 over 2 KiB cells) on one and two
//! cores, and the wall time to protect a dataset end to end (erasure coding, slot files, slot
//! trees, manifest).

use std::time::Instant;

use clap::Args;

use super::parse_size;
use node::content::DEFAULT_BLOCK_SIZE;
use node::store::BlockStore;

/// Flags of `vellum bench hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Bytes of cells hashed per measurement.
    #[arg(long, value_parser = parse_size, default_value = "32MiB")]
    pub size: u64,
    /// Cell size in bytes.
    #[arg(long, default_value_t = 2048)]
    pub cell_size: usize,
    /// Dataset size for the end-to-end protection run.
    #[arg(long, value_parser = parse_size, default_value = "256MiB")]
    pub protect_size: u64,
    /// K and M of the protection run.
    #[arg(long, default_value = "8+8")]
    pub code: String,
    /// Runs per measurement; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the hashing benchmark and prints a table.
pub(super) fn hash(args: HashArgs) -> anyhow::Result<()> {
    let cells = (args.size / args.cell_size as u64).max(1) as usize;
    let data: Vec<u8> = (0..cells * args.cell_size).map(|i| (i as u64).wrapping_mul(0x9E37_79B9) as u8).collect();
    println!(
        "vellum bench hash: Poseidon2 slot tree (cell sponge t = 16, 8-ary t = 12 tree) over {} cells of {} B, median of {}",
        cells,
        args.cell_size,
        args.runs.max(1)
    );
    println!("| implementation | threads | MB/s | MB/s per thread | µs per cell |");
    println!("|---|---:|---:|---:|---:|");
    let mut reference = None;
    let mut backends = vec![(circuits::HashBackend::Scalar, "scalar")];
    if circuits::HashBackend::Auto.is_vectorised() {
        backends.push((circuits::HashBackend::Auto, "AVX-512 IFMA, 8 cells per pass"));
    }
    for (backend, name) in backends {
        for threads in [1usize, 2] {
            let mut secs = Vec::new();
            for _ in 0..args.runs.max(1) {
                let started = Instant::now();
                let leaves = circuits::hash_cells_with(backend, &data, args.cell_size, threads);
                let root = circuits::merkle_root(&leaves);
                secs.push(started.elapsed().as_secs_f64());
                anyhow::ensure!(
                    *reference.get_or_insert(root) == root,
                    "root depends on the implementation or thread count"
                );
            }
            let s = median(secs);
            let mbs = data.len() as f64 / s / 1e6;
            println!("| {name} | {threads} | {mbs:.1} | {:.1} | {:.1} |", mbs / threads as f64, s * 1e6 / cells as f64);
        }
    }

    let (k, m) = args.code.split_once('+').ok_or_else(|| anyhow::anyhow!("code {:?} is not K+M", args.code))?;
    let (k, m): (usize, usize) = (k.trim().parse()?, m.trim().parse()?);
    let dir = std::env::temp_dir().join(format!("vellum-bench-hash-{}", std::process::id()));
    let mut times = Vec::new();
    for run in 0..args.runs.max(1) {
        let store = BlockStore::open(&dir.join(format!("run{run}")), u64::MAX / 4)?;
        let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE)?;
        let mut left = args.protect_size;
        let piece: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ run as u8).collect();
        while left > 0 {
            let n = left.min(piece.len() as u64) as usize;
            w.write(&piece[..n])?;
            left -= n as u64;
        }
        let (_, manifest) = w.finish(None, None)?;
        let started = Instant::now();
        node::slots::protect(&store, &manifest, node::slots::Protection::new(k, m, args.cell_size), 2)?;
        times.push(started.elapsed().as_secs_f64());
        drop(store);
        std::fs::remove_dir_all(dir.join(format!("run{run}"))).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
    println!();
    println!(
        "protect {} MiB with K = {k}, M = {m}, {} B cells (code, write {} slots, hash their trees; 2 threads): {:.1} s median",
        args.protect_size >> 20,
        args.cell_size,
        k + m,
        median(times)
    );
    Ok(())
}
