//! `vellum bench erasure`: Reed–Solomon encode and decode speed, raw library against Vellum's
//! streaming pipeline (dataset file → slot files → dataset file), for several K + M. The raw
//! library runs twice: one row (one cell per shard) per call, and as many rows per call as the
//! pipeline codes at once (every row is still its own codeword; see `erasure/encode.rs`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use clap::Args;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use super::parse_size;
use node::erasure::{SlotLayout, decode, encode, rows_per_batch, rows_per_call, trust_all};

/// Flags of `vellum bench erasure`.
#[derive(Debug, Args)]
pub struct ErasureArgs {
    /// Dataset size per run.
    #[arg(long, env = "VELLUM_BENCH_SIZE", value_parser = parse_size, default_value = "256MiB")]
    pub size: u64,
    /// Cell (shard) size in bytes.
    #[arg(long, default_value_t = 2048)]
    pub cell_size: usize,
    /// K+M pairs, e.g. `16+16`.
    #[arg(long = "code", default_values_t = ["16+16".to_owned(), "64+32".to_owned()])]
    pub codes: Vec<String>,
    /// Runs per measurement; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Directory for the dataset and slot files (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn gib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / (1u64 << 30) as f64
}

/// Raw library: the same rows encoded from memory, nothing read or written.
fn raw_encode(layout: &SlotLayout, data: &[u8]) -> anyhow::Result<f64> {
    let (k, cs) = (layout.k, layout.cell_size);
    let mut enc = ReedSolomonEncoder::new(k, layout.m, cs)?;
    let started = Instant::now();
    for row in data.chunks_exact(k * cs) {
        for cell in row.chunks_exact(cs) {
            enc.add_original_shard(cell)?;
        }
        std::hint::black_box(enc.encode()?.recovery(0));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Raw library with `rows` rows per call: shards are the slots' cells laid end to end, as the
/// pipeline calls it (taken from the encoded data slots, already slot-major).
fn raw_encode_batched(layout: &SlotLayout, data_slots: &[Vec<u8>], rows: usize) -> anyhow::Result<f64> {
    let shard = rows * layout.cell_size;
    let mut enc = ReedSolomonEncoder::new(layout.k, layout.m, shard)?;
    let started = Instant::now();
    for at in (0..data_slots[0].len()).step_by(shard) {
        let end = (at + shard).min(data_slots[0].len());
        if end - at != shard {
            enc.reset(layout.k, layout.m, end - at)?;
        }
        for s in data_slots {
            enc.add_original_shard(&s[at..end])?;
        }
        std::hint::black_box(enc.encode()?.recovery(0));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Raw library with `rows` rows per call, the first min(K, M) data slots lost.
fn raw_decode_batched(layout: &SlotLayout, slots: &[Vec<u8>], rows: usize) -> anyhow::Result<f64> {
    let (k, m) = (layout.k, layout.m);
    let lost = k.min(m);
    let shard = rows * layout.cell_size;
    let mut dec = ReedSolomonDecoder::new(k, m, shard)?;
    let started = Instant::now();
    for at in (0..slots[0].len()).step_by(shard) {
        let end = (at + shard).min(slots[0].len());
        if end - at != shard {
            dec.reset(k, m, end - at)?;
        }
        for (i, s) in slots.iter().enumerate().take(k).skip(lost) {
            dec.add_original_shard(i, &s[at..end])?;
        }
        for (j, s) in slots[k..].iter().enumerate().take(lost) {
            dec.add_recovery_shard(j, &s[at..end])?;
        }
        std::hint::black_box(dec.decode()?.restored_original(0));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Raw library: every row rebuilt with its first min(K, M) data shards missing.
fn raw_decode(layout: &SlotLayout, data: &[u8], parity: &[Vec<u8>]) -> anyhow::Result<f64> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    let lost = k.min(m);
    let mut dec = ReedSolomonDecoder::new(k, m, cs)?;
    let started = Instant::now();
    for (r, row) in data.chunks_exact(k * cs).enumerate() {
        for (i, cell) in row.chunks_exact(cs).enumerate().skip(lost) {
            dec.add_original_shard(i, cell)?;
        }
        for (j, p) in parity.iter().enumerate().take(lost) {
            dec.add_recovery_shard(j, &p[r * cs..(r + 1) * cs])?;
        }
        std::hint::black_box(dec.decode()?.restored_original(0));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn one_code(args: &ErasureArgs, code: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let (k, m) = code.split_once('+').ok_or_else(|| anyhow::anyhow!("code {code:?} is not K+M"))?;
    let (k, m): (usize, usize) = (k.trim().parse()?, m.trim().parse()?);
    let row = (k * args.cell_size) as u64;
    let size = args.size.div_ceil(row) * row; // whole rows, so raw and pipeline do the same work
    let layout = SlotLayout::new(k, m, args.cell_size, size)?;
    let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(0x9E37_79B9) >> 13) as u8).collect();
    let input = dir.join("dataset.bin");
    std::fs::write(&input, &data)?;
    let slot_path = |i: usize| dir.join(format!("slot-{i}"));

    let lost = k.min(m);
    let mut t: [Vec<f64>; 8] = Default::default();
    for _ in 0..args.runs.max(1) {
        t[0].push(raw_encode(&layout, &data)?);

        // The pipeline with memory on both sides: what Vellum's code adds to the library.
        // Memory touched beforehand, so that page faults are not counted as coding time.
        let prefaulted = |n: u64| {
            let mut v = vec![1u8; n as usize];
            v.clear();
            v
        };
        let mut sinks: Vec<Vec<u8>> = (0..k + m).map(|_| prefaulted(layout.slot_size())).collect();
        let started = Instant::now();
        encode(&layout, data.as_slice(), &mut sinks)?;
        t[1].push(started.elapsed().as_secs_f64());

        // The pipeline with files on both sides (page cache).
        let started = Instant::now();
        let mut writers = (0..layout.slot_count())
            .map(|i| File::create(slot_path(i)).map(|f| BufWriter::with_capacity(256 << 10, f)))
            .collect::<Result<Vec<_>, _>>()?;
        encode(&layout, BufReader::with_capacity(4 << 20, File::open(&input)?), &mut writers)?;
        for w in &mut writers {
            w.flush()?;
        }
        t[2].push(started.elapsed().as_secs_f64());

        t[3].push(raw_decode(&layout, &data, &sinks[k..])?);
        t[6].push(raw_encode_batched(&layout, &sinks[..k], rows_per_call(&layout))?);
        t[7].push(raw_decode_batched(&layout, &sinks, rows_per_batch(&layout))?);

        let present: Vec<Option<Vec<u8>>> =
            sinks.into_iter().enumerate().map(|(i, s)| (i >= lost).then_some(s)).collect();
        let mut out = prefaulted(size);
        let started = Instant::now();
        decode(&layout, &present, &mut out, &trust_all)?;
        t[4].push(started.elapsed().as_secs_f64());
        anyhow::ensure!(out == data, "rebuilt dataset differs");

        let slots: Vec<Option<File>> =
            (0..k + m).map(|i| if i < lost { None } else { File::open(slot_path(i)).ok() }).collect();
        let started = Instant::now();
        let out = BufWriter::with_capacity(4 << 20, File::create(dir.join("rebuilt.bin"))?);
        decode(&layout, &slots, out, &trust_all)?;
        t[5].push(started.elapsed().as_secs_f64());
    }
    let rebuilt = std::fs::read(dir.join("rebuilt.bin"))?;
    anyhow::ensure!(rebuilt == data, "rebuilt dataset differs");
    let [re, me, fe, rd, md, fd, rbe, rbd] = t.map(median);
    let g = |secs| gib_per_s(size, secs);
    println!(
        "| {k}+{m} | {} | encode | {:.2} | {:.2} ({}) | {:.2} | {:.0} % | {:.0} % | {:.2} |",
        args.cell_size,
        g(re),
        g(rbe),
        rows_per_call(&layout),
        g(me),
        100.0 * re / me,
        100.0 * rbe / me,
        g(fe)
    );
    println!(
        "| {k}+{m} | {} | decode, {lost} lost | {:.2} | {:.2} ({}) | {:.2} | {:.0} % | {:.0} % | {:.2} |",
        args.cell_size,
        g(rd),
        g(rbd),
        rows_per_batch(&layout),
        g(md),
        100.0 * rd / md,
        100.0 * rbd / md,
        g(fd)
    );
    for i in 0..k + m {
        std::fs::remove_file(slot_path(i)).ok();
    }
    Ok(())
}

/// Runs the erasure benchmark and prints a table.
pub(super) fn erasure(args: ErasureArgs) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("vellum-bench-erasure-{}", std::process::id()));
    let dir = args.dir.clone().unwrap_or(tmp);
    std::fs::create_dir_all(&dir)?;
    println!(
        "vellum bench erasure: {} MiB dataset, GiB/s of original data, median of {} runs",
        args.size >> 20,
        args.runs.max(1)
    );
    println!(
        "| K+M | cell B | operation | raw library, 1 row per call | raw library, rows per call as the pipeline (rows) | pipeline in memory | pipeline / raw (1 row) | pipeline / raw (same rows) | pipeline with files |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for code in &args.codes {
        one_code(&args, code, &dir)?;
    }
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}
