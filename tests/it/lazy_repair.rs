//! Lazy repair end to end on anvil: a client stores a small file with K = 2, M = 2 and repair
//! threshold 2 on four hosts, then goes away; two hosts stop. A validator accuses their missing
//! proofs and settles the accusations nobody answers (and is paid for each missed proof), both
//! slots are lost, repair opens for both at once. A spare
//! host finds nobody serving the lost slots, fetches the K surviving ones, regenerates both with
//! one decode and fills one; a second spare fetches the other from it and fills it. A fresh node
//! then downloads the file, decoded from the hosts' slots, byte for byte. Repair moved at most
//! (K + L)·slotSize bytes plus 10 %. The file is encrypted on the client before it is encoded:
//! hosts prove and repair ciphertext, and the fresh node decrypts with the key.

use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use contracts::{MarketEvent, Marketplace};
use vellum_testkit::{MarketNet, SHAPE, TestNode, ValidatorProcess, file_contains, json, strs, test_bytes, wait_for};

async fn count_events<E: SolEvent>(net: &MarketNet) -> anyhow::Result<Vec<alloy::rpc::types::Log>> {
    let filter = Filter::new().address(net.deployment.marketplace).event_signature(E::SIGNATURE_HASH).from_block(0u64);
    Ok(net.deployer.get_logs(&filter).await?)
}

