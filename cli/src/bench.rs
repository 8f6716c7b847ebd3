//! `vellum bench transfer`: REST upload into one node, then a node-to-node download on loopback
//! through a second node, with throughput and each node's peak RSS. Nodes run as child
//! processes of this binary, exactly as `vellum node` runs them, started and driven with
//! `vellum-testkit`'s `TestNode`. Each size runs plain, encrypted (`?encrypt=true` on the
//! upload, the key in the download's header; the node seals and opens with AES-256-GCM) and
//! paid (node 1 charges a token a byte past 1 MiB, node 2 pays through a channel on a local
//! anvil that mines per transaction, with a voucher on every request).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use vellum_testkit::chain::ChannelsNet;
use vellum_testkit::{TestNode, write_test_file};

use super::parse_size;

/// How long a node may take to report its API.
const NODE_START: Duration = Duration::from_secs(30);
/// Bytes a paid run downloads first, untimed, to open its channel (past the provider's 1 MiB
/// allowance and 8 MiB credit).
const WARM_UP: u64 = 12 << 20;

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

/// How a run moves its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Encrypted,
    /// Plain data, paid for through a channel.
    Paid,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Encrypted => "encrypted",
            Mode::Paid => "paid",
        }
    }
}

async fn one_run(dir: &std::path::Path, size: u64, mode: Mode, chain: Option<&ChannelsNet>) -> anyhow::Result<Run> {
    let exe = std::env::current_exe()?;
    let file = dir.join("payload.bin");
    let expected = write_test_file(&file, size, size)?;
    let flags: Vec<String> =
        vec!["--log-level".into(), "warn".into(), "--storage-quota".into(), format!("{}", size * 2 + (1 << 30))];
    let mut flags1 = flags.clone();
    let mut flags2 = flags.clone();
    if mode == Mode::Paid {
        let chain = chain.context("the paid run needs the local chain")?;
        // Enough for the warm-up, the file and the prepayment.
        let budget = size + WARM_UP + (16 << 20);
        chain.fund(2, alloy::primitives::U256::from(budget)).await?;
        flags1.extend(chain.flags(1)?);
        flags1.extend(["--bandwidth-price", "1", "--bandwidth-free", "1MiB"].map(String::from));
        flags2.extend(chain.flags(2)?);
        flags2.extend(
            ["--max-price", "1", "--bandwidth-budget", &budget.to_string(), "--bandwidth-deposit", &budget.to_string()]
                .map(String::from),
        );
    }
    let node1 = TestNode::spawn(&exe, &dir.join("node1"), &flags1, None, NODE_START)?;
    flags2.extend(["--bootstrap-node".into(), node1.spr().await.context("node 1 has no SPR")?]);
    let node2 = TestNode::spawn(&exe, &dir.join("node2"), &flags2, None, NODE_START)?;
    // A paid run measures a downloader that pays through an open channel: a first, untimed
    // download past the allowance and credit opens it (two transactions, whose receipts the
    // wallet polls for).
    let warm_up = if mode == Mode::Paid { WARM_UP } else { 0 };
    if warm_up > 0 {
        let cid = node1.upload(vellum_testkit::test_bytes(warm_up as usize, size)).await?;
        let (got, _) = node2.download_hash_with(&format!("/download/{cid}"), None).await?;
        if got != warm_up {
            bail!("the warm-up download came back short");
        }
    }

    let started = Instant::now();
    let (cid, key) = if mode == Mode::Encrypted {
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
    if mode == Mode::Paid {
        // The last voucher may still be on its way when the body ends.
        let owed = (size + warm_up).saturating_sub(1 << 20);
        let mut spent = 0;
        for _ in 0..20 {
            let paid = node2.get_json("/bandwidth").await?;
            spent = paid["paying"]["tokensSpent"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            if spent == owed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if spent != owed {
            bail!("node 2 paid {spent} tokens for {size} bytes past a 1 MiB allowance at a token a byte");
        }
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
    // The paid runs' chain: anvil mining per transaction, a token and the channels.
    let chain = match ChannelsNet::start_with(&dir.join("chain"), 3600, None).await {
        Ok(c) => Some(c),
        Err(e) => {
            println!("(no paid runs: the local chain did not start: {e:#})");
            None
        }
    };
    println!(
        "| size | data | runs | upload MB/s | node-to-node download MB/s | node 1 peak RSS MB | node 2 peak RSS MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &size in &args.sizes {
        // The modes' runs alternate, in a rotating order, so that all see the same machine
        // conditions (page-cache writeback dominates on small machines).
        let mut modes = vec![Mode::Plain, Mode::Encrypted];
        if chain.is_some() {
            modes.push(Mode::Paid);
        }
        let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
        for i in 0..args.runs.max(1) {
            for j in 0..modes.len() {
                let k = (i + j) % modes.len();
                runs[k].push(one_run(&dir, size, modes[k], chain.as_ref()).await?);
            }
        }
        for (mode, runs) in modes.iter().zip(&runs) {
            print_row(size, mode.label(), runs);
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
