//! `vellum bench transfer`: REST upload into one node, then a node-to-node download on loopback
//! through a second node, with throughput and each node's peak RSS. Nodes run as child
//! processes of this binary, exactly as `vellum node` runs them, started and driven with
//! `vellum-testkit`'s `TestNode`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use vellum_testkit::{TestNode, write_test_file};

use super::parse_size;

/// How long a node may take to report its API.
const NODE_START: Duration = Duration::from_secs(30);

/// Flags of `vellum bench transfer`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// File sizes to run (repeatable), e.g. `--size 64MiB --size 1GiB`.
    #[arg(long = "size", env = "VELLUM_BENCH_SIZE", value_delimiter = ',', value_parser = parse_size, default_value = "1GiB")]
    pub sizes: Vec<u64>,
    /// Runs per size; the table shows the median.
    #[arg(long, env = "VELLUM_BENCH_RUNS", default_value_t = 1)]
    pub runs: usize,
    /// Directory for the nodes' data and the test file (default: a temporary directory).
    #[arg(long, env = "VELLUM_BENCH_DIR")]
    pub dir: Option<std::path::PathBuf>,
}

struct Run {
    upload_mbs: f64,
    download_mbs: f64,
    rss1: u64,
    rss2: u64,
}

async fn one_run(dir: &std::path::Path, size: u64) -> anyhow::Result<Run> {
    let exe = std::env::current_exe()?;
    let file = dir.join("payload.bin");
    let expected = write_test_file(&file, size, size)?;
    let flags: Vec<String> =
        vec!["--log-level".into(), "warn".into(), "--storage-quota".into(), format!("{}", size * 2 + (1 << 30))];
    let node1 = TestNode::spawn(&exe, &dir.join("node1"), &flags, None, NODE_START)?;
    let mut flags2 = flags.clone();
    flags2.extend(["--bootstrap-node".into(), node1.spr().await.context("node 1 has no SPR")?]);
    let node2 = TestNode::spawn(&exe, &dir.join("node2"), &flags2, None, NODE_START)?;

    let started = Instant::now();
    let cid = node1.upload_file(&file).await?;
    let upload_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (got, hash) = node2.download_hash(&format!("/download/{cid}")).await?;
    let download_secs = started.elapsed().as_secs_f64();
    if got != size || hash != expected {
        bail!("downloaded content differs from the upload ({got} of {size} bytes)");
    }
    let run = Run {
        upload_mbs: size as f64 / upload_secs / 1e6,
        download_mbs: size as f64 / download_secs / 1e6,
        rss1: node1.process.peak_rss().unwrap_or(0),
        rss2: node2.process.peak_rss().unwrap_or(0),
    };
    drop(node1);
    drop(node2);
    std::fs::remove_dir_all(dir.join("node1")).ok();
    std::fs::remove_dir_all(dir.join("node2")).ok();
    std::fs::remove_file(&file).ok();
    Ok(run)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the transfer benchmark and prints a table.
pub(super) async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("vellum-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp
        }
    };
    println!("vellum bench transfer: REST upload to node 1, then node 2 downloads it from node 1 (loopback)");
    println!("| size | runs | upload MB/s | node-to-node download MB/s | node 1 peak RSS MB | node 2 peak RSS MB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &size in &args.sizes {
        let mut runs = Vec::new();
        for _ in 0..args.runs.max(1) {
            runs.push(one_run(&dir, size).await?);
        }
        let rss1 = runs.iter().map(|r| r.rss1).max().unwrap_or(0);
        let rss2 = runs.iter().map(|r| r.rss2).max().unwrap_or(0);
        println!(
            "| {} MiB | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            size >> 20,
            runs.len(),
            median(runs.iter().map(|r| r.upload_mbs).collect()),
            median(runs.iter().map(|r| r.download_mbs).collect()),
            rss1 as f64 / 1e6,
            rss2 as f64 / 1e6,
        );
    }
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}