async fn offer(node: &TestNode) -> anyhow::Result<()> {
    let body = serde_json::json!({"totalSize": 1 << 20, "duration": 3600,
        "minPricePerBytePerSecond": "1", "totalCollateral": "1000000000"});
    let resp = node.http.post(format!("{}/sales/availability", node.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 201, "availability: {}", resp.status());
    Ok(())
}

/// Bytes a host's log says it fetched for slots ("bytes=…" on the fetch and repair lines).
fn fetched_bytes(log: &std::path::Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("slot fetched and checked") || l.contains("repair: surviving slots fetched"))
        .filter_map(|l| l.split("bytes=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_slots_are_marked_regenerated_once_and_refilled() -> anyhow::Result<()> {
    let net = MarketNet::start().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(590), scenario(&net)).await;
    net.report(outcome)
}

async fn scenario(net: &MarketNet) -> anyhow::Result<()> {
    let budget = U256::from(10u64).pow(U256::from(24u64));
    for wallet in 1..9 {
        net.fund(wallet, budget).await?;
    }
    let endpoint = net.anvil.endpoint();
    let mut client = TestNode::start(&net.node_dir("client"), &strs(&net.node_flags(1, &endpoint)?))?;
    let spr = client.info().await?["spr"].as_str().unwrap_or_default().to_owned();
    let start_host = |name: &str, wallet: usize, spr: &str| -> anyhow::Result<(TestNode, std::path::PathBuf)> {
        let mut flags = net.node_flags(wallet, &endpoint)?;
        flags.extend(["--bootstrap-node".into(), spr.to_owned()]);
        let log = net.node_dir(&format!("{name}.log"));
        Ok((TestNode::start_logged(&net.node_dir(name), &strs(&flags), Some(&log))?, log))
    };
    let mut hosts = Vec::new();
    for i in 0..4 {
        let (host, log) = start_host(&format!("host{i}"), 2 + i, &spr)?;
        offer(&host).await?;
        hosts.push((host, log));
    }
    let vlog = net.node_dir("validator.log");
    let bootstrap = ["--bootstrap-node".to_owned(), spr.clone()];
    let _validator = ValidatorProcess::start_with(net, 8, (1, 0), &net.node_dir("validator"), &vlog, &bootstrap)?;

    let data = test_bytes(5_000, 11);
    let sealed = client.http.post(client.url("/data?encrypt=true")).body(data.clone()).send().await?;
    anyhow::ensure!(sealed.status() == 200, "encrypted upload: {}", sealed.status());
    let sealed = json(sealed).await?;
    let cid = sealed["cid"].as_str().unwrap_or_default().to_owned();
    let key = sealed["key"].as_str().unwrap_or_default().to_owned();
    let body = serde_json::json!({
        "duration": 600, "pricePerBytePerSecond": "1", "proofProbability": "1", "collateralPerByte": "10",
        "expiry": 60, "nodes": 4, "tolerance": 2, "repairThreshold": 2,
    });
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 200, "request");
    let request_id = resp.text().await?;
    let path = format!("/storage/purchases/{request_id}");
    wait_for("the start", Duration::from_secs(180), || async {
        Ok(json(client.get(&path).await?).await?["state"] == "started")
    })
    .await
    .inspect_err(|_| eprintln!("host 0's log:\n{}", std::fs::read_to_string(&hosts[0].1).unwrap_or_default()))?;
    let protected =
        json(client.get(&path).await?).await?["request"]["content"]["cid"].as_str().unwrap_or_default().to_owned();

    // The client goes away; hosts 0 and 1 stop.
    client.process.kill();
    hosts[0].0.process.kill();
    hosts[1].0.process.kill();

    // Three missed proofs each lose both slots; repair opens for both at once.
    wait_for("repair to open", Duration::from_secs(180), || async {
        Ok(!count_events::<Marketplace::RepairOpened>(net).await?.is_empty())
    })
    .await?;
    let opened = count_events::<Marketplace::RepairOpened>(net).await?;
    let Some(MarketEvent::RepairOpened { slot_indices: lost, .. }) = MarketEvent::decode(&opened[0]) else {
        anyhow::bail!("not a RepairOpened log: {:?}", opened[0]);
    };
    anyhow::ensure!(lost.len() == 2, "repair opened for both lost slots: {lost:?}");

    // A spare repairs: nobody serves the lost slots, so it regenerates both from K others.
    // (spares join through a host that is still up)
    let live = hosts[2].0.info().await?["spr"].as_str().unwrap_or_default().to_owned();
    let (spare1, log1) = start_host("spare1", 6, &live)?;
    offer(&spare1).await?;
    wait_for("the first refill", Duration::from_secs(120), || async {
        Ok(!count_events::<Marketplace::SlotRepaired>(net).await?.is_empty())
    })
    .await
    .inspect_err(|_| eprintln!("spare 1's log:\n{}", std::fs::read_to_string(&log1).unwrap_or_default()))?;
    anyhow::ensure!(file_contains(&log1, "lost slots regenerated"), "spare 1 regenerated the lost slots");
    // A second spare takes the other lost slot, fetching it from the first.
    let (spare2, log2) = start_host("spare2", 7, &live)?;
    offer(&spare2).await?;
    wait_for("the second refill", Duration::from_secs(120), || async {
        Ok(count_events::<Marketplace::SlotRepaired>(net).await?.len() == 2)
    })
    .await
    .inspect_err(|_| eprintln!("spare 2's log:\n{}", std::fs::read_to_string(&log2).unwrap_or_default()))?;
    anyhow::ensure!(!file_contains(&log2, "lost slots regenerated"), "one decode served both lost slots");

    // Missed proofs settled and paid; the validator earned a reward for each of them, and
    // every accusation it made was settled (its bonds came back).
    // (a late settlement may land between reading the marks and the balance: read until the
    // marks are the same on both sides of the balance)
    let mut read = 0;
    let (marks, balance) = loop {
        let marks = count_events::<Marketplace::ProofMissed>(net).await?;
        let balance = net.balance(net.address(8)).await?;
        if count_events::<Marketplace::ProofMissed>(net).await?.len() == marks.len() || read == 5 {
            break (marks, balance);
        }
        read += 1;
    };
    anyhow::ensure!(marks.len() >= 6, "two hosts, three missed proofs each: {}", marks.len());
    let accused = count_events::<Marketplace::ProofAccused>(net).await?;
    anyhow::ensure!(accused.len() >= marks.len(), "{} accusations, {} missed proofs", accused.len(), marks.len());
    let slot_size = SHAPE.slot_cells() * SHAPE.cell_size as u64;
    let reward = U256::from(slot_size * 10) * U256::from(10u64) / U256::from(100u64) / U256::from(2u64);
    let earned = balance - budget;
    anyhow::ensure!(earned == reward * U256::from(marks.len()), "validator earned {earned}");

    // Bytes repair moved: K slots to regenerate, one lost slot handed to the second spare.
    let moved = fetched_bytes(&log1) + fetched_bytes(&log2);
    let bound = (2 + 2) * slot_size * 11 / 10;
    anyhow::ensure!(moved > 0 && moved <= bound, "repair moved {moved} bytes, bound {bound}");
    eprintln!("repair moved {moved} bytes; per-slot repair would have moved {}", 2 * 2 * slot_size);

    // The file, from a fresh node, decoded from the hosts' slots.
    let fresh = TestNode::start_bootstrapped(&net.node_dir("fresh"), &hosts[2].0, &[]).await?;
    let resp = fresh.http.get(fresh.url(&format!("/download/{protected}"))).header("x-vellum-key", &key).send().await?;
    anyhow::ensure!(resp.status() == 200, "download with the key: {}", resp.status());
    let body = resp.bytes().await?;
    anyhow::ensure!(body.as_ref() == data.as_slice(), "the file came back changed ({} bytes)", body.len());
    drop((spare1, spare2));
    Ok(())
}
