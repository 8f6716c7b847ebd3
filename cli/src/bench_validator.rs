//! `vellum bench validator`: what a validator costs per period when it watches thousands of
//! filled slots, on a local anvil.
//!
//! Set-up: the contracts are deployed with the verifier's code replaced by one that accepts every
//! proof (the bench is about the validator, not about proofs), and a client's requests of 100
//! slots each are filled by seven host wallets, each request's transactions mined in one block. Those hosts never prove, so every proof the
//! chain requires (each slot with probability 1/`--proof-probability` per period) is missed,
//! accused and, once the response window has passed, settled. A validator then runs in this
//! process against the chain through a counting JSON-RPC proxy: the table gives, per period, the
//! slots watched, the proofs missed and accused, the wall time and RPC calls of the round that
//! checked the period, and all calls over the period (polling for logs and settlements
//! included). Slots are never lost (a slot survives 100 missed proofs here).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use circuits::r1cs::ProofShape;
use clap::Args;
use contracts::Marketplace::{self, Ask, Content, MarketplaceConfig, Request};
use contracts::{Anvil, TestToken, deploy, dev_config_with_period};

/// Flags of `vellum bench validator`.
#[derive(Debug, Args)]
pub struct ValidatorBenchArgs {
    /// Filled slots the validator watches (one run per value).
    #[arg(long = "slots", default_values_t = [1_000u64, 10_000])]
    pub slots: Vec<u64>,
    /// Seconds per proof period.
    #[arg(long, default_value_t = 30)]
    pub period: u64,
    /// Periods measured per run.
    #[arg(long, default_value_t = 3)]
    pub periods: usize,
    /// Each slot owes a proof with probability 1/N per period.
    #[arg(long, default_value_t = 50)]
    pub proof_probability: u32,
}

/// Slots per request.
const SLOTS_PER_REQUEST: u16 = 100;
/// Host wallets filling the slots (anvil's dev accounts 2..=8; 9 is the validator's).
const HOSTS: usize = 7;
/// Code answering every call with `true`: PUSH1 1, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN.
const ACCEPT_ALL: [u8; 10] = [0x60, 0x01, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];

/// One measured period.
#[derive(Debug, Clone, Copy)]
struct PeriodRow {
    watched: usize,
    missed: usize,
    accused: usize,
    check_secs: f64,
    check_calls: u64,
    period_calls: u64,
}

/// Runs the bench for each slot count and prints the table.
pub(super) async fn validator(args: ValidatorBenchArgs) -> anyhow::Result<()> {
    if args.period < 6 {
        bail!("--period must be at least 6 seconds");
    }
    println!(
        "vellum bench validator: {} s periods, a proof owed with probability 1/{} per slot and period, none given",
        args.period, args.proof_probability
    );
    println!(
        "{:>7} {:>9} {:>8} {:>10} {:>8} {:>7} {:>7} {:>10} {:>12} {:>13}",
        "slots",
        "setup s",
        "sync s",
        "sync calls",
        "period",
        "missed",
        "accused",
        "check s",
        "check calls",
        "calls/period"
    );
    for &slots in &args.slots {
        run(slots, &args).await.with_context(|| format!("the run with {slots} slots"))?;
    }
    Ok(())
}

