//! Proofs off the chain end to end on anvil, with every hostile party the design must survive at
//! once. Four hosts fill a request (K = 2, M = 2, a proof every period): two honest, one that
//! withholds its proofs off the chain (publishes none and answers no request for one, but
//! defends on chain), one whose proofs are all wrong. A fifth node floods the proof topic with
//! junk. Validator A is honest; validator B accuses every required proof, proven or not.
//!
//! What must hold, read from the chain's logs and balances and the validator's metrics:
//! - no proof is ever submitted on chain, and validator A accuses no honest slot: their proofs
//!   reach it by broadcast through the junk and verify (nothing from the flood is checked
//!   beyond a bounded number of pairings);
//! - the withholding host is asked directly, then accused, and defends: the accusation is
//!   dismissed and, in the block of each defence, its balance moves by exactly the bond's defence
//!   share less the defence's fee (it pays its share of the defence);
//! - every false accusation of B's against an honest slot is dismissed, and B gets back exactly
//!   the bond less the host's share: it loses its share;
//! - the wrong-proof host's accusations are settled as missed proofs (its defence is refused);
//! - A restarted in the middle of a period accuses the withholding host in every period after
//!   the restart, none of them twice, and refuses no accusation of its own.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockNumberOrTag;
use alloy::network::TransactionResponse as _;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Log;
use contracts::MarketEvent;
use vellum_testkit::{MarketNet, SHAPE, TestNode, ValidatorProcess, json, strs, test_bytes, wait_for};

/// Seconds per period: four hosts, two validators and a flood on two cores.
const PERIOD: u64 = 10;

