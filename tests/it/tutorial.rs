//! The whitepaper's two-node tutorial: upload to node 1, download from node 2 by CID, for files
//! of 0 bytes, 1 byte, 1 MiB + 1 byte and 256 MiB; content found through the DHT alone, and
//! again on a third node that only learns of node 1 through `/connect`.

use vellum_tests::{TestNode, test_bytes, write_test_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_files_through_the_dht() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node1 = TestNode::start(&dir.path().join("Codex1"), &[])?;
    let info = node1.info().await?;
    for field in ["id", "addrs", "repo", "spr"] {
        assert!(info.get(field).is_some(), "/info lacks {field}: {info}");
    }
    assert!(info["spr"].as_str().is_some_and(|s| s.starts_with("spr:")));
    assert!(info["addrs"].as_array().is_some_and(|a| a.len() >= 2), "TCP and QUIC: {info}");
    let node2 = TestNode::start_bootstrapped(&dir.path().join("Codex2"), &node1, &[]).await?;

    for (len, seed) in [(0usize, 1u64), (1, 2), ((1 << 20) + 1, 3)] {
        let data = test_bytes(len, seed);
        let cid = node1.upload(data.clone()).await?;
        assert!(cid.starts_with('z'), "base58btc CID: {cid}");
        let got = node2.download(&format!("/download/{cid}")).await?;
        assert_eq!(got.len(), data.len(), "length of {len}-byte file");
        assert!(got == data, "{len}-byte file differs");
        // Node 2 now holds it locally too.
        assert_eq!(node2.download(&format!("/data/{cid}")).await?, data);
    }

    let big = dir.path().join("big.bin");
    let size = 256u64 << 20;
    let hash = write_test_file(&big, size, 42)?;
    let cid = node1.upload_file(&big).await?;
    let (len, got) = node2.download_hash(&format!("/download/{cid}")).await?;
    assert_eq!((len, got), (size, hash), "256 MiB file differs");

    // A third node, no bootstrap: it meets node 1 through /connect and then finds content.
    let node3 = TestNode::start(&dir.path().join("Codex3"), &[])?;
    let id1 = info["id"].as_str().unwrap_or_default();
    let addr1 = info["addrs"][0].as_str().unwrap_or_default();
    let resp = node3.get(&format!("/connect/{id1}?addrs={addr1}")).await?;
    assert_eq!(resp.status(), 200, "{}", resp.text().await?);
    let small = test_bytes(300_000, 9);
    let cid = node1.upload(small.clone()).await?;
    assert_eq!(node3.download(&format!("/download/{cid}")).await?, small);
    let (len, got) =
        node3.download_hash(&format!("/data/{}/network/stream", node1_big_cid(&cid, &node1).await?)).await?;
    assert_eq!(len, 300_000);
    assert_eq!(got, blake3::hash(&small));
    Ok(())
}

/// The listing on node 1 has the CID it returned (checks `GET /data` too).
async fn node1_big_cid(cid: &str, node1: &TestNode) -> anyhow::Result<String> {
    let list: serde_json::Value = node1.get("/data").await?.json().await?;
    let found = list["content"].as_array().into_iter().flatten().any(|item| item["cid"] == cid);
    anyhow::ensure!(found, "GET /data lacks {cid}: {list}");
    Ok(cid.to_owned())
}
