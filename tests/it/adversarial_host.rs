//! A host that damages what it is paid to keep is caught. Four hosts fill a request (K = 2,
//! M = 2) under a 100-sample proof shape; right after filling, host 3 flips one byte in 5 % of
//! its slot's cells (13 of 256, a hidden fault flag). Its proofs fail from then on, the validator
//! accuses its missing proofs and, the host having no proof to defend with, settles them as
//! missed proofs (marks), the honest hosts go on proving off the chain (the validator checks
//! their proofs and accuses none of them), and a fresh node still downloads the
//! file intact (decoded from the honest hosts' slots, the client being gone).
//!
//! Why 100 samples catch it: each sample picks a cell uniformly from the period's seed, so a
//! proof avoids all 13 damaged cells with probability (243/256)^100 ≈ 0.0054. A proof that
//! samples a damaged cell cannot be made at all: the circuit hashes each sampled cell and checks
//! its path to the slot root the host committed to when it filled the slot. So in each period the
//! host owes a proof it fails with probability ≥ 99.4 %, and the chance that it escapes the two
//! marks this test waits for within its time is below 10^-3 (escaping a given period is 0.0054;
//! the test allows several periods more than two).

use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use circuits::r1cs::ProofShape;
use contracts::{MarketEvent, Marketplace};
use vellum_testkit::{MarketNet, TestNode, ValidatorProcess, file_contains, json, strs, test_bytes, wait_for};

/// 100 samples over 256 cells of 64 bytes (16 KiB slots).
const SHAPE: ProofShape = ProofShape { samples: 100, slot_depth: 8, dataset_levels: 1, cell_size: 64 };

/// Seconds per period: four 100-sample proofs must fit on two cores.
const PERIOD: u64 = 20;

/// The marks (accusations settled as missed proofs) so far, by slot.
async fn marked_slots(net: &MarketNet) -> anyhow::Result<Vec<B256>> {
    let filter = Filter::new()
        .address(net.deployment.marketplace)
        .event_signature(Marketplace::ProofMissed::SIGNATURE_HASH)
        .from_block(0u64);
    let mut out = Vec::new();
    for log in net.deployer.get_logs(&filter).await? {
        let Some(MarketEvent::ProofMissed { slot_id, .. }) = MarketEvent::decode(&log) else {
            anyhow::bail!("not a ProofMissed log: {log:?}");
        };
        out.push(slot_id);
    }
    Ok(out)
}

/// Slots accused of a missing proof so far.
async fn accused_slots(net: &MarketNet) -> anyhow::Result<Vec<B256>> {
    let events = net.events().await?;
    Ok(events
        .into_iter()
        .filter_map(|(e, _)| match e {
            MarketEvent::ProofAccused { slot_id, .. } => Some(slot_id),
            _ => None,
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_corrupting_five_percent_of_cells_is_caught_and_marked() -> anyhow::Result<()> {
    let net = MarketNet::start_with(&SHAPE, PERIOD).await?;
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
    let mut hosts = Vec::new();
    for i in 0..4 {
        let mut flags = net.node_flags(2 + i, &endpoint)?;
        flags.extend(["--bootstrap-node".into(), spr.clone()]);
        if i == 3 {
            flags.extend(["--fault-corrupt-slot-cells".into(), "5".into()]);
        }
        let name = format!("host{i}");
        let log = net.node_dir(&format!("{name}.log"));
        let host = TestNode::start_logged(&net.node_dir(&name), &strs(&flags), Some(&log))?;
        let body = serde_json::json!({"totalSize": 1 << 20, "duration": 3600,
            "minPricePerBytePerSecond": "1", "totalCollateral": "1000000000"});
        let resp = host.http.post(format!("{}/sales/availability", host.process.api)).json(&body).send().await?;
        anyhow::ensure!(resp.status() == 201, "availability: {}", resp.status());
        hosts.push((host, log));
    }
    let bootstrap = ["--bootstrap-node".to_owned(), spr.clone()];
    let validator = ValidatorProcess::start_with(
        net,
        8,
        (1, 0),
        &net.node_dir("validator"),
        &net.node_dir("validator.log"),
        &bootstrap,
    )?;

    let data = test_bytes(20_000, 5);
    let cid = client.upload(data.clone()).await?;
    let body = serde_json::json!({
        "duration": 1200, "pricePerBytePerSecond": "1", "proofProbability": "1", "collateralPerByte": "10",
        "expiry": 200, "nodes": 4, "tolerance": 2,
    });
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 200, "request");
    let request_id = resp.text().await?;
    let path = format!("/storage/purchases/{request_id}");
    wait_for("the start", Duration::from_secs(240), || async {
        Ok(json(client.get(&path).await?).await?["state"] == "started")
    })
    .await?;
    let protected =
        json(client.get(&path).await?).await?["request"]["content"]["cid"].as_str().unwrap_or_default().to_owned();
    // The client goes away: the file must come back from the hosts alone.
    client.process.kill();

    let slot_of = |v: serde_json::Value| -> anyhow::Result<B256> {
        Ok(v.as_array().and_then(|a| a.first()).and_then(|s| s["id"].as_str()).unwrap_or_default().parse()?)
    };
    let bad_slot = slot_of(json(hosts[3].0.get("/sales/slots").await?).await?)?;
    let mut honest_slots = Vec::new();
    for (host, _) in &hosts[..3] {
        honest_slots.push(slot_of(json(host.get("/sales/slots").await?).await?)?);
    }
    // Host 3 damages its slot just after its fill lands, and its fill may be the one that
    // started the request (fair dispersal can make it the last host to get a slot).
    wait_for("host 3 to damage its slot", Duration::from_secs(30), || async {
        Ok(file_contains(&hosts[3].1, "fault injection: slot cells corrupted"))
    })
    .await?;

    // The damaged slot's missed proofs are marked, twice.
    wait_for("two marks of the damaged slot", Duration::from_secs(8 * PERIOD + 60), || async {
        Ok(marked_slots(net).await?.iter().filter(|s| **s == bad_slot).count() >= 2)
    })
    .await?;
    // The honest hosts' proofs went through off the chain meanwhile: checked by the validator,
    // none of their slots accused.
    let accused = accused_slots(net).await?;
    for slot in &honest_slots {
        anyhow::ensure!(!accused.contains(slot), "honest slot {slot} was accused");
    }
    let submitted: Vec<_> =
        net.events().await?.into_iter().filter(|(e, _)| matches!(e, MarketEvent::ProofSubmitted { .. })).collect();
    anyhow::ensure!(submitted.is_empty(), "{} proofs went on chain", submitted.len());
    let verified = validator.metric("vellum_validator_proofs_verified_total").await?.unwrap_or(0.0);
    anyhow::ensure!(verified >= 3.0, "the validator verified {verified} proofs off the chain");

    // The file, from a fresh node, decoded from the slots the hosts hold.
    let fresh = TestNode::start_bootstrapped(&net.node_dir("fresh"), &hosts[0].0, &[]).await?;
    let body = fresh.download(&format!("/data/{protected}/network/stream")).await?;
    anyhow::ensure!(body == data, "the file came back changed ({} bytes)", body.len());
    Ok(())
}