/// Who accused each (slot, period).
fn accusers(events: &[(MarketEvent, Log)]) -> BTreeMap<(B256, u64), Address> {
    events
        .iter()
        .filter_map(|(e, _)| match e {
            MarketEvent::ProofAccused { slot_id, period, accuser, .. } => Some(((*slot_id, *period), *accuser)),
            _ => None,
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks that `who`'s ether moved in block `n` by exactly `income` less what its own
/// transactions in that block spent (value and fee).
async fn balance_moved_by(net: &MarketNet, who: Address, n: u64, income: U256) -> anyhow::Result<()> {
    let p = &net.deployer;
    let block = p
        .get_block_by_number(BlockNumberOrTag::Number(n))
        .full()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no block {n}"))?;
    let mut spent = U256::ZERO;
    for tx in block.transactions.txns().filter(|t| t.from() == who) {
        let receipt = p.get_transaction_receipt(tx.tx_hash()).await?.ok_or_else(|| anyhow::anyhow!("no receipt"))?;
        let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        spent += fee + alloy::consensus::Transaction::value(tx);
    }
    let before = p.get_balance(who).block_id(n.saturating_sub(1).into()).await?;
    let after = p.get_balance(who).block_id(n.into()).await?;
    anyhow::ensure!(
        after + spent == before + income,
        "{who} in block {n}: {before} → {after}, spent {spent}, income {income}"
    );
    Ok(())
}

async fn offer(node: &TestNode) -> anyhow::Result<()> {
    let body = serde_json::json!({"totalSize": 1 << 20, "duration": 3600,
        "minPricePerBytePerSecond": "1", "totalCollateral": "1000000000"});
    let resp = node.http.post(format!("{}/sales/availability", node.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 201, "availability: {}", resp.status());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proofs_off_the_chain_survive_withholding_wrong_proofs_false_accusers_floods_and_restarts() -> anyhow::Result<()>
{
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
    let client = TestNode::start(&net.node_dir("client"), &strs(&net.node_flags(1, &endpoint)?))?;
    let spr = client.info().await?["spr"].as_str().unwrap_or_default().to_owned();
    let faults: [&[&str]; 4] = [&[], &["--fault-withhold-proofs"], &["--fault-wrong-proofs"], &[]];
    let mut hosts = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        let mut flags = net.node_flags(2 + i, &endpoint)?;
        flags.extend(["--bootstrap-node".into(), spr.clone()]);
        flags.extend(fault.iter().map(|f| (*f).to_owned()));
        let name = format!("host{i}");
        let host =
            TestNode::start_logged(&net.node_dir(&name), &strs(&flags), Some(&net.node_dir(&format!("{name}.log"))))?;
        offer(&host).await?;
        hosts.push(host);
    }
    let mut flags = net.node_flags(6, &endpoint)?;
    flags.extend(["--bootstrap-node".into(), spr.clone(), "--fault-flood-proofs".into(), "50".into()]);
    let _flooder = TestNode::start_logged(&net.node_dir("flooder"), &strs(&flags), Some(&net.node_dir("flooder.log")))?;
    let bootstrap = ["--bootstrap-node".to_owned(), spr.clone()];
    let (a_dir, a_log) = (net.node_dir("validator-a"), net.node_dir("validator-a.log"));
    let mut a = ValidatorProcess::start_with(net, 8, (1, 0), &a_dir, &a_log, &bootstrap)?;
    let mut hostile = bootstrap.to_vec();
    hostile.push("--fault-accuse-proven".into());
    let mut b = ValidatorProcess::start_with(
        net,
        7,
        (1, 0),
        &net.node_dir("validator-b"),
        &net.node_dir("validator-b.log"),
        &hostile,
    )?;
    let b_address: Address = b.address.parse()?;

    let data = test_bytes(5_000, 21);
    let cid = client.upload(data).await?;
    let body = serde_json::json!({
        "duration": 900, "pricePerBytePerSecond": "1", "proofProbability": "1", "collateralPerByte": "10",
        "expiry": 200, "nodes": 4, "tolerance": 2,
    });
    let resp = client.http.post(format!("{}/storage/request/{cid}", client.process.api)).json(&body).send().await?;
    anyhow::ensure!(resp.status() == 200, "request: {}", resp.status());
    let request_id = resp.text().await?;
    let path = format!("/storage/purchases/{request_id}");
    wait_for("the start", Duration::from_secs(200), || async {
        Ok(json(client.get(&path).await?).await?["state"] == "started")
    })
    .await?;
    let mut slots = Vec::new();
    for host in &hosts {
        let v = json(host.get("/sales/slots").await?).await?;
        let id =
            v.as_array().and_then(|a| a.first()).and_then(|s| s["id"].as_str()).unwrap_or_default().parse::<B256>()?;
        slots.push(id);
    }
    let (honest, withheld, wrong) = ([slots[0], slots[3]], slots[1], slots[2]);

    // B's false accusations dismissed, the withholding host defended, the wrong proofs settled.
    wait_for(
        "a dismissed false accusation, a defence and a missed wrong proof",
        Duration::from_secs(8 * PERIOD),
        || async {
            let ev = net.events().await?;
            let who = accusers(&ev);
            let dismissed = |slot: B256, by: Option<Address>| {
                ev.iter().any(|(e, _)| {
                    matches!(e, MarketEvent::AccusationDismissed { slot_id, period }
                if *slot_id == slot && by.is_none_or(|b| who.get(&(*slot_id, *period)) == Some(&b)))
                })
            };
            let missed =
                ev.iter().any(|(e, _)| matches!(e, MarketEvent::ProofMissed { slot_id, .. } if *slot_id == wrong));
            Ok(honest.iter().any(|s| dismissed(*s, Some(b_address))) && dismissed(withheld, None) && missed)
        },
    )
    .await?;
    b.kill();
    // The flood reached A (and was dropped there unchecked: its slots are nobody's).
    let received = a.metric("vellum_validator_proofs_received_total").await?.unwrap_or(0.0);
    anyhow::ensure!(received >= 20.0, "the flood did not reach A: {received} proofs received");

    // A restarts in the middle of a period.
    while now() % PERIOD != PERIOD / 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.kill();
    let restarted_in = now() / PERIOD;
    let log_before = std::fs::read_to_string(&a_log).unwrap_or_default().len();
    a = ValidatorProcess::start_with(net, 8, (1, 0), &a_dir, &a_log, &bootstrap)?;
    // Two full periods after the restart, and their accusation windows.
    while now() < (restarted_in + 3) * PERIOD + PERIOD / 2 + 2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ev = net.events().await?;
    let who = accusers(&ev);
    let params = net.market().config().call().await?;
    let bond = U256::from(params.accusationBond);
    let share = bond * U256::from(params.defenceSharePercentage) / U256::from(100u8);
    // No proof went on chain; A accused no honest slot.
    anyhow::ensure!(!ev.iter().any(|(e, _)| matches!(e, MarketEvent::ProofSubmitted { .. })), "a proof went on chain");
    let a_address: Address = a.address.parse()?;
    for ((slot, period), by) in &who {
        anyhow::ensure!(
            !(honest.contains(slot) && *by == a_address),
            "A accused honest slot {slot} in period {period}"
        );
    }
    for (e, _) in &ev {
        if let MarketEvent::ProofMissed { slot_id, .. } = e {
            anyhow::ensure!(!honest.contains(slot_id) && *slot_id != withheld, "slot {slot_id} was marked missed");
        }
    }
    // The withholding host was accused after every period since the restart, once each.
    for q in restarted_in..restarted_in + 2 {
        anyhow::ensure!(who.get(&(withheld, q)) == Some(&a_address), "withheld period {q} not accused by A: {who:?}");
    }
    let after_restart = std::fs::read_to_string(&a_log).unwrap_or_default();
    anyhow::ensure!(
        !after_restart[log_before.min(after_restart.len())..].contains("missing proof not accused"),
        "the restarted validator had an accusation refused"
    );
    // A checked proofs through the flood, asked the withholding host, refused the wrong ones.
    let metric = |name: &'static str| {
        let a = &a;
        async move { Ok::<f64, anyhow::Error>(a.metric(name).await?.unwrap_or(0.0)) }
    };
    anyhow::ensure!(metric("vellum_validator_proofs_verified_total").await? >= 2.0, "honest proofs not verified");
    anyhow::ensure!(metric("vellum_validator_proofs_asked_total").await? >= 1.0, "nobody was asked");

    // The bond's split, to the wei: the defending host gains its share less its fee; B gets back
    // the bond less that share.
    let host_of = |slot: B256| net.address(2 + slots.iter().position(|s| *s == slot).unwrap_or(0));
    let withholder = host_of(withheld);
    let blocks: std::collections::BTreeSet<u64> = ev
        .iter()
        .filter(|(e, _)| matches!(e, MarketEvent::AccusationDismissed { .. }))
        .filter_map(|(_, l)| l.block_number)
        .collect();
    let (mut host_checked, mut accuser_checked) = (false, false);
    for n in blocks {
        let here: Vec<&MarketEvent> = ev.iter().filter(|(_, l)| l.block_number == Some(n)).map(|(e, _)| e).collect();
        let (mut defended, mut b_dismissed, mut b_settled) = (0u64, 0u64, 0u64);
        for e in &here {
            match e {
                MarketEvent::AccusationDismissed { slot_id, period } => {
                    if host_of(*slot_id) == withholder && slots.contains(slot_id) {
                        defended += 1;
                    }
                    if who.get(&(*slot_id, *period)) == Some(&b_address) {
                        b_dismissed += 1;
                    }
                }
                MarketEvent::ProofMissed { validator, .. } if *validator == b_address => b_settled += 1,
                _ => {}
            }
        }
        if defended > 0 {
            balance_moved_by(net, withholder, n, share * U256::from(defended)).await?;
            host_checked = true;
        }
        if b_dismissed > 0 {
            let income = (bond - share) * U256::from(b_dismissed) + bond * U256::from(b_settled);
            balance_moved_by(net, b_address, n, income).await?;
            accuser_checked = true;
        }
    }
    anyhow::ensure!(host_checked && accuser_checked, "no dismissal to check the bond's split with");
    Ok(())
}
