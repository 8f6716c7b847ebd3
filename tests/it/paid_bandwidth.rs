//! Paid bandwidth on a real chain (anvil with the channels contract) and real nodes: a
//! downloader pays two providers through channels as blocks arrive; each provider redeems
//! exactly its bytes beyond the allowance times its price; the downloader closes its channels
//! and takes back the rest. Downloaders that pay wrongly (no vouchers, forged, over the
//! deposit, replayed) get no more than the allowance and the credit (and what a replayed
//! voucher covered), and a provider that takes a voucher and stops serving keeps no more than
//! the prepayment.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use serde_json::Value;
use vellum_testkit::chain::ChannelsNet;
use vellum_testkit::{TestNode, test_bytes};

const MIB: u64 = 1 << 20;
/// Seconds a provider has to redeem once a payer asks to close (the redeemer looks every second
/// and may be waiting on a receipt: a few blocks of slack on a loaded machine).
const CLOSE_DELAY: u64 = 10;
const TOKENS: u64 = 1_000_000_000;

fn amount(v: &Value) -> U256 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a token amount: {v}"))
}

async fn bandwidth(node: &TestNode) -> anyhow::Result<Value> {
    node.get_json("/bandwidth").await
}

async fn post(node: &TestNode, path: &str) -> anyhow::Result<Value> {
    let r = node.http.post(node.url(path)).send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "POST {path}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A node on wallet `wallet` with paid-bandwidth flags `extra`, bootstrapped from `from`.
async fn node(
    net: &ChannelsNet,
    dir: &Path,
    name: &str,
    wallet: usize,
    from: &[&TestNode],
    extra: &[&str],
) -> anyhow::Result<TestNode> {
    let mut args: Vec<String> = net.flags(wallet)?;
    for other in from {
        args.extend(["--bootstrap-node".into(), other.spr().await?]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(["--log-level".into(), "info,vellum::bandwidth=debug,vellum::fetch=debug".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestNode::start_logged(&dir.join(name), &refs, Some(&dir.join(format!("{name}.log"))))
}

/// A provider charging `price` per byte past a 1 MiB allowance, with 1 MiB of credit.
async fn provider(
    net: &ChannelsNet,
    dir: &Path,
    name: &str,
    wallet: usize,
    price: &str,
    from: &[&TestNode],
    extra: &[&str],
) -> anyhow::Result<TestNode> {
    let mut flags = vec!["--bandwidth-price", price, "--bandwidth-free", "1MiB", "--bandwidth-credit", "1MiB"];
    flags.extend_from_slice(extra);
    node(net, dir, name, wallet, from, &flags).await
}

/// Whether a network download of `cid` from `node` fails (an error answer or a cut body).
async fn download_fails(node: &TestNode, cid: &str) -> anyhow::Result<bool> {
    let r = node.get(&format!("/data/{cid}/network/stream")).await?;
    if !r.status().is_success() {
        return Ok(true);
    }
    Ok(r.bytes().await.is_err())
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("{what}: not within {limit:?}")
}

fn addr(v: &Value) -> Address {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an address: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloader_pays_two_providers_to_the_unit_and_reclaims_the_rest() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let net = ChannelsNet::start(dir, CLOSE_DELAY).await?;
    net.fund(3, U256::from(TOKENS)).await?;
    let a = provider(&net, dir, "a", 1, "2", &[], &["--bandwidth-redeem-every", "2MiB"]).await?;
    let b = provider(&net, dir, "b", 2, "3", &[&a], &[]).await?;
    let data = test_bytes(12 * MIB as usize, 19);
    let cid = a.upload(data.clone()).await?;
    anyhow::ensure!(b.upload(data.clone()).await? == cid, "the same bytes make the same dataset");
    let d = node(
        &net,
        dir,
        "d",
        3,
        &[&a, &b],
        &[
            "--max-price",
            "5",
            "--bandwidth-budget",
            "200000000",
            "--bandwidth-deposit",
            "60000000",
            "--metrics",
            "--metrics-port",
            "0",
        ],
    )
    .await?;

    let got = d.download(&format!("/data/{cid}/network/stream")).await?;
    anyhow::ensure!(got == data, "the download is the upload");
    let paying = bandwidth(&d).await?["paying"].clone();
    let channels = paying["channels"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(channels.len() == 2, "a channel to each provider: {paying}");

    // The downloader closes; the providers redeem within the delay.
    anyhow::ensure!(post(&d, "/bandwidth/close").await?["closing"] == 2);
    for p in [&a, &b] {
        wait_until("the provider redeems all it holds", Duration::from_secs(20), || async {
            let s = bandwidth(p).await?["serving"].clone();
            Ok(amount(&s["tokensRedeemed"]) == amount(&s["tokensEarned"]) && amount(&s["tokensRedeemed"]) > U256::ZERO)
        })
        .await?;
    }
    let mut redeemed = U256::ZERO;
    for (p, wallet, price) in [(&a, 1, 2u64), (&b, 2, 3u64)] {
        let s = bandwidth(p).await?["serving"].clone();
        let served = s["bytesServed"].as_u64().unwrap_or(0);
        let charged = s["bytesCharged"].as_u64().unwrap_or(0);
        anyhow::ensure!(charged == served - MIB, "charged past the 1 MiB allowance: {s}");
        let paid = net.balance(net.address(wallet)?).await?;
        anyhow::ensure!(
            paid == U256::from(price * charged),
            "provider {wallet} paid {paid} for {charged} bytes at {price}"
        );
        let channel = channels
            .iter()
            .find(|c| addr(&c["provider"]) == net.address(wallet).unwrap_or_default())
            .ok_or_else(|| anyhow::anyhow!("no channel to provider {wallet}"))?;
        anyhow::ensure!(amount(&channel["signed"]) == paid, "the last voucher is what was redeemed: {channel}");
        redeemed += paid;
    }
    anyhow::ensure!(amount(&paying["tokensSpent"]) == redeemed, "{paying}");
    let bytes_paid = paying["bytesPaid"].as_u64().unwrap_or(0);
    let charged_total: u64 = [bandwidth(&a).await?, bandwidth(&b).await?]
        .iter()
        .map(|r| r["serving"]["bytesCharged"].as_u64().unwrap_or(0))
        .sum();
    anyhow::ensure!(bytes_paid == charged_total, "bytes paid {bytes_paid} = bytes charged {charged_total}");
    let metric = d.metric("vellum_bandwidth_bytes_paid_total").await?.unwrap_or(0.0);
    anyhow::ensure!(metric as u64 == bytes_paid, "the metric says {metric}, /bandwidth {bytes_paid}");
    let opened = d.metric("vellum_bandwidth_channels_opened_total").await?.unwrap_or(0.0);
    anyhow::ensure!(opened as u64 == 2, "{opened} channels opened");

    // After the delay the rest comes back.
    wait_until("the deposits are reclaimed", Duration::from_secs(30), || async {
        post(&d, "/bandwidth/reclaim").await?;
        let channels = bandwidth(&d).await?["paying"]["channels"].clone();
        Ok(channels.as_array().is_some_and(|cs| cs.iter().all(|c| c["reclaimed"] == true)))
    })
    .await?;
    let left = net.balance(net.address(3)?).await?;
    anyhow::ensure!(left == U256::from(TOKENS) - redeemed, "the downloader has {left} after paying {redeemed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_payers_get_the_allowance_and_credit_only_and_a_provider_that_stops_keeps_the_prepayment_only()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let net = ChannelsNet::start(dir, CLOSE_DELAY).await?;
    for wallet in [5, 7] {
        net.fund(wallet, U256::from(TOKENS)).await?;
    }
    let p = provider(&net, dir, "p", 4, "1", &[], &[]).await?;
    let cid = p.upload(test_bytes(8 * MIB as usize, 23)).await?;
    let payer_flags = ["--max-price", "5", "--bandwidth-budget", "100000000", "--bandwidth-deposit", "20000000"];
    for (i, fault) in ["no-pay", "forge", "over-budget", "replay"].into_iter().enumerate() {
        let before = bandwidth(&p).await?["serving"].clone();
        let mut flags = payer_flags.to_vec();
        flags.extend(["--fault-bandwidth-vouchers", fault, "--bandwidth-prepay", "2MiB"]);
        let e = node(&net, dir, &format!("e{i}"), 5, &[&p], &flags).await?;
        let started = Instant::now();
        anyhow::ensure!(download_fails(&e, &cid).await?, "{fault}: the download went through");
        eprintln!("{fault}: the download failed in {:?}", started.elapsed());
        let after = bandwidth(&p).await?["serving"].clone();
        let delta = |field: &str| after[field].as_u64().unwrap_or(0) - before[field].as_u64().unwrap_or(0);
        let bound = if fault == "replay" { 4 * MIB } else { 2 * MIB };
        anyhow::ensure!(delta("bytesServed") <= bound, "{fault}: served {} bytes", delta("bytesServed"));
        anyhow::ensure!(delta("bytesServed") >= MIB, "{fault}: the allowance is served");
        match fault {
            "forge" | "over-budget" => anyhow::ensure!(delta("vouchersRefused") >= 1, "{fault}: {after}"),
            "replay" => {
                anyhow::ensure!(delta("vouchersStale") >= 1 && delta("vouchersAccepted") == 1, "{fault}: {after}")
            }
            _ => anyhow::ensure!(delta("requestsRefused") >= 1, "{fault}: {after}"),
        }
    }

    // A provider that takes the first voucher and stops.
    let q = provider(&net, dir, "q", 6, "1", &[], &["--fault-bandwidth-stop-after-payment"]).await?;
    let cid = q.upload(test_bytes(8 * MIB as usize, 29)).await?;
    let mut flags = payer_flags.to_vec();
    flags.extend(["--bandwidth-prepay", "2MiB"]);
    let h = node(&net, dir, "h", 7, &[&q], &flags).await?;
    anyhow::ensure!(download_fails(&h, &cid).await?, "the download went through a provider that stops");
    let paying = bandwidth(&h).await?["paying"].clone();
    let spent = amount(&paying["tokensSpent"]);
    let paid_for = U256::from(paying["bytesPaid"].as_u64().unwrap_or(0));
    anyhow::ensure!(spent > U256::ZERO, "it paid ahead: {paying}");
    anyhow::ensure!(spent <= paid_for + U256::from(2 * MIB), "spent {spent} for {paid_for} bytes received");
    Ok(())
}
