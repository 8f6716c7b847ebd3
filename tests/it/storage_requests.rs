//! Storage requests end to end on anvil: a client and four hosts, six-second periods, a proof
//! required every period. The client asks by target (`durability`: lose the dataset with at
//! most 1 % probability a year) and the node picks K = 2, M = 2 for its 6,000 bytes; one host
//! offers its storage only after the request is out. The dataset is encrypted on the client
//! before it is encoded: no host file holds any 64-byte window of the plaintext, no node logs
//! the key, and the client reads the plaintext back with it. The request starts, every slot is filled and proven at least three times, the request
//! finishes, hosts are paid and the client refunded to the unit. Along the way one host is killed
//! and restarted (it resumes proving its slot without fetching it again, and misses no period in
//! which it was up), and another loses its chain endpoint for two periods (it keeps serving, logs
//! the outage, and proves again once the endpoint is back). Bad requests are refused with a
//! reason. The hosts prove on chain (`--proofs on-chain`), so the path operators may still
//! choose keeps a scenario of its own (proofs off the chain: `offchain_proofs.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use contracts::{MarketEvent, Marketplace};
use vellum_testkit::{
    MarketNet, PERIOD, Proxy, SHAPE, TestNode, anvil_address, file_contains, json, strs, test_bytes, wait_for,
};

const PRICE: u128 = 3;
const COLLATERAL_PER_BYTE: u128 = 2;
const DURATION: u64 = 96;

/// The scenario's plaintext repeats this line (41 bytes), so its 64-byte windows are few.
const PATTERN: &[u8] = b"attack at dawn; the password is hunter2. ";

/// Uploads `data` encrypted on the node; returns (CID, key).
async fn upload_encrypted(node: &TestNode, data: Vec<u8>) -> anyhow::Result<(String, String)> {
    let resp = node.http.post(node.url("/data?encrypt=true")).body(data).send().await?;
    let status = resp.status();
    let answer = json(resp).await?;
    anyhow::ensure!(status == 200, "encrypted upload: {status} {answer}");
    let field = |name: &str| answer[name].as_str().unwrap_or_default().to_owned();
    Ok((field("cid"), field("key")))
}

/// Files under `dir` holding any 64-byte window of `plain`.
fn plaintext_windows_under(dir: &std::path::Path, plain: &[u8]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let windows: std::collections::HashSet<&[u8]> = plain.windows(64).collect();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(64).any(|w| windows.contains(w))) {
                found.push(path);
            }
        }
    }
    Ok(found)
}

async fn chain_time(net: &MarketNet) -> anyhow::Result<u64> {
    let block = net.deployer.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await?;
    Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
}

async fn offer(host: &TestNode) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "totalSize": 1 << 20,
        "duration": 3600,
        "minPricePerBytePerSecond": "1",
        "totalCollateral": "1000000000",
    });
    let resp = host.http.post(format!("{}/sales/availability", host.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 201, "availability: {} {}", resp.status(), resp.text().await?);
    Ok(())
}

/// Periods in which each slot's proof was accepted, from the chain's logs.
async fn proofs_by_slot(net: &MarketNet) -> anyhow::Result<BTreeMap<B256, BTreeSet<u64>>> {
    let filter = Filter::new()
        .address(net.deployment.marketplace)
        .event_signature(Marketplace::ProofSubmitted::SIGNATURE_HASH)
        .from_block(0u64);
    let mut out: BTreeMap<B256, BTreeSet<u64>> = BTreeMap::new();
    for log in net.deployer.get_logs(&filter).await? {
        let Some(MarketEvent::ProofSubmitted { slot_id, period }) = MarketEvent::decode(&log) else {
            anyhow::bail!("not a ProofSubmitted log: {log:?}");
        };
        out.entry(slot_id).or_default().insert(period);
    }
    Ok(out)
}

