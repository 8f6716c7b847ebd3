//! A peer that serves corrupted blocks: its blocks fail their proofs and are refused, the
//! download completes from an honest peer, and nothing corrupt is stored.

use vellum_testkit::{TestNode, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blocks_are_refused_and_the_download_completes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let honest = TestNode::start(&dir.path().join("honest"), &[])?;
    let liar =
        TestNode::start_bootstrapped(&dir.path().join("liar"), &honest, &["--fault-corrupt-served-blocks"]).await?;
    // 32 MiB: more block ranges than one peer may have in flight, so both providers are used.
    let data = test_bytes(32 << 20, 7);
    let cid = honest.upload(data.clone()).await?;
    // The liar fetches an honest copy (its own fetch verifies), then serves it corrupted.
    let (len, _) = liar.download_hash(&format!("/download/{cid}")).await?;
    assert_eq!(len, data.len() as u64);

    // The client only knows the liar, so the liar is the first provider it hears of.
    let client = TestNode::start_bootstrapped(&dir.path().join("client"), &liar, &[]).await?;
    let got = client.download(&format!("/download/{cid}")).await?;
    assert!(got == data, "download differs from the upload");

    let stats = client.debug_info().await?;
    let rejected = stats["exchange"]["blocksRejected"].as_u64().unwrap_or(0);
    assert!(rejected > 0, "the corrupt peer was never asked: {stats}");
    let served = liar.debug_info().await?["exchange"]["blocksServed"].as_u64().unwrap_or(0);
    assert!(served > 0);

    // What the client stored is the honest data, even with both providers gone.
    drop(honest);
    drop(liar);
    assert!(client.download(&format!("/data/{cid}")).await? == data);
    Ok(())
}
