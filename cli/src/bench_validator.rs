//! `vellum bench validator`: what a validator costs per period when it watches thousands of
//! filled slots whose hosts publish their periodic proofs off the chain (issue 15), on a local
//! anvil.
//!
//! Set-up: a client's requests of 100 slots each are filled by seven host wallets, each request's
//! transactions mined in one block. On chain the verifier's code is replaced by one that accepts
//! every proof: fills need a proof, and nothing else here goes on chain with one (no host
//! defends). Off the chain every proof is real: keys are made for a tiny proof shape (3 samples,
//! 16 cells of 64 bytes per slot, a dataset of 100 slots), every request stores the same
//! synthetic dataset (its content root is that dataset's root), and slot `i` of any request is
//! proven from that dataset's slot `i`, with the period's entropy, exactly as a host proves. A
//! Groth16 check costs what a production one costs: the pairing depends only on the number of
//! public inputs, three here as in production (dataset root, entropy, slot index), never on the
//! circuit's size; only making the proofs is cheaper, and that is set-up, not measured.
//!
//! Each period, for every (slot, period) the chain requires (the contract's rule,
//! [`contracts::rules`], from the period's anchor block), the bench makes the proof on every core
//! while the validator idles and the chain's clock stands still (hosts prove on their own
//! machines), and at the period's second round hands the proofs to the validator's inbox as the
//! libp2p topic would; except about 1% that it withholds and a fake
//! [`validator::ProofNet`] gives when the validator asks for them, and about 0.5% that nobody
//! gives (at least one of each whenever proofs are owed); the latter are accused on chain
//! and, once the response window has passed, settled. An asked host that has no proof says so at
//! once here; a host that stays silent would add the ask's time limit to the checking round.
//!
//! The validator runs in this process with the real checker (the tiny shape's verifying key)
//! against the chain through a counting JSON-RPC proxy, which also notes the transactions it
//! sends. Per period `q` the table gives the slots watched, the proofs owed, the proofs verified
//! from the broadcast, fetched on request and accused, the wall time and RPC calls of the round
//! that verified `q`'s broadcast and of the round that checked `q` once it was over, and, from
//! the previous period's check to this one, all RPC calls and the validator's transactions and
//! their gas (anchoring, accusations, settlements). Then, for the case where every slot owes a
//! proof, the time of [`validator::Checker::check_many`] on as many proofs as slots (proofs made
//! during the run, repeated; each check does the full pairing). Slots are never lost (a slot
//! survives 100 missed proofs here).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use circuits::r1cs::{ProofShape, build_inputs, dataset_path};
use clap::Args;
use contracts::Marketplace::{self, Ask, Content, MarketplaceConfig, Request};
use contracts::offchain::PublishedProof;
use contracts::rules::{entropy, owes_proof, seed_from_anchor, selected};
use contracts::{Anvil, TestToken, deploy, dev_config_with_period};
use serde_json::Value;
use tokio::sync::mpsc;
use validator::offchain::{Expected, Verdict};

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

/// Slots per request (and of the shared dataset).
const SLOTS_PER_REQUEST: u16 = 100;
/// Host wallets filling the slots (anvil's dev accounts 2..=8; 9 is the validator's).
const HOSTS: usize = 7;
/// Code answering every call with `true`: PUSH1 1, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN.
const ACCEPT_ALL: [u8; 10] = [0x60, 0x01, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
/// The proof shape: 3 samples of 16 cells of 64 bytes, a dataset tree of three 8-ary levels (up
/// to 512 slots). Three public inputs, as every shape has.
const SHAPE: ProofShape = ProofShape { samples: 3, slot_depth: 4, dataset_levels: 3, cell_size: 64 };
/// Owed proofs per thousand that the bench withholds from the broadcast and gives on request.
const WITHHELD_PER_MILLE: usize = 10;
/// Owed proofs per thousand that nobody gives (accused).
const SILENT_PER_MILLE: usize = 5;
/// How long a request runs (far beyond any run of the bench).
const DURATION: u64 = 86_400;

/// One measured period.
#[derive(Debug, Clone, Copy, Default)]
struct PeriodRow {
    period: u64,
    watched: usize,
    owed: usize,
    verified: u64,
    invalid: u64,
    fetched: u64,
    accused: usize,
    verify_secs: f64,
    check_secs: f64,
    /// Both rounds together.
    checks_secs: f64,
    verify_calls: u64,
    check_calls: u64,
    period_calls: u64,
    txs: usize,
    gas: u64,
}

/// The round that verified a period's broadcast proofs.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    secs: f64,
    calls: u64,
    verified: u64,
    invalid: u64,
}