/// The slot datasets a node lists under `/data`.
fn slot_copies(list: &serde_json::Value) -> usize {
    list["content"].as_array().map_or(0, |items| {
        items.iter().filter(|d| d["manifest"]["filename"].as_str().is_some_and(|f| f.starts_with("slot-"))).count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hosts_fill_prove_survive_restart_and_outage_and_are_paid() -> anyhow::Result<()> {
    let net = MarketNet::start().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(590), scenario(&net)).await;
    net.report(outcome)
}

async fn scenario(net: &MarketNet) -> anyhow::Result<()> {
    let slot_size = SHAPE.slot_cells() * SHAPE.cell_size as u64;
    let payment = U256::from(4 * u128::from(slot_size) * PRICE * u128::from(DURATION));
    let collateral = U256::from(u128::from(slot_size) * COLLATERAL_PER_BYTE);
    let client_budget = payment * U256::from(2);
    net.fund(1, client_budget).await?;
    for h in 2..6 {
        net.fund(h, collateral * U256::from(3)).await?;
    }

    // The client (over a websocket); hosts bootstrap from it. Host 1 talks to the chain through a
    // proxy.
    let ws = net.anvil.endpoint().replace("http://", "ws://");
    let client_log = net.node_dir("client.log");
    let client = TestNode::start_logged(&net.node_dir("client"), &strs(&net.node_flags(1, &ws)?), Some(&client_log))?;
    let proxy = Proxy::start(anvil_address(&net.anvil)).await?;
    let mut hosts = Vec::new();
    let mut host_flags = Vec::new();
    let logs: Vec<_> = (0..4).map(|i| net.node_dir(&format!("host{i}.log"))).collect();
    for (i, log) in logs.iter().enumerate() {
        let endpoint = if i == 1 { proxy.endpoint.clone() } else { net.anvil.endpoint() };
        let spr = client.info().await?["spr"].as_str().unwrap_or_default().to_owned();
        let mut flags = net.node_flags(2 + i, &endpoint)?;
        flags.extend(["--bootstrap-node".into(), spr, "--proofs".into(), "on-chain".into()]);
        if i == 1 {
            proxy.cut(); // host 1 starts while its chain endpoint is away
        }
        let host = TestNode::start_logged(&net.node_dir(&format!("host{i}")), &strs(&flags), Some(log))?;
        if i != 3 {
            offer(&host).await?; // host 3 offers its storage only after the request is out
        }
        if i == 1 {
            anyhow::ensure!(file_contains(log, "chain endpoint away"), "host 1 says its endpoint is away");
            proxy.restore();
            wait_for("host 1 to join the chain", Duration::from_secs(30), || async {
                Ok(file_contains(log, "chain endpoint answered"))
            })
            .await?;
        }
        host_flags.push(flags);
        hosts.push(host);
    }

    // The client stores 6,000 bytes of a known pattern, encrypted (6,016 bytes of ciphertext),
    // and asks for a loss probability of at most 1 % a year: two data slots of 4 KiB (padded)
    // are needed; one parity slot loses 1.6 % a year by the model (hosts failing once a year, a
    // day to repair), two meet the target.
    let data: Vec<u8> = PATTERN.iter().copied().cycle().take(6_000).collect();
    let (cid, key) = upload_encrypted(&client, data.clone()).await?;
    let body = serde_json::json!({
        "duration": DURATION, "pricePerBytePerSecond": PRICE.to_string(), "proofProbability": "1",
        "collateralPerByte": COLLATERAL_PER_BYTE.to_string(), "expiry": 90, "durability": 0.01,
    });
    let asked = Instant::now();
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).json(&body).send().await?;
    let status = resp.status();
    let answer = resp.text().await?;
    anyhow::ensure!(status == 200, "storage request: {status} {answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    let chosen = answer["durability"].clone();
    anyhow::ensure!(chosen["nodes"] == 4 && chosen["tolerance"] == 2, "the code chosen: {answer}");
    let threshold = chosen["repairThreshold"].as_u64().unwrap_or_default();
    anyhow::ensure!((1..=2).contains(&threshold), "the repair threshold chosen: {answer}");
    let predicted = chosen["predictedLoss"].as_f64().unwrap_or(1.0);
    anyhow::ensure!(predicted > 0.0 && predicted <= 0.01, "the loss predicted: {answer}");
    anyhow::ensure!(chosen["proofIntervalHours"].as_f64() == Some(PERIOD as f64 / 3600.0), "{answer}");
    let request_id = answer["requestId"].as_str().unwrap_or_default().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    offer(&hosts[3]).await?;
    let purchase_path = format!("/storage/purchases/{request_id}");
    let state = |p: serde_json::Value| p["state"].as_str().unwrap_or_default().to_owned();
    wait_for("the request to start", Duration::from_secs(180), || async {
        Ok(state(json(client.get(&purchase_path).await?).await?) == "started")
    })
    .await?;
    let started_after = asked.elapsed();
    let purchase = json(client.get(&purchase_path).await?).await?;
    anyhow::ensure!(purchase["durability"] == chosen, "the purchase keeps the choice: {purchase}");
    let ask = &purchase["request"]["ask"];
    anyhow::ensure!(
        ask["slots"] == 4 && ask["maxSlotLoss"] == 2 && ask["repairThreshold"] == threshold,
        "the request asks for the chosen code: {ask}"
    );
    anyhow::ensure!(slot_copies(&json(client.get("/data").await?).await?) == 4, "the client publishes its 4 slots");
    eprintln!("request to started: {started_after:?}");
    let ids: Vec<B256> = json(client.get("/storage/purchases").await?)
        .await?
        .as_array()
        .map_or(vec![], |a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect());
    anyhow::ensure!(ids.len() == 1, "one purchase listed");
    let request_id_word: B256 = request_id.parse()?;
    let market = net.market();
    let slot_ids: Vec<B256> = futures::future::try_join_all((0..4u64).map(|i| {
        let market = market.clone();
        async move { market.slotId(request_id_word, i).call().await }
    }))
    .await?;

    // Which host holds which slot.
    let mut holder = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let slots = json(host.get("/sales/slots").await?).await?;
        let list = slots.as_array().cloned().unwrap_or_default();
        anyhow::ensure!(list.len() == 1, "host {i} holds {} slots", list.len());
        let id: B256 = list[0]["id"].as_str().unwrap_or_default().parse()?;
        holder.insert(i, id);
    }
    anyhow::ensure!(holder.values().collect::<BTreeSet<_>>().len() == 4, "each host holds its own slot");
    // Hosts hold ciphertext only: no file under any host's data dir has a 64-byte window of the
    // plaintext. (The scan finds one in a plain copy, so it can fail.)
    for i in 0..4 {
        let found = plaintext_windows_under(&net.node_dir(&format!("host{i}")), &data)?;
        anyhow::ensure!(found.is_empty(), "host {i} holds plaintext in {found:?}");
    }
    let control = net.node_dir("control");
    std::fs::create_dir_all(&control)?;
    std::fs::write(control.join("plain.bin"), &data[100..300])?;
    anyhow::ensure!(!plaintext_windows_under(&control, &data)?.is_empty(), "the scan sees plaintext");

    // Host 0 is killed for a period and restarted with the same data dir.
    wait_for("a first periodic proof", Duration::from_secs(90), || async {
        Ok(proofs_by_slot(net).await?.values().any(|p| !p.is_empty()))
    })
    .await?;
    hosts[0].process.kill();
    tokio::time::sleep(Duration::from_secs(PERIOD)).await;
    let restarted = TestNode::start_logged(&net.node_dir("host0"), &strs(&host_flags[0]), Some(&logs[0]))?;
    let back_period = chain_time(net).await? / PERIOD;
    hosts[0] = restarted;

    // Host 1's endpoint goes away for two periods; the node keeps serving its data.
    proxy.cut();
    let cut_period = chain_time(net).await? / PERIOD;
    tokio::time::sleep(Duration::from_secs(2 * PERIOD)).await;
    let info = hosts[1].info().await?;
    anyhow::ensure!(info["id"].is_string(), "host 1 serves its API during the outage");
    wait_for("host 1 to log the outage", Duration::from_secs(30), || async {
        Ok(file_contains(&logs[1], "chain endpoint unreachable"))
    })
    .await?;
    proxy.restore();
    let restored_period = chain_time(net).await? / PERIOD;

    // The request runs to its end; the client withdraws.
    wait_for("the request to finish and the client to withdraw", Duration::from_secs(DURATION + 180), || async {
        let p = json(client.get(&purchase_path).await?).await?;
        Ok(state(p.clone()) == "finished" && p["refunded"].is_string())
    })
    .await?;
    // The client's slot copies go once its funds are withdrawn; its upload stays.
    wait_for("the client to delete its slot copies", Duration::from_secs(30), || async {
        Ok(slot_copies(&json(client.get("/data").await?).await?) == 0)
    })
    .await?;
    let list = json(client.get("/data").await?).await?;
    anyhow::ensure!(list.to_string().contains(&cid), "the client's upload stays");
    let plain = client.http.get(client.url(&format!("/data/{cid}"))).header("x-vellum-key", &key).send().await?;
    anyhow::ensure!(plain.status() == 200, "the client reads its data back: {}", plain.status());
    anyhow::ensure!(plain.bytes().await?.as_ref() == data.as_slice(), "the plaintext, with the key");
    for (i, host) in hosts.iter().enumerate() {
        let slot = format!("{:#x}", holder[&i]);
        wait_for("the host's payout", Duration::from_secs(90), || async {
            let agent = json(host.get(&format!("/sales/slots/{slot}")).await?).await?;
            Ok(agent["state"] == "SaleFinished")
        })
        .await?;
    }
    anyhow::ensure!(file_contains(&logs[1], "chain endpoint reachable again"), "host 1 logs the endpoint's return");
    // (its log holds both runs; the second starts at the last "persistence mode" line)
    // The wallets' keys never reach a log.
    for (i, log) in logs.iter().enumerate() {
        let wallet = net.anvil.keys()[2 + i].trim_start_matches("0x").to_owned();
        anyhow::ensure!(!file_contains(log, &wallet), "host {i}'s log holds its private key");
        anyhow::ensure!(!file_contains(log, &key), "host {i}'s log holds the dataset's key");
    }
    anyhow::ensure!(file_contains(&client_log, "upload stored"), "the client's log is read");
    anyhow::ensure!(!file_contains(&client_log, &key), "the client's log holds the dataset's key");
    // Records, slots, keys and the database are the operator's alone.
    for i in 0..4 {
        vellum_testkit::check_private(&net.node_dir(&format!("host{i}")))?;
    }
    vellum_testkit::check_private(&net.node_dir("client"))?;
    let log0 = std::fs::read_to_string(&logs[0])?;
    let second_run = log0.rfind("persistence mode").map_or("", |at| &log0[at..]);
    anyhow::ensure!(log0.contains("slot fetched and checked"), "host 0 fetched its slot before the restart");
    anyhow::ensure!(!second_run.contains("slot fetched and checked"), "the restarted host fetched its slot again");
    anyhow::ensure!(second_run.contains("proof accepted"), "the restarted host proved again");

    // Proofs: every slot at least three; the restarted host proved every period after its
    // restart, the cut-off host every period after the endpoint came back, up to and including
    // the last period, which overlaps the request's end.
    let (_, ends_at, _) = market.requestTimes(request_id_word).call().await?.into();
    let last_period = (ends_at - 1) / PERIOD;
    let proofs = proofs_by_slot(net).await?;
    for id in &slot_ids {
        let n = proofs.get(id).map_or(0, BTreeSet::len);
        anyhow::ensure!(n >= 3, "slot {id} has {n} accepted proofs");
    }
    let after = |slot: &B256, from: u64| -> Vec<u64> {
        (from..=last_period).filter(|p| !proofs.get(slot).is_some_and(|s| s.contains(p))).collect()
    };
    let missing0 = after(&holder[&0], back_period + 1);
    anyhow::ensure!(missing0.is_empty(), "the restarted host missed periods {missing0:?}");
    let missing1 = after(&holder[&1], restored_period + 1);
    anyhow::ensure!(missing1.is_empty(), "host 1 missed periods {missing1:?} after the endpoint returned");
    anyhow::ensure!(
        (cut_period + 1..restored_period).any(|p| !proofs[&holder[&1]].contains(&p)),
        "host 1 could not have proven while cut off"
    );

    // Money, to the unit: each host earned pps·(end − fill), the client paid that sum.
    let pps = U256::from(u128::from(slot_size) * PRICE);
    let mut earned_total = U256::ZERO;
    for (i, slot) in &holder {
        let filled_at = market.slotFilledAt(*slot).call().await?;
        let earned = pps * (U256::from(ends_at) - filled_at);
        earned_total += earned;
        let balance = net.balance(net.address(2 + i)).await?;
        anyhow::ensure!(balance == collateral * U256::from(3) + earned, "host {i}: {balance}");
    }
    let client_balance = net.balance(net.address(1)).await?;
    anyhow::ensure!(client_balance == client_budget - earned_total, "client: {client_balance}");
    anyhow::ensure!(net.balance(net.deployment.marketplace).await? == U256::ZERO, "the marketplace keeps nothing");
    Ok(())
}

/// Requests that cannot work are refused with the reason, before anything is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_storage_requests_are_refused_with_a_reason() -> anyhow::Result<()> {
    let net = MarketNet::start().await?;
    net.fund(1, U256::from(10u64).pow(U256::from(30u64))).await?;
    let client = TestNode::start(&net.node_dir("client"), &strs(&net.node_flags(1, &net.anvil.endpoint())?))?;
    let cid = client.upload(test_bytes(6_000, 1)).await?;
    let tiny = client.upload(test_bytes(100, 2)).await?;
    let huge = client.upload(test_bytes(3 * 4096 + 1, 3)).await?;
    let good = serde_json::json!({
        "duration": 600, "pricePerBytePerSecond": "1", "proofProbability": "1",
        "collateralPerByte": "1", "expiry": 60, "nodes": 4, "tolerance": 2,
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let by_target = |target: serde_json::Value| {
        let mut b = good.clone();
        if let Some(o) = b.as_object_mut() {
            o.remove("nodes");
            o.remove("tolerance");
            o.insert("durability".into(), target);
        }
        b
    };
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        ("nodes ≤ tolerance", &cid, with("nodes", 2.into()), "greater than tolerance"),
        ("no tolerance", &cid, with("tolerance", 0.into()), "tolerance must be at least 1"),
        ("K + M beyond the proof's slots", &cid, with("nodes", 9.into()), "beyond"),
        ("dataset too small", &tiny, good.clone(), "too small"),
        ("dataset too large", &huge, with("nodes", 3.into()), "too large"),
        ("zero price", &cid, with("pricePerBytePerSecond", "0".into()), "pricePerBytePerSecond"),
        ("expiry after duration", &cid, with("expiry", 600.into()), "less than duration"),
        ("repair threshold above tolerance", &cid, with("repairThreshold", 3.into()), "repairThreshold"),
        ("proof probability zero", &cid, with("proofProbability", "0".into()), "proofProbability"),
        ("a target beside an explicit code", &cid, with("durability", 0.01.into()), "not both"),
        ("a target of 1", &cid, by_target(1.0.into()), "between 0 and 1"),
        ("a target of 0", &cid, by_target(0.into()), "between 0 and 1"),
        // 6,000 bytes take two data slots; the proof addresses eight: 2 + 6 is the best there is.
        ("a target no code meets", &cid, by_target(1e-30.into()), "the best is K = 2, M = 6"),
    ];
    for (what, target, body, needle) in cases {
        let resp =
            client.http.post(format!("{}/storage/request/{target}", client.process.api)).json(&body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status == 422, "{what}: {status} {text}");
        anyhow::ensure!(text.contains(needle), "{what}: {text}");
    }
    // malformed JSON and unknown CIDs
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).body("{").send().await?;
    anyhow::ensure!(resp.status() == 400, "malformed JSON: {}", resp.status());
    let resp = client.http.post(format!("{}/storage/request/zzz", client.process.api)).json(&good).send().await?;
    anyhow::ensure!(resp.status() == 422 || resp.status() == 400, "bad CID: {}", resp.status());
    let resp = client.get("/storage/purchases/0x1234").await?;
    anyhow::ensure!(resp.status() == 400, "bad purchase id: {}", resp.status());
    anyhow::ensure!(
        json(client.get("/storage/purchases").await?).await?.as_array().is_some_and(Vec::is_empty),
        "nothing was bought"
    );

    // Availabilities: invalid ones refused, changes applied, unknown ids answered.
    let api = &client.process.api;
    let post = |body: serde_json::Value| client.http.post(format!("{api}/sales/availability")).json(&body).send();
    let resp = post(
        serde_json::json!({"totalSize": 0, "duration": 60, "minPricePerBytePerSecond": "1", "totalCollateral": "1"}),
    )
    .await?;
    anyhow::ensure!(resp.status() == 422, "zero size: {}", resp.status());
    let resp = post(serde_json::json!({"totalSize": 4096, "duration": 60, "minPricePerBytePerSecond": "-1", "totalCollateral": "1"})).await?;
    anyhow::ensure!(resp.status() == 422, "negative price: {}", resp.status());
    let resp = post(serde_json::json!({"totalSize": 1u64 << 50, "duration": 60, "minPricePerBytePerSecond": "1", "totalCollateral": "1"})).await?;
    anyhow::ensure!(resp.status() == 422, "beyond the quota: {}", resp.status());
    let created = json(post(serde_json::json!({"totalSize": 8192, "duration": 60, "minPricePerBytePerSecond": "1", "totalCollateral": "10"})).await?).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(created["freeSize"] == 8192 && created["enabled"] == true, "{created}");
    let patch = |id: String, body: serde_json::Value| {
        client.http.patch(format!("{api}/sales/availability/{id}")).json(&body).send()
    };
    let resp = patch(id.clone(), serde_json::json!({"duration": 120, "enabled": false})).await?;
    anyhow::ensure!(resp.status() == 204, "patch: {}", resp.status());
    let listed = json(client.get("/sales/availability").await?).await?;
    anyhow::ensure!(listed[0]["duration"] == 120 && listed[0]["enabled"] == false, "{listed}");
    let resp = patch(format!("0x{}", "ab".repeat(32)), serde_json::json!({"duration": 5})).await?;
    anyhow::ensure!(resp.status() == 404, "unknown availability: {}", resp.status());
    let resp = patch(id, serde_json::json!({"colour": "blue"})).await?;
    anyhow::ensure!(resp.status() == 400, "unknown field: {}", resp.status());
    let resp = client.get("/sales/slots/nope").await?;
    anyhow::ensure!(resp.status() == 400, "bad slot id: {}", resp.status());
    let resp = client.get(&format!("/sales/slots/0x{}", "cd".repeat(32))).await?;
    anyhow::ensure!(resp.status() == 404, "unknown slot: {}", resp.status());

    // Without persistence mode the marketplace endpoints say so.
    let plain = TestNode::start(&net.node_dir("plain"), &[])?;
    for path in ["/storage/purchases", "/sales/availability", "/sales/slots"] {
        let resp = plain.get(path).await?;
        anyhow::ensure!(resp.status() == 503, "{path} without persistence: {}", resp.status());
    }
    Ok(())
}

