//! `vellum bench transfer`: REST upload into one node, then a node-to-node download on loopback
//! through a second node, with throughput and each node's peak RSS. Nodes run as child
//! processes of this binary, exactly as `vellum node` runs them, started and driven with
//! `vellum-testkit`'s `TestNode`. Each size runs plain and encrypted (`?encrypt=true` on the
//! upload, the key in the download's header; the node seals and opens with
//! ChaCha20-Poly1305).

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

/// Streams `file` to `/upload?encrypt=true`; returns (CID, key).
async fn upload_encrypted(node: &TestNode, file: &std::path::Path) -> anyhow::Result<(String, String)> {
    let f = tokio::fs::File::open(file).await?;
    let len = f.metadata().await?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20));
    let resp = node
        .http
        .post(node.url("/upload?encrypt=true"))
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .body(body)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("encrypted upload failed: {}", resp.status());
    }
    let answer: serde_json::Value = resp.json().await?;
    let field = |name: &str| answer[name].as_str().map(str::to_owned).context("no CID or key in the answer");
    Ok((field("cid")?, field("key")?))
}

async fn one_run(dir: &std::path::Path, size: u64, encrypted: bool) -> anyhow::Result<Run> {
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
    let (cid, key) = if encrypted {
        let (cid, key) = upload_encrypted(&node1, &file).await?;
        (cid, Some(key))
    } else {
        (node1.upload_file(&file).await?, None)
    };
    let upload_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let path = format!("/download/{cid}");
    let header = key.as_deref().map(|k| (node::api::KEY_HEADER, k));
    let (got, hash) = node2.download_hash_with(&path, header).await?;
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
    println!(
        "| size | data | runs | upload MB/s | node-to-node download MB/s | node 1 peak RSS MB | node 2 peak RSS MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &size in &args.sizes {
        // Plain and encrypted runs alternate, each going first every other time, so that both
        // see the same machine conditions (page-cache writeback dominates on small machines).
        let (mut plain, mut sealed) = (Vec::new(), Vec::new());
        for i in 0..args.runs.max(1) {
            for encrypted in [i % 2 == 1, i % 2 == 0] {
                let run = one_run(&dir, size, encrypted).await?;
                if encrypted { sealed.push(run) } else { plain.push(run) }
            }
        }
        for (label, runs) in [("plain", plain), ("encrypted", sealed)] {
            print_row(size, label, &runs);
        }
    }
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

fn print_row(size: u64, label: &str, runs: &[Run]) {
    {
        let rss1 = runs.iter().map(|r| r.rss1).max().unwrap_or(0);
        let rss2 = runs.iter().map(|r| r.rss2).max().unwrap_or(0);
        println!(
            "| {} MiB | {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            size >> 20,
            runs.len(),
            median(runs.iter().map(|r| r.upload_mbs).collect()),
            median(runs.iter().map(|r| r.download_mbs).collect()),
            rss1 as f64 / 1e6,
            rss2 as f64 / 1e6,
        );
    }
}
