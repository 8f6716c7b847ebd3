//! A node killed with SIGKILL in the middle of an upload restarts cleanly: the partial upload
//! left no manifest and no space in use, and earlier datasets download intact.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use vellum_testkit::{TestNode, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_upload_loses_only_the_partial_upload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("node");
    let mut node = TestNode::start(&data_dir, &[])?;
    let kept = test_bytes(3 << 20, 11);
    let cid = node.upload(kept.clone()).await?;
    let space_before: serde_json::Value = node.get("/space").await?.json().await?;

    // Start a 64 MiB upload, send 8 MiB of it, then kill the node.
    let addr = node.process.api.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let mut sock = TcpStream::connect(&addr)?;
    write!(
        sock,
        "POST /api/codex/v1/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        64u64 << 20
    )?;
    sock.write_all(&test_bytes(8 << 20, 12))?;
    sock.flush()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tmp_files = std::fs::read_dir(data_dir.join("tmp"))?.count();
    assert!(tmp_files > 0, "the upload should be in progress");
    node.process.kill();
    drop(sock);

    let node = TestNode::start(&data_dir, &[])?;
    let list: serde_json::Value = node.get("/data").await?.json().await?;
    let items = list["content"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "only the completed dataset: {list}");
    assert_eq!(items[0]["cid"], cid.as_str());
    assert!(node.download(&format!("/data/{cid}")).await? == kept);
    let space_after: serde_json::Value = node.get("/space").await?.json().await?;
    assert_eq!(space_after["quotaUsedBytes"], space_before["quotaUsedBytes"]);
    assert_eq!(std::fs::read_dir(data_dir.join("tmp"))?.count(), 0, "tmp is cleaned at start");
    Ok(())
}