/// The figures for the note, not a check of speed: a 64 MiB dataset (K = 2, M = 2) with
/// the 100-sample circuit over 32 MiB slots of 2 KiB cells, 30-second periods. Prints the time
/// from the request to its start and each host's proof times.
/// `cargo nextest run -p vellum-tests --run-ignored only measure_64_mib --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement of several minutes; run it by name"]
async fn measure_64_mib_request_to_started_and_proof_times() -> anyhow::Result<()> {
    let shape = circuits::r1cs::ProofShape { samples: 100, slot_depth: 14, dataset_levels: 1, cell_size: 2048 };
    let setup = Instant::now();
    let net = MarketNet::start_with(&shape, 30).await?;
    eprintln!("setup and deployment: {:?}", setup.elapsed());
    net.fund(1, U256::from(10u64).pow(U256::from(30u64))).await?;
    let client = TestNode::start(&net.node_dir("client"), &strs(&net.node_flags(1, &net.anvil.endpoint())?))?;
    let mut hosts = Vec::new();
    let logs: Vec<_> = (0..4).map(|i| net.node_dir(&format!("host{i}.log"))).collect();
    for (i, log) in logs.iter().enumerate() {
        net.fund(2 + i, U256::from(10u64).pow(U256::from(30u64))).await?;
        let spr = client.info().await?["spr"].as_str().unwrap_or_default().to_owned();
        let mut flags = net.node_flags(2 + i, &net.anvil.endpoint())?;
        flags.extend(["--bootstrap-node".into(), spr, "--log-level".into(), "info".into()]);
        flags.extend(["--proofs".into(), "on-chain".into()]);
        let host = TestNode::start_logged(&net.node_dir(&format!("host{i}")), &strs(&flags), Some(log))?;
        let body = serde_json::json!({"totalSize": 1u64 << 30, "duration": 3600,
            "minPricePerBytePerSecond": "1", "totalCollateral": "1000000000000000000"});
        let resp = host.http.post(format!("{}/sales/availability", host.process.api)).json(&body).send().await?;
        anyhow::ensure!(resp.status() == 201, "availability");
        hosts.push(host);
    }
    let cid = client.upload(test_bytes(64 << 20, 7)).await?;
    let body = serde_json::json!({
        "duration": 900, "pricePerBytePerSecond": "1", "proofProbability": "1",
        "collateralPerByte": "1", "expiry": 600, "nodes": 4, "tolerance": 2,
    });
    let asked = Instant::now();
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 200, "request: {}", resp.text().await?);
    let request_id = resp.text().await?;
    let submitted = asked.elapsed();
    let path = format!("/storage/purchases/{request_id}");
    wait_for("the start", Duration::from_secs(600), || async {
        Ok(json(client.get(&path).await?).await?["state"] == "started")
    })
    .await?;
    let started = asked.elapsed();
    wait_for("two periodic proofs per slot", Duration::from_secs(300), || async {
        Ok(proofs_by_slot(&net).await?.values().filter(|p| p.len() >= 2).count() == 4)
    })
    .await?;
    eprintln!("request answered (protect, publish, pay, submit): {submitted:?}");
    eprintln!("request to started: {started:?}");
    for (i, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log)?;
        let ms: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("proof made"))
            .filter_map(|l| l.split("ms=").nth(1)?.split_whitespace().next())
            .collect();
        eprintln!("host {i}: proof times (ms, fill first): {}", ms.join(", "));
    }
    Ok(())
}
