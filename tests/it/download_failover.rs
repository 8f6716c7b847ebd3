//! A provider that goes away in the middle of a network download: the download finishes from
//! another provider when one exists, and otherwise the client's body read fails (not a clean,
//! short body) within seconds, with nothing partial kept by the downloader.
//!
//! On loopback a fetch is over in well under a second, so the downloader is frozen (SIGSTOP) the
//! moment its first bytes arrive, the provider is killed or frozen, and the downloader resumes:
//! the provider is then gone with the transfer certainly under way.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use vellum_testkit::{TestNode, file_contains, test_bytes};

/// Big enough that the downloader is still fetching when its first bytes reach the client.
const SIZE: usize = 48 << 20;

/// How a provider goes away.
#[derive(Debug, Clone, Copy)]
enum Departure {
    /// SIGKILL: its connections close at once.
    Killed,
    /// SIGSTOP: its connections stay open, and nothing comes back on them.
    Silent,
}

/// Sends `signal` (`Signal::STOP`, `Signal::CONT`) to a node's process, with a system call: a
/// `kill` child would take milliseconds to start on a loaded machine, long enough for a loopback
/// fetch to end before the freeze.
fn signal(node: &TestNode, signal: Signal) -> anyhow::Result<()> {
    let pid = i32::try_from(node.process.pid())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| anyhow::anyhow!("no process id {}", node.process.pid()))?;
    rustix::process::kill_process(pid, signal)?;
    Ok(())
}

/// Starts the downloader, bootstrapped from `provider`, its log in `log`.
async fn downloader(dir: &Path, provider: &TestNode, log: &Path) -> anyhow::Result<TestNode> {
    let spr = provider.spr().await?;
    TestNode::start_logged(dir, &["--bootstrap-node", &spr], Some(log))
}

/// Starts `GET /data/{cid}/network/stream` on `client`, waits for its first bytes, then (with
/// `client` frozen meanwhile) lets `provider` go away. Returns the response and the bytes read
/// so far.
async fn stream_until_provider_leaves(
    client: &TestNode,
    provider: &mut TestNode,
    cid: &str,
    how: Departure,
) -> anyhow::Result<(reqwest::Response, Vec<u8>)> {
    let mut body = client.get(&format!("/data/{cid}/network/stream")).await?.error_for_status()?;
    assert_eq!(body.content_length(), Some(SIZE as u64));
    let first = body.chunk().await?.ok_or_else(|| anyhow::anyhow!("empty body"))?;
    signal(client, Signal::STOP)?;
    match how {
        Departure::Killed => provider.kill(),
        Departure::Silent => signal(provider, Signal::STOP)?,
    }
    signal(client, Signal::CONT)?;
    Ok((body, first.to_vec()))
}

async fn provider_leaves_mid_download_and_another_finishes(how: Departure) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut a = TestNode::start(&dir.path().join("a"), &[])?;
    let b = TestNode::start_bootstrapped(&dir.path().join("b"), &a, &[]).await?;
    let data = test_bytes(SIZE, 16);
    let cid = a.upload(data.clone()).await?;
    // B fetches a copy from A, and then provides it too.
    assert!(b.download(&format!("/data/{cid}/network/stream")).await? == data);
    let log = dir.path().join("c.log");
    let c = downloader(&dir.path().join("c"), &a, &log).await?;

    let (mut body, mut got) = stream_until_provider_leaves(&c, &mut a, &cid, how).await?;
    let resumed = Instant::now();
    while let Some(chunk) = body.chunk().await? {
        got.extend_from_slice(&chunk);
    }
    let took = resumed.elapsed();
    assert!(got == data, "the download ({} bytes) is not the upload", got.len());
    assert!(file_contains(&log, "provider dropped"), "{how:?}: A was never dropped (see {})", log.display());
    assert!(took < Duration::from_secs(15), "{how:?}: the rest took {took:?}");
    // C holds the dataset itself now.
    assert!(c.download(&format!("/data/{cid}")).await? == data);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provider_is_replaced_mid_download() -> anyhow::Result<()> {
    provider_leaves_mid_download_and_another_finishes(Departure::Killed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_provider_is_replaced_mid_download() -> anyhow::Result<()> {
    provider_leaves_mid_download_and_another_finishes(Departure::Silent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_provider_killed_mid_download_fails_the_body() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut a = TestNode::start(&dir.path().join("a"), &[])?;
    let cid = a.upload(test_bytes(SIZE, 17)).await?;
    let log = dir.path().join("c.log");
    let c = downloader(&dir.path().join("c"), &a, &log).await?;

    let (mut body, first) = stream_until_provider_leaves(&c, &mut a, &cid, Departure::Killed).await?;
    let resumed = Instant::now();
    let mut len = first.len() as u64;
    let failed = loop {
        match body.chunk().await {
            Ok(Some(chunk)) => len += chunk.len() as u64,
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let took = resumed.elapsed();
    assert!(failed, "the body ended cleanly after {len} of {SIZE} bytes");
    assert!(len < SIZE as u64);
    assert!(took < Duration::from_secs(20), "the failure took {took:?}");
    assert!(file_contains(&log, "fetch failed") && file_contains(&log, "download cut short"));
    // Nothing partial is committed: C does not hold the dataset.
    let exists = c.get_json(&format!("/data/{cid}/exists")).await?;
    assert_eq!(exists["has"], false, "{exists}");
    assert_eq!(c.get(&format!("/data/{cid}")).await?.status(), 404);
    Ok(())
}