async fn run(slots: u64, args: &ValidatorBenchArgs) -> anyhow::Result<()> {
    let anvil = Anvil::start().context("starting anvil (run `npm ci` in contracts/ first)")?;
    let dir = std::env::temp_dir().join(format!("vellum-bench-validator-{}-{slots}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = measure(slots, args, &anvil, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(slots: u64, args: &ValidatorBenchArgs, anvil: &Anvil, dir: &std::path::Path) -> anyhow::Result<()> {
    let wallets: Vec<PrivateKeySigner> =
        anvil.keys().iter().map(|k| k.parse()).collect::<Result<_, _>>().context("anvil's dev keys")?;
    if wallets.len() < HOSTS + 3 {
        bail!("anvil has {} dev accounts; the bench needs {}", wallets.len(), HOSTS + 3);
    }
    let endpoint = anvil.endpoint();
    let connect = |i: usize| -> anyhow::Result<DynProvider> {
        Ok(ProviderBuilder::new()
            .with_cached_nonce_management()
            .wallet(EthereumWallet::from(wallets[i].clone()))
            .connect_http(endpoint.parse()?)
            .erased())
    };
    let deployer = connect(0)?;
    let setup_started = Instant::now();

    // Contracts, with a verifier that accepts everything.
    let shape = ProofShape { samples: 1, slot_depth: 2, dataset_levels: 1, cell_size: 64 };
    let keys = tokio::task::spawn_blocking(move || prover::setup(&shape)).await??;
    let vk = node::market::verifying_key_words(&prover::EvmVerifyingKey::new(&keys.pk.vk));
    let period = args.period;
    let deployment = deploy(&deployer, &vk, |token, verifier| MarketplaceConfig {
        maxMissedProofs: 100,
        slashPercentage: 1,
        ..dev_config_with_period(token, verifier, period, 0)
    })
    .await?;
    deployer
        .raw_request::<_, serde_json::Value>(
            "anvil_setCode".into(),
            (deployment.verifier, Bytes::from(ACCEPT_ALL.to_vec())),
        )
        .await?;

    // Tokens and allowances.
    let token = TestToken::new(deployment.token, deployer.clone());
    let plenty = U256::from(10u64).pow(U256::from(30u64));
    let client = connect(1)?;
    let hosts: Vec<DynProvider> = (2..2 + HOSTS).map(connect).collect::<anyhow::Result<_>>()?;
    for (i, p) in std::iter::once(&client).chain(&hosts).enumerate() {
        token.mint(wallets[1 + i].address(), plenty).send().await?.get_receipt().await?;
        TestToken::new(deployment.token, p.clone())
            .approve(deployment.marketplace, U256::MAX)
            .send()
            .await?
            .get_receipt()
            .await?;
    }

    // Requests, filled: mined on demand, a request's 200 transactions in one block (anvil's
    // per-block cost made one transaction per block take minutes for 10,000 slots).
    deployer.raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (false,)).await?;
    deployer
        .raw_request::<_, serde_json::Value>("evm_setBlockGasLimit".into(), (U256::from(2_000_000_000u64),))
        .await?;
    let market = Marketplace::new(deployment.marketplace, deployer.clone());
    let requests = slots.div_ceil(u64::from(SLOTS_PER_REQUEST));
    for r in 0..requests {
        let anchor = *market.anchorPeriods().gas(200_000).send().await?.tx_hash();
        let count = (slots - r * u64::from(SLOTS_PER_REQUEST)).min(u64::from(SLOTS_PER_REQUEST)) as u16;
        let (id, sent) =
            request(&client, deployment.marketplace, wallets[1].address(), r, count, args.proof_probability).await?;
        mine(&deployer).await?;
        if !mined(&deployer, anchor).await? || !mined(&deployer, sent).await? {
            bail!("request {r} was not accepted");
        }
        fill(&hosts, &deployer, deployment.marketplace, id, count).await?;
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();

    // From now on blocks come every second, as on a live chain.
    deployer.raw_request::<_, serde_json::Value>("evm_setIntervalMining".into(), (1u64,)).await?;

    // The validator, through the counting proxy.
    let proxy = CountingProxy::start(endpoint.clone()).await?;
    let key_file = vellum_testkit::write_key_file(dir, anvil, HOSTS + 2)?;
    let config = validator::ValidatorConfig {
        fault_accuse_proven: false,
        chain: contracts::client::ChainConfig {
            endpoint: proxy.url.clone(),
            key_file,
            marketplace: deployment.marketplace,
        },
        groups: 1,
        group_index: 0,
        state_file: dir.join("validator.json"),
        start_block: 0,
        max_batch: 100,
    };
    let sync_started = Instant::now();
    let mut v = validator::Validator::connect(config).await?;
    v.tick().await?;
    let sync_secs = sync_started.elapsed().as_secs_f64();
    let sync_calls = proxy.calls();

    let mut rows = Vec::new();
    let mut since = proxy.calls();
    let deadline = Instant::now() + Duration::from_secs(period * (args.periods as u64 + 3));
    while rows.len() < args.periods {
        if Instant::now() > deadline {
            bail!("the validator checked {} periods in the time of {}", rows.len(), args.periods + 3);
        }
        tokio::time::sleep(validator::service::TICK).await;
        let before = proxy.calls();
        let started = Instant::now();
        let report = v.tick().await?;
        let check_secs = started.elapsed().as_secs_f64();
        if let Some(report) = report {
            let now = proxy.calls();
            let row = PeriodRow {
                watched: report.watched,
                missed: report.missed,
                accused: report.accused,
                check_secs,
                check_calls: now - before,
                period_calls: now - since,
            };
            since = now;
            println!(
                "{:>7} {:>9.1} {:>8.2} {:>10} {:>8} {:>7} {:>7} {:>10.2} {:>12} {:>13}",
                row.watched,
                setup_secs,
                sync_secs,
                sync_calls,
                report.period,
                row.missed,
                row.accused,
                row.check_secs,
                row.check_calls,
                row.period_calls
            );
            rows.push(row);
        }
    }
    let med = |f: fn(&PeriodRow) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "{:>7} {:>9} {:>8} {:>10} {:>8} {:>7} {:>7} {:>10.2} {:>12} {:>13}",
        slots,
        "",
        "",
        "",
        "median",
        med(|r| r.missed as f64),
        med(|r| r.accused as f64),
        med(|r| r.check_secs),
        med(|r| r.check_calls as f64),
        med(|r| r.period_calls as f64)
    );
    Ok(())
}

/// Sends a request of `slots` slots from the client (to be mined); returns its id and the
/// transaction's hash.
async fn request(
    client: &DynProvider,
    marketplace: Address,
    client_address: Address,
    nonce: u64,
    slots: u16,
    probability: u32,
) -> anyhow::Result<(B256, B256)> {
    let request = Request {
        client: client_address,
        expiry: 3_600,
        ask: Ask {
            slots,
            slotSize: 1 << 20,
            duration: 86_400,
            proofProbability: probability,
            maxSlotLoss: 0,
            repairThreshold: 1,
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
        },
        content: Content {
            cid: Bytes::from(format!("bench-{nonce}").into_bytes()),
            merkleRoot: B256::with_last_byte(7),
        },
        nonce: B256::from(U256::from(nonce)),
    };
    let id = alloy::primitives::keccak256(alloy::sol_types::SolValue::abi_encode(&request));
    let sent = Marketplace::new(marketplace, client.clone()).requestStorage(request).gas(1_000_000).send().await?;
    Ok((id, *sent.tx_hash()))
}

/// Reserves and fills every slot of a request, spreading them over the host wallets, all in one
/// block; slots left empty (a fill that met a period without its seed) are filled again after
/// anchoring.
async fn fill(
    hosts: &[DynProvider],
    deployer: &DynProvider,
    marketplace: Address,
    id: B256,
    slots: u16,
) -> anyhow::Result<()> {
    let market = Marketplace::new(marketplace, deployer.clone());
    let mut todo: Vec<u16> = (0..slots).collect();
    let mut reserved = vec![false; usize::from(slots)];
    for _round in 0..4 {
        for &i in &todo {
            let m = Marketplace::new(marketplace, hosts[usize::from(i) % hosts.len()].clone());
            if !reserved[usize::from(i)] {
                let _sent = m.reserveSlot(id, u64::from(i)).gas(200_000).send().await?;
                reserved[usize::from(i)] = true;
            }
            let _sent = m.fillSlot(id, u64::from(i), [U256::ZERO; 8]).gas(600_000).send().await?;
        }
        mine(deployer).await?;
        if market.requestSlotCounts(id).call().await?.filled == U256::from(slots) {
            return Ok(());
        }
        let mut empty = Vec::new();
        for &i in &todo {
            if market.getHost(market.slotId(id, u64::from(i)).call().await?).call().await? == Address::ZERO {
                empty.push(i);
            }
        }
        let _sent = market.anchorPeriods().gas(200_000).send().await?;
        mine(deployer).await?;
        mine(deployer).await?;
        todo = empty;
    }
    bail!("{} slots of request {id} could not be filled", todo.len())
}

/// Mines one block now (the set-up mines on demand).
async fn mine(provider: &DynProvider) -> anyhow::Result<()> {
    provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
    Ok(())
}

/// Waits for a transaction's receipt; whether it succeeded.
async fn mined(provider: &DynProvider, hash: B256) -> anyhow::Result<bool> {
    for _ in 0..200 {
        if let Some(r) = provider.get_transaction_receipt(hash).await? {
            return Ok(r.status());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("transaction {hash} not mined")
}

/// A loopback HTTP proxy to the chain endpoint that counts JSON-RPC calls (each call of a batch
/// counts).
struct CountingProxy {
    url: String,
    calls: Arc<AtomicU64>,
}

struct ProxyState {
    target: String,
    http: reqwest::Client,
    calls: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(target: String) -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicU64::new(0));
        let state = Arc::new(ProxyState { target, http: reqwest::Client::new(), calls: Arc::clone(&calls) });
        let app = axum::Router::new().route("/", axum::routing::post(forward)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, calls })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, body: axum::body::Bytes) -> axum::response::Response {
    let n = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(batch)) => batch.len() as u64,
        _ => 1,
    };
    state.calls.fetch_add(n, Ordering::Relaxed);
    let sent = state.http.post(&state.target).header(header::CONTENT_TYPE, "application/json").body(body).send().await;
    match sent {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
