//! The whitepaper's two-node tutorial: upload to node 1, download from node 2 by CID, for files
//! of 0 bytes, 1 byte, 1 MiB + 1 byte and 256 MiB. Node 2 joins through node 1's SPR and finds
//! the content through the DHT alone; node 3 has no bootstrap node and meets node 1 only through
//! `/connect`.

use vellum_testkit::{TestNode, write_test_file};

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

    let node3 = TestNode::start(&dir.path().join("Codex3"), &[])?;
    let id1 = info["id"].as_str().unwrap_or_default();
    let addr1 = info["addrs"][0].as_str().unwrap_or_default();
    let resp = node3.get(&format!("/connect/{id1}?addrs={addr1}")).await?;
    assert_eq!(resp.status(), 200, "{}", resp.text().await?);

    for (i, size) in [0u64, 1, (1 << 20) + 1, 256 << 20].into_iter().enumerate() {
        let file = dir.path().join(format!("up-{size}.bin"));
        let hash = write_test_file(&file, size, 40 + i as u64)?;
        let cid = node1.upload_file(&file).await?;
        assert!(cid.starts_with('z'), "base58btc CID: {cid}");
        std::fs::remove_file(&file)?;
        for (name, node) in [("node 2 (DHT)", &node2), ("node 3 (/connect)", &node3)] {
            let got = node.download_hash(&format!("/download/{cid}")).await?;
            assert_eq!(got, (size, hash), "{size}-byte file through {name}");
            // It now holds the dataset itself.
            let local = node.download_hash(&format!("/data/{cid}")).await?;
            assert_eq!(local, (size, hash), "{size}-byte file held by {name}");
        }
    }
    Ok(())
}