/// A filled slot, as its host knows it.
#[derive(Debug, Clone, Copy)]
struct HostSlot {
    id: B256,
    index: u64,
    filled_at: u64,
    started_at: u64,
}

/// A proof to make.
#[derive(Debug, Clone, Copy)]
struct Job {
    slot_id: B256,
    period: u64,
    index: u64,
    entropy: U256,
}

/// Runs the bench for each slot count and prints the tables.
pub(super) async fn validator(args: ValidatorBenchArgs) -> anyhow::Result<()> {
    if args.period < 6 {
        bail!("--period must be at least 6 seconds");
    }
    if args.periods == 0 {
        bail!("--periods must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "vellum bench validator: proofs off the chain, {} s periods, a proof owed with probability 1/{} per slot and period",
        args.period, args.proof_probability
    );
    println!("machine: {} ({cores} cores available)", cpu_model());
    println!(
        "proof shape: {} samples, {} cells of {} bytes per slot, {} dataset levels (3 public inputs, as in production); \
         {WITHHELD_PER_MILLE}‰ of owed proofs given only on request, {SILENT_PER_MILLE}‰ never (at least one of each)",
        SHAPE.samples,
        SHAPE.slot_cells(),
        SHAPE.cell_size,
        SHAPE.dataset_levels
    );
    for &slots in &args.slots {
        run(slots, &args, cores).await.with_context(|| format!("the run with {slots} slots"))?;
    }
    Ok(())
}

/// The CPU's model name, from `/proc/cpuinfo` where there is one.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

async fn run(slots: u64, args: &ValidatorBenchArgs, cores: usize) -> anyhow::Result<()> {
    let anvil = Anvil::start().context("starting anvil (run `npm ci` in contracts/ first)")?;
    let dir = std::env::temp_dir().join(format!("vellum-bench-validator-{}-{slots}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = measure(slots, args, cores, &anvil, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(slots: u64, args: &ValidatorBenchArgs, cores: usize, anvil: &Anvil, dir: &Path) -> anyhow::Result<()> {
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

    // Keys and the shared dataset.
    let started = Instant::now();
    let keys = tokio::task::spawn_blocking(|| prover::setup(&SHAPE)).await??;
    let vk = keys.pk.vk.clone();
    let factory = Factory::new(&dir.join("dataset"), keys, SLOTS_PER_REQUEST)?;
    let keys_secs = started.elapsed().as_secs_f64();

    // Contracts, with a verifier that accepts everything (fills need a proof).
    let setup_started = Instant::now();
    let vk_words = node::market::verifying_key_words(&prover::EvmVerifyingKey::new(&vk));
    let period = args.period;
    let deployment = deploy(&deployer, &vk_words, |token, verifier| MarketplaceConfig {
        maxMissedProofs: 100,
        slashPercentage: 1,
        ..dev_config_with_period(token, verifier, period, 0)
    })
    .await?;
    deployer
        .raw_request::<_, Value>("anvil_setCode".into(), (deployment.verifier, Bytes::from(ACCEPT_ALL.to_vec())))
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
    deployer.raw_request::<_, Value>("evm_setAutomine".into(), (false,)).await?;
    deployer.raw_request::<_, Value>("evm_setBlockGasLimit".into(), (U256::from(2_000_000_000u64),)).await?;
    let market = Marketplace::new(deployment.marketplace, deployer.clone());
    let requests = slots.div_ceil(u64::from(SLOTS_PER_REQUEST));
    let mut filled: Vec<HostSlot> = Vec::new();
    for r in 0..requests {
        let anchor = *market.anchorPeriods().gas(200_000).send().await?.tx_hash();
        let left = slots - r * u64::from(SLOTS_PER_REQUEST);
        let count = u16::try_from(left.min(u64::from(SLOTS_PER_REQUEST)))?;
        let ask = RequestAsk { nonce: r, slots: count, probability: args.proof_probability, root: factory.root_word };
        let (id, sent) = request(&client, deployment.marketplace, wallets[1].address(), &ask).await?;
        mine(&deployer).await?;
        if !mined(&deployer, anchor).await? || !mined(&deployer, sent).await? {
            bail!("request {r} was not accepted");
        }
        if r == 0 && market.slotId(id, 0).call().await? != slot_id(id, 0) {
            bail!("slot ids computed here differ from the contract's");
        }
        let times = fill(&hosts, &deployer, deployment.marketplace, id, count).await?;
        let started_at = times.iter().copied().max().unwrap_or(0);
        for (index, filled_at) in (0u64..).zip(times) {
            filled.push(HostSlot { id: slot_id(id, index), index, filled_at, started_at });
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();

    // From now on blocks come every second, as on a live chain.
    deployer.raw_request::<_, Value>("evm_setIntervalMining".into(), (1u64,)).await?;

    // The validator, through the counting proxy, with the real checker and a fake network.
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
    let capacity = usize::try_from(slots)?.saturating_mul(2).saturating_add(1_024);
    let (inbox, rx) = mpsc::channel(capacity);
    let net = FakeNet::default();
    let sync_started = Instant::now();
    let mut v = validator::Validator::connect(config).await?.with_proofs(net.clone(), validator::Checker::new(&vk), rx);
    v.tick().await?;
    let sync_secs = sync_started.elapsed().as_secs_f64();
    let sync_calls = proxy.calls();
    let metrics = v.metrics();
    let _ = proxy.take_sent(); // (the sync's anchoring belongs to no measured period)

    println!();
    println!(
        "{slots} slots ({requests} requests): keys and dataset {keys_secs:.1} s, deploy and fill {setup_secs:.1} s, \
         the validator's first round {sync_secs:.2} s / {sync_calls} calls"
    );
    println!(
        "(verify: the round that checked the period's broadcast proofs; check: the round that asked for the \
         missing ones and accused after the period; checks = both; v/c calls: their RPC calls; p calls, txs, gas: \
         everything the validator did since the previous period's check)"
    );
    println!(
        "{:>9} {:>7} {:>6} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>4} {:>9}",
        "period",
        "watched",
        "owed",
        "verified",
        "fetched",
        "accused",
        "verify s",
        "check s",
        "checks s",
        "v calls",
        "c calls",
        "p calls",
        "txs",
        "gas"
    );

    let mut hostside = Hosts {
        factory: &factory,
        market: &market,
        provider: &deployer,
        slots: &filled,
        probability: args.proof_probability,
        net: &net,
        pending: BTreeMap::new(),
        owed: HashMap::new(),
        made: Vec::new(),
        period,
        prove_secs: 0.0,
    };
    let mut now = chain_time(&deployer).await?;
    let mut current = now / period;
    let mut made_up_to = hostside.make(current.saturating_sub(1), current + 1, current).await?;

    let mut rows = Vec::new();
    let mut since = proxy.calls();
    let mut rounds: HashMap<u64, Round> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(period * (args.periods as u64 + 4));
    while rows.len() < args.periods {
        if Instant::now() > deadline + Duration::from_secs_f64(hostside.prove_secs) {
            bail!("the validator checked {} periods in the time of {}", rows.len(), args.periods + 4);
        }
        tokio::time::sleep(validator::service::TICK).await;
        now = chain_time(&deployer).await?;
        let first_of_period = now / period != current;
        current = now / period;
        // A period's broadcast reaches the validator after its first round (which anchors).
        let mut released = None;
        if !first_of_period
            && let Some(entry) = hostside.pending.first_entry()
            && *entry.key() <= current
        {
            let (p, proofs) = entry.remove_entry();
            if !proofs.is_empty() {
                released = Some(p);
            }
            for proof in proofs {
                inbox.try_send(proof).map_err(|e| anyhow!("the validator's inbox: {e}"))?;
            }
        }
        let before = (proxy.calls(), metrics.proofs_verified.get(), metrics.proofs_invalid.get());
        let fetched_before = metrics.proofs_fetched.get();
        let started = Instant::now();
        let report = v.tick().await?;
        let secs = started.elapsed().as_secs_f64();
        let calls = proxy.calls().saturating_sub(before.0);
        if let Some(p) = released {
            let round = Round {
                secs,
                calls,
                verified: metrics.proofs_verified.get().saturating_sub(before.1),
                invalid: metrics.proofs_invalid.get().saturating_sub(before.2),
            };
            rounds.insert(p, round);
        }
        if let Some(report) = report {
            let all = proxy.calls();
            let (txs, gas) = gas_of(&deployer, &proxy).await?;
            let round = rounds.remove(&report.period).unwrap_or_default();
            let row = PeriodRow {
                period: report.period,
                watched: report.watched,
                owed: hostside.owed.get(&report.period).copied().unwrap_or(0),
                verified: round.verified,
                invalid: round.invalid,
                fetched: metrics.proofs_fetched.get().saturating_sub(fetched_before),
                accused: report.accused,
                verify_secs: round.secs,
                check_secs: secs,
                checks_secs: round.secs + secs,
                verify_calls: round.calls,
                check_calls: calls,
                period_calls: all.saturating_sub(since),
                txs,
                gas,
            };
            since = all;
            print_row(&row.period.to_string(), &row);
            rows.push(row);
        }
        // The next period's proofs, once its seed is anchored and this period's check is done
        // (or its window is over): made while the validator idles.
        let window_over = now % period >= (period / 2).max(1);
        if made_up_to < current + 1 && (report.is_some() || window_over) {
            made_up_to = made_up_to.max(hostside.make(made_up_to + 1, current + 1, current).await?);
        }
    }
    let median = median_row(&rows);
    print_row("median", &median);
    let invalid: u64 = rows.iter().map(|r| r.invalid).sum();
    if invalid > 0 {
        println!("{invalid} broadcast proofs were refused (none should be)");
    }
    let made = hostside.made.len();
    if made > 0 {
        println!(
            "proofs made by the hosts (set-up, not measured): {made}, {:.0} ms each on {cores} cores",
            hostside.prove_secs * 1e3 / made as f64
        );
    }
    worst_case(&vk, &hostside.made, usize::try_from(slots)?, cores)?;
    Ok(())
}

/// The case where every slot owes a proof: [`validator::Checker::check_many`] on as many proofs
/// as slots, the proofs made during the run repeated (a check's cost does not depend on which
/// proof it checks; each is a full pairing against its own public inputs and is valid).
fn worst_case(vk: &prover::VerifyingKey, made: &[PublishedProof], slots: usize, cores: usize) -> anyhow::Result<()> {
    if made.is_empty() || slots == 0 {
        println!("every slot owes a proof: not measured (no proof was made)");
        return Ok(());
    }
    let items: Vec<(PublishedProof, Expected)> = made
        .iter()
        .cycle()
        .take(slots)
        .map(|p| (*p, Expected { dataset_root: p.dataset_root, entropy: p.entropy, slot_index: p.slot_index }))
        .collect();
    let checker = validator::Checker::new(vk);
    let started = Instant::now();
    let verdicts = tokio::task::block_in_place(|| checker.check_many(&items));
    let secs = started.elapsed().as_secs_f64();
    let valid = verdicts.iter().filter(|v| **v == Verdict::Valid).count();
    if valid != slots {
        bail!("{} of {slots} proofs were refused in the worst-case check", slots - valid);
    }
    println!(
        "every slot owes a proof: Checker::check_many of {slots} proofs ({} distinct, repeated) took {secs:.2} s on {cores} cores \
         ({:.2} ms per proof and core)",
        made.len(),
        secs * 1e3 * cores as f64 / slots as f64
    );
    Ok(())
}

fn print_row(label: &str, r: &PeriodRow) {
    println!(
        "{:>9} {:>7} {:>6} {:>8} {:>7} {:>7} {:>8.2} {:>7.2} {:>8.2} {:>7} {:>7} {:>7} {:>4} {:>9}",
        label,
        r.watched,
        r.owed,
        r.verified,
        r.fetched,
        r.accused,
        r.verify_secs,
        r.check_secs,
        r.checks_secs,
        r.verify_calls,
        r.check_calls,
        r.period_calls,
        r.txs,
        r.gas
    );
}

/// Each column's median over the rows.
fn median_row(rows: &[PeriodRow]) -> PeriodRow {
    fn med<T: Copy + PartialOrd + Default>(rows: &[PeriodRow], f: impl Fn(&PeriodRow) -> T) -> T {
        let mut v: Vec<T> = rows.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
    PeriodRow {
        period: 0,
        watched: med(rows, |r| r.watched),
        owed: med(rows, |r| r.owed),
        verified: med(rows, |r| r.verified),
        invalid: med(rows, |r| r.invalid),
        fetched: med(rows, |r| r.fetched),
        accused: med(rows, |r| r.accused),
        verify_secs: med(rows, |r| r.verify_secs),
        check_secs: med(rows, |r| r.check_secs),
        checks_secs: med(rows, |r| r.checks_secs),
        verify_calls: med(rows, |r| r.verify_calls),
        check_calls: med(rows, |r| r.check_calls),
        period_calls: med(rows, |r| r.period_calls),
        txs: med(rows, |r| r.txs),
        gas: med(rows, |r| r.gas),
    }
}

/// The hosts' side: which proofs the chain requires per period, made and published (or kept).
struct Hosts<'a> {
    factory: &'a Factory,
    market: &'a Marketplace::MarketplaceInstance<DynProvider>,
    provider: &'a DynProvider,
    slots: &'a [HostSlot],
    probability: u32,
    net: &'a FakeNet,
    /// Broadcast proofs per period, not yet handed to the validator.
    pending: BTreeMap<u64, Vec<PublishedProof>>,
    /// Proofs owed per period.
    owed: HashMap<u64, usize>,
    /// Every proof made (for the worst-case check).
    made: Vec<PublishedProof>,
    prove_secs: f64,
    /// Seconds per period.
    period: u64,
}

impl Hosts<'_> {
    /// Makes the proofs of periods `from..=to` (the chain being in period `now`) as far as their
    /// seeds are known; returns the last period done (`from - 1` when none).
    async fn make(&mut self, from: u64, to: u64, now: u64) -> anyhow::Result<u64> {
        let mut done = from.saturating_sub(1);
        for q in from..=to {
            let Some(seed) = self.seed(q, now).await? else { break };
            let mut jobs: Vec<Job> = match seed {
                None => Vec::new(), // anchored late: nothing owed
                Some(seed) => self
                    .slots
                    .iter()
                    .filter(|s| {
                        owes_proof(q, s.started_at, s.filled_at, s.started_at.saturating_add(DURATION), self.period)
                            && selected(seed, s.id, q, self.probability)
                    })
                    .map(|s| Job { slot_id: s.id, period: q, index: s.index, entropy: entropy(seed, s.id, q) })
                    .collect(),
            };
            let owed = jobs.len();
            // Who withholds: by a hash of (slot, period), so different slots each period.
            jobs.sort_by_key(|j| keccak256([j.slot_id.as_slice(), &j.period.to_be_bytes()].concat()));
            let silent = (owed * SILENT_PER_MILLE).div_ceil(1_000).min(owed);
            let withheld = (owed * WITHHELD_PER_MILLE).div_ceil(1_000).min(owed - silent);
            let to_make = jobs.get(silent..).unwrap_or_default();
            // The chain's clock stops while the hosts prove here: on a real network each host
            // proves on its own machine, in parallel with the validator.
            let paused_at = pause(self.provider).await?;
            let started = Instant::now();
            let proofs = tokio::task::block_in_place(|| self.factory.prove_many(to_make));
            self.prove_secs += started.elapsed().as_secs_f64();
            resume(self.provider, paused_at).await?;
            let proofs = proofs?;
            let (kept, broadcast) = proofs.split_at(withheld.min(proofs.len()));
            self.net.keep(kept);
            self.made.extend_from_slice(&proofs);
            self.pending.insert(q, broadcast.to_vec());
            self.owed.insert(q, owed);
            done = q;
        }
        Ok(done)
    }

    /// Period `q`'s seed from its anchor block: `None` while it may still be anchored in
    /// advance, `Some(None)` when nothing is owed in it (anchored late, or never anchored and no
    /// longer in the future).
    async fn seed(&self, q: u64, now: u64) -> anyhow::Result<Option<Option<U256>>> {
        let s = self.market.periodSeed(U256::from(q)).call().await?;
        if s.anchorBlock.is_zero() {
            return Ok(if q > now { None } else { Some(None) });
        }
        if s.late {
            return Ok(Some(None));
        }
        let number =
            u64::try_from(s.anchorBlock).map_err(|_| anyhow!("anchor block {} of period {q}", s.anchorBlock))?;
        let Some(block) = self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).await? else {
            return Ok(None);
        };
        Ok(Some(Some(seed_from_anchor(block.header.hash))))
    }
}

/// The shared dataset and the prover: makes hosts' proofs.
struct Factory {
    prover: prover::Prover,
    slots: Vec<prover::DiskSlot>,
    paths: Vec<Vec<([circuits::Fr; circuits::TREE_ARITY], usize)>>,
    root: circuits::Fr,
    /// The dataset root as the chain stores it (a big-endian word).
    root_word: B256,
}

impl Factory {
    /// Writes a dataset of `count` slots (cells and tree files) under `dir`.
    fn new(dir: &Path, keys: prover::Keys, count: u16) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let cells = usize::try_from(SHAPE.slot_cells())?;
        let mut roots = Vec::new();
        let mut slots = Vec::new();
        for s in 0..count {
            let bytes: Vec<u8> = (0..cells * SHAPE.cell_size)
                .map(|i| u8::try_from((i * 31 + usize::from(s) * 131 + 7) % 251).unwrap_or(0))
                .collect();
            let levels = circuits::tree_levels(&circuits::hash_cells(&bytes, SHAPE.cell_size, 1));
            let root = levels.last().and_then(|l| l.first()).copied().context("an empty slot tree")?;
            let tree: Vec<u8> = levels.iter().flatten().flat_map(circuits::fr_to_bytes).collect();
            let (cells_path, tree_path): (PathBuf, PathBuf) =
                (dir.join(format!("{s}.cells")), dir.join(format!("{s}.tree")));
            std::fs::write(&cells_path, &bytes)?;
            std::fs::write(&tree_path, tree)?;
            slots.push(
                prover::DiskSlot::open(&cells_path, &tree_path, SHAPE.cell_size, SHAPE.slot_cells())
                    .with_context(|| format!("slot {s}"))?,
            );
            roots.push(root);
        }
        let root = circuits::dataset_root(&roots);
        let paths = (0..u64::from(count)).map(|i| dataset_path(&roots, i)).collect();
        let mut be = circuits::fr_to_bytes(&root);
        be.reverse();
        Ok(Self { prover: prover::Prover::new(keys), slots, paths, root, root_word: B256::from(be) })
    }

    /// One host's proof.
    fn prove(&self, job: &Job) -> anyhow::Result<PublishedProof> {
        let i = usize::try_from(job.index)?;
        let (Some(slot), Some(path)) = (self.slots.get(i), self.paths.get(i)) else {
            bail!("slot index {} beyond the dataset", job.index)
        };
        let entropy = prover::entropy_from_block_hash(&job.entropy.to_be_bytes::<32>());
        let inputs = build_inputs(&SHAPE, slot, path.clone(), self.root, entropy, job.index)
            .with_context(|| format!("reading slot {i}"))?;
        let proof = self.prover.prove(&inputs)?;
        let words = prover::EvmProof::new(&proof).words();
        Ok(PublishedProof {
            slot_id: job.slot_id,
            period: job.period,
            slot_index: job.index,
            dataset_root: self.root_word,
            entropy: job.entropy,
            proof: std::array::from_fn(|k| words.get(k).map_or(U256::ZERO, |w| U256::from_be_bytes(*w))),
        })
    }

    /// Many proofs, on every core (a blocking call).
    fn prove_many(&self, jobs: &[Job]) -> anyhow::Result<Vec<PublishedProof>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len());
        let chunk = jobs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|j| self.prove(j)).collect::<anyhow::Result<Vec<_>>>()))
                .collect();
            let mut out = Vec::with_capacity(jobs.len());
            for part in parts {
                out.extend(part.join().map_err(|_| anyhow!("a proving thread panicked"))??);
            }
            Ok(out)
        })
    }
}

