//! Protecting a dataset over the REST API: K + M interleaved slots with Poseidon2 slot trees and
//! a verifiable manifest; once the plain copy is deleted, downloads are rebuilt from the slots,
//! with up to M slots lost and damaged cells treated as erasures.

use vellum_testkit::{TestNode, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_dataset_downloads_from_its_slots() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(&dir.path().join("n"), &[])?;
    let data = test_bytes(700_001, 31);
    let cid = node.upload(data.clone()).await?;

    let refuse = node.http.post(format!("{}/data/{cid}/protect?nodes=2&tolerance=2", node.process.api)).send().await?;
    assert_eq!(refuse.status(), 422, "nodes must exceed tolerance");
    let resp = node.http.post(format!("{}/data/{cid}/protect?nodes=6&tolerance=2", node.process.api)).send().await?;
    assert_eq!(resp.status(), 200);
    let item: serde_json::Value = resp.json().await?;
    let protected = item["cid"].as_str().unwrap_or_default().to_owned();
    assert_ne!(protected, cid);
    assert_eq!(item["manifest"]["protected"], true);
    assert_eq!(item["manifest"]["datasetSize"], 700_001);

    // Drop the plain copy (by its tree CID): the protected manifest stays, served from slots.
    let tree = item["manifest"]["treeCid"].as_str().unwrap_or_default().to_owned();
    let del = node.http.delete(format!("{}/data/{tree}", node.process.api)).send().await?;
    assert_eq!(del.status(), 204);
    assert_eq!(node.get(&format!("/data/{cid}")).await?.status(), 404);
    assert!(node.download(&format!("/data/{protected}")).await? == data);

    // Lose one slot and damage a cell of another: two erasures in that row, M = 2, still whole.
    let slots_root = dir.path().join("n").join("slots");
    let slot_dir = std::fs::read_dir(&slots_root)?.next().ok_or_else(|| anyhow::anyhow!("no slot dir"))??.path();
    std::fs::remove_file(slot_dir.join("0.cells"))?;
    let victim = slot_dir.join("2.cells");
    let mut bytes = std::fs::read(&victim)?;
    bytes[10] ^= 0xff;
    std::fs::write(&victim, &bytes)?;
    assert!(node.download(&format!("/data/{protected}")).await? == data);

    // Another slot lost: row 0 has only K − 1 intact cells. The download is refused or cut
    // short, never wrong.
    std::fs::remove_file(slot_dir.join("5.cells"))?;
    match node.download(&format!("/data/{protected}")).await {
        Ok(body) => panic!("{} bytes answered from too few slots", body.len()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // With fewer than K slot files, the node says so up front.
    std::fs::remove_file(slot_dir.join("1.cells"))?;
    assert_eq!(node.get(&format!("/data/{protected}")).await?.status(), 404);
    Ok(())
}

/// A protected dataset whose owner is gone, rebuilt over the network from K published slots held
/// by other nodes: node A protects and publishes (K = 2, M = 2); B fetches slot 1 and C slot 3
/// (and the protected manifest); A is killed; a fresh node D downloads the protected CID, which
/// nobody serves in its original blocks, and gets the exact bytes, decoded from B's and C's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_dataset_is_rebuilt_from_slots_held_elsewhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut a = TestNode::start(&dir.path().join("a"), &[])?;
    let data = test_bytes(300_001, 5);
    let cid = a.upload(data.clone()).await?;
    let resp = a
        .http
        .post(format!("{}/data/{cid}/protect?nodes=4&tolerance=2&cellSize=1024&publish=true", a.process.api))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let item: serde_json::Value = resp.json().await?;
    let protected = item["cid"].as_str().unwrap_or_default().to_owned();
    let slots: Vec<String> = item["manifest"]["slotCids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert_eq!(slots.len(), 4, "{item}");

    let b = TestNode::start_bootstrapped(&dir.path().join("b"), &a, &[]).await?;
    let c = TestNode::start_bootstrapped(&dir.path().join("c"), &a, &[]).await?;
    for (node, slot) in [(&b, &slots[1]), (&c, &slots[3])] {
        let m = node.get(&format!("/data/{protected}/network/manifest")).await?;
        assert_eq!(m.status(), 200, "manifest");
        let (len, _) = node.download_hash(&format!("/data/{slot}/network/stream")).await?;
        assert!(len > 0);
    }
    a.process.kill();

    let d = TestNode::start_bootstrapped(&dir.path().join("d"), &b, &[]).await?;
    let body = d.download(&format!("/download/{protected}")).await?;
    assert!(body == data, "{} bytes rebuilt, {} expected", body.len(), data.len());
    Ok(())
}
