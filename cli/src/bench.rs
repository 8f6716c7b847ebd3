//! `vellum bench transfer`: REST upload into one node, then a node-to-node download on loopback
//! through a second node, with throughput and each node's peak RSS. Nodes run as child
//! processes of this binary, exactly as `vellum node` runs them.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use super::parse_size;
use vellum_testkit::process::NodeProcess;

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

/// Writes `size` bytes of incompressible data and returns their BLAKE3 hash.
fn make_file(path: &std::path::Path, size: u64) -> anyhow::Result<blake3::Hash> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ size;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    f.flush()?;
    Ok(hasher.finalize())
}

async fn one_run(dir: &std::path::Path, size: u64) -> anyhow::Result<Run> {
    let exe = std::env::current_exe()?;
    let file = dir.join("payload.bin");
    let expected = make_file(&file, size)?;
    let common = |name: &str| -> Vec<String> {
        let data = dir.join(name);
        vec![
            "--data-dir".into(),
            data.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            "0".into(),
            "--udp-port".into(),
            "0".into(),
            "--log-level".into(),
            "warn".into(),
            "--storage-quota".into(),
            format!("{}", size * 2 + (1 << 30)),
        ]
    };
    let node1 = NodeProcess::spawn(&exe, &common("node1"), Duration::from_secs(30))?;
    let client = reqwest::Client::new();
    let info: serde_json::Value = client.get(format!("{}/info", node1.api)).send().await?.json().await?;
    let spr = info["spr"].as_str().context("node 1 has no SPR")?.to_owned();
    let mut args2 = common("node2");
    args2.extend(["--bootstrap-node".into(), spr]);
    let node2 = NodeProcess::spawn(&exe, &args2, Duration::from_secs(30))?;

    let started = Instant::now();
    let body = ReaderStream::with_capacity(tokio::fs::File::open(&file).await?, 1 << 20);
    let resp = client
        .post(format!("{}/upload", node1.api))
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("upload failed: {}", resp.text().await.unwrap_or_default());
    }
    let cid = resp.text().await?;
    let upload_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let resp = client.get(format!("{}/download/{}", node2.api, cid.trim())).send().await?;
    if !resp.status().is_success() {
        bail!("download failed: {}", resp.text().await.unwrap_or_default());
    }
    let mut hasher = blake3::Hasher::new();
    let mut got = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        got += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let download_secs = started.elapsed().as_secs_f64();
    if got != size || hasher.finalize() != expected {
        bail!("downloaded content differs from the upload ({got} of {size} bytes)");
    }
    let run = Run {
        upload_mbs: size as f64 / upload_secs / 1e6,
        download_mbs: size as f64 / download_secs / 1e6,
        rss1: node1.peak_rss().unwrap_or(0),
        rss2: node2.peak_rss().unwrap_or(0),
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