/// The hosts as the validator reaches them: each withheld proof is given on request; any other
/// (slot, period) is answered at once with "no proof".
#[derive(Clone, Default)]
struct FakeNet {
    kept: Arc<Mutex<HashMap<(B256, u64), PublishedProof>>>,
}

impl FakeNet {
    /// Keeps `proofs` to give on request (and forgets those of periods long past).
    fn keep(&self, proofs: &[PublishedProof]) {
        let mut kept = lock(&self.kept);
        if let Some(newest) = proofs.iter().map(|p| p.period).max() {
            kept.retain(|(_, q), _| q.saturating_add(4) >= newest);
        }
        kept.extend(proofs.iter().map(|p| ((p.slot_id, p.period), *p)));
    }
}

impl validator::ProofNet for FakeNet {
    async fn ask(&self, _host: Address, slot_id: B256, period: u64) -> Result<Option<PublishedProof>, String> {
        Ok(lock(&self.kept).get(&(slot_id, period)).copied())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A slot's id as the contract computes it: keccak256(abi.encode(requestId, uint64 index)).
fn slot_id(request_id: B256, index: u64) -> B256 {
    let mut words = [0u8; 64];
    words[..32].copy_from_slice(request_id.as_slice());
    words[32..].copy_from_slice(&U256::from(index).to_be_bytes::<32>());
    keccak256(words)
}

/// Stops mining; returns the chain's time (the latest block's).
async fn pause(provider: &DynProvider) -> anyhow::Result<u64> {
    provider.raw_request::<_, Value>("evm_setIntervalMining".into(), (0u64,)).await?;
    chain_time(provider).await
}

/// Sets the chain's clock back to where [`pause`] stopped it and mines every second again.
async fn resume(provider: &DynProvider, paused_at: u64) -> anyhow::Result<()> {
    provider.raw_request::<_, Value>("evm_setTime".into(), (paused_at.saturating_add(1),)).await?;
    provider.raw_request::<_, Value>("evm_setIntervalMining".into(), (1u64,)).await?;
    Ok(())
}

/// The latest block's timestamp.
async fn chain_time(provider: &DynProvider) -> anyhow::Result<u64> {
    let block =
        provider.get_block_by_number(BlockNumberOrTag::Latest).await?.context("the chain has no latest block")?;
    Ok(block.header.timestamp)
}

/// The validator's transactions since the last call (noted by the proxy): how many, and their
/// gas. Those not mined yet are counted later.
async fn gas_of(provider: &DynProvider, proxy: &CountingProxy) -> anyhow::Result<(usize, u64)> {
    let mut unmined = Vec::new();
    let (mut txs, mut gas) = (0usize, 0u64);
    for hash in proxy.take_sent() {
        match provider.get_transaction_receipt(hash).await? {
            Some(receipt) => {
                txs += 1;
                gas = gas.saturating_add(receipt.gas_used);
            }
            None => unmined.push(hash),
        }
    }
    lock(&proxy.sent).extend(unmined);
    Ok((txs, gas))
}

/// What a bench request asks for.
struct RequestAsk {
    nonce: u64,
    slots: u16,
    probability: u32,
    root: B256,
}

/// Sends a request from the client (to be mined); returns its id and the transaction's hash.
async fn request(
    client: &DynProvider,
    marketplace: Address,
    client_address: Address,
    ask: &RequestAsk,
) -> anyhow::Result<(B256, B256)> {
    let request = Request {
        client: client_address,
        expiry: 3_600,
        ask: Ask {
            slots: ask.slots,
            slotSize: 1 << 20,
            duration: DURATION,
            proofProbability: ask.probability,
            maxSlotLoss: 0,
            repairThreshold: 1,
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
        },
        content: Content { cid: Bytes::from(format!("bench-{}", ask.nonce).into_bytes()), merkleRoot: ask.root },
        nonce: B256::from(U256::from(ask.nonce)),
    };
    let id = keccak256(alloy::sol_types::SolValue::abi_encode(&request));
    let sent = Marketplace::new(marketplace, client.clone()).requestStorage(request).gas(1_000_000).send().await?;
    Ok((id, *sent.tx_hash()))
}

/// Reserves and fills every slot of a request, spreading them over the host wallets, all in one
/// block; slots left empty (a fill that met a period without its seed) are filled again after
/// anchoring. Returns each slot's fill time.
async fn fill(
    hosts: &[DynProvider],
    deployer: &DynProvider,
    marketplace: Address,
    id: B256,
    slots: u16,
) -> anyhow::Result<Vec<u64>> {
    let market = Marketplace::new(marketplace, deployer.clone());
    let mut todo: Vec<u16> = (0..slots).collect();
    let mut reserved = vec![false; usize::from(slots)];
    let mut times = vec![0u64; usize::from(slots)];
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
        let time = chain_time(deployer).await?;
        let all = market.requestSlotCounts(id).call().await?.filled == U256::from(slots);
        let mut empty = Vec::new();
        for &i in &todo {
            if !all && market.getHost(slot_id(id, u64::from(i))).call().await? == Address::ZERO {
                empty.push(i);
            } else {
                times[usize::from(i)] = time;
            }
        }
        if all {
            return Ok(times);
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
    provider.raw_request::<_, Value>("evm_mine".into(), ()).await?;
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
/// counts) and notes the hashes of the transactions sent through it.
struct CountingProxy {
    url: String,
    calls: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<B256>>>,
}

struct ProxyState {
    target: String,
    http: reqwest::Client,
    calls: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<B256>>>,
}

impl CountingProxy {
    async fn start(target: String) -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ProxyState {
            target,
            http: reqwest::Client::new(),
            calls: Arc::clone(&calls),
            sent: Arc::clone(&sent),
        });
        let app = axum::Router::new().route("/", axum::routing::post(forward)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, calls, sent })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The transactions sent since the last call.
    fn take_sent(&self) -> Vec<B256> {
        std::mem::take(&mut *lock(&self.sent))
    }
}

/// A JSON-RPC message's calls (or answers): the batch's entries, or the message itself.
fn entries(message: &Value) -> Vec<&Value> {
    match message {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, body: axum::body::Bytes) -> axum::response::Response {
    let message = serde_json::from_slice::<Value>(&body).ok();
    let n = match &message {
        Some(Value::Array(batch)) => batch.len() as u64,
        _ => 1,
    };
    state.calls.fetch_add(n, Ordering::Relaxed);
    let sends: Vec<Value> = message
        .as_ref()
        .map(|m| {
            entries(m)
                .into_iter()
                .filter(|e| e.get("method").and_then(Value::as_str) == Some("eth_sendRawTransaction"))
                .filter_map(|e| e.get("id").cloned())
                .collect()
        })
        .unwrap_or_default();
    let sent = state.http.post(&state.target).header(header::CONTENT_TYPE, "application/json").body(body).send().await;
    match sent {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = resp.bytes().await.unwrap_or_default();
            if !sends.is_empty()
                && let Ok(answer) = serde_json::from_slice::<Value>(&bytes)
            {
                let hashes = entries(&answer)
                    .into_iter()
                    .filter(|e| e.get("id").is_some_and(|id| sends.contains(id)))
                    .filter_map(|e| e.get("result")?.as_str()?.parse::<B256>().ok());
                lock(&state.sent).extend(hashes);
            }
            (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
