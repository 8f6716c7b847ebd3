//! The marketplace side of a node (persistence mode): buying storage as a client
//! (`purchasing`) and the host engine that sells it (`host`).
//!
//! The host engine is generic over the chain (`chain::MarketChain`) and the slot work
//! (`slot_work::SlotWork`): the node runs it on the wallet's alloy client and its store and
//! prover, the unit tests on an in-memory marketplace. Its parts: the pure sale rules
//! (`sale`), the availabilities (`availabilities`), the log follower that dispatches sale
//! tasks (`follower`), a sale from reservation to fill (`selling`), and proving and payouts
//! (`proving`). Every background task is supervised: a panic is logged and the task started
//! again. Records are written atomically before and after each chain transaction, so a restarted
//! node resumes where it was; a node whose chain endpoint is away at start serves its data and
//! joins the chain when the endpoint answers.

mod availabilities;
mod by_target;
mod chain;
mod chain_alloy;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fake_chain;
mod follower;
mod host;
mod outbox;
mod proving;
mod purchasing;
pub(crate) mod records;
mod sale;
mod selling;
mod slot_work;
pub mod types;
mod words;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use circuits::r1cs::ProofShape;
use prover::Prover;
use tokio::sync::OnceCell;
use tracing::{error, info, warn};

use self::availabilities::Availabilities;
pub use self::by_target::DurabilityAssumptions;
use self::chain::MarketChain;
use self::chain_alloy::AlloyMarket;
use self::host::{Host, HostConfig, SaleBook};
use self::records::RecordDir;
pub use self::sale::{SaleRecord, SaleState};
use self::slot_work::NodeSlots;
use self::types::{Availability, AvailabilityInput, Purchase, Reservation, SlotAgent, SlotInfo};
use self::words::{id_hex, parse_id};
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::net::NetworkHandle;
use crate::store::BlockStore;
use contracts::client::{Chain, ChainConfig, ChainError};

/// `prover`'s EVM verifying key in the plain form the contracts are deployed and checked with
/// (the same words in the same order: `contracts` depends on no proving code).
pub fn verifying_key_words(vk: &prover::EvmVerifyingKey) -> contracts::VerifyingKeyWords {
    contracts::VerifyingKeyWords { alpha: vk.alpha, beta: vk.beta, gamma: vk.gamma, delta: vk.delta, ic: vk.ic.clone() }
}

const LOG: &str = "vellum::market";

/// How often the background tasks look at the chain.
pub const TICK: Duration = Duration::from_millis(500);

/// Proofs a host keeps for validators and accusations (368 bytes each on the wire).
const OUTBOX_PROOFS: usize = 65_536;

/// Fault injection: broadcasts `rate` well-formed junk proofs a second (random slots, periods
/// and words), as a hostile peer flooding the proof topic would.
async fn flood_proofs(net: crate::net::NetworkHandle, rate: u32) {
    let mut n: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..rate.div_ceil(10) {
            n = n.wrapping_add(1);
            let word = |salt: u8| alloy::primitives::keccak256([&n.to_be_bytes()[..], &[salt]].concat());
            let junk = contracts::offchain::PublishedProof {
                slot_id: word(0),
                period: n,
                slot_index: n % 8,
                dataset_root: word(1),
                entropy: alloy::primitives::U256::from_be_bytes(word(2).0),
                proof: std::array::from_fn(|i| alloy::primitives::U256::from_be_bytes(word(3 + i as u8).0)),
            };
            let _ = net.publish_proof(junk).await;
        }
    }
}

/// How often a host stores its peer record in the DHT again.
const HOST_RECORD_REFRESH: Duration = Duration::from_secs(300);

/// How often a node whose chain endpoint was away at start tries it again.
const CONNECT_RETRY: Duration = Duration::from_secs(3);

/// Sales (reservation to fill) a host runs at once unless told otherwise.
pub const DEFAULT_CONCURRENT_SALES: usize = 4;

/// What persistence mode needs.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// The chain and the wallet.
    pub chain: ChainConfig,
    /// The proving key made by `vellum prover setup` (its shape fixes the slot size).
    pub prover_key: PathBuf,
    /// First block whose marketplace logs are read on the first start (later starts resume
    /// from the persisted cursor).
    pub start_block: u64,
    /// Fault injection for tests: the percentage of a newly filled slot's cells whose bytes are
    /// corrupted on disk (0: none).
    pub fault_corrupt_cells_percent: u8,
    /// Sales (reservation to fill) under way at once.
    pub max_concurrent_sales: usize,
    /// Where periodic proofs go: off the chain (published to validators, sent on chain only to
    /// answer an accusation) or on chain as before.
    pub proofs: ProofMode,
    /// Fault injection for tests: publish no proof off the chain and answer no request for one
    /// (accusations are still answered).
    pub fault_withhold_proofs: bool,
    /// Fault injection for tests: every periodic proof made is wrong (its A and C swapped).
    pub fault_wrong_proofs: bool,
    /// Fault injection for tests: broadcast this many junk proofs a second on the proof topic
    /// (a hostile peer flooding it; 0: none).
    pub fault_flood_proofs: u32,
    /// What storage requests by target assume of hosts.
    pub durability: DurabilityAssumptions,
}

/// Where a host sends its periodic proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProofMode {
    /// Published to validators over libp2p; on chain only to answer an accusation.
    #[default]
    OffChain,
    /// Submitted on chain each period (`submitProof`), as before proofs moved off the chain.
    OnChain,
}

/// Why a marketplace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The caller's input is not acceptable (answered with 422 and the reason).
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The chain refused or did not answer.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Local storage failed.
    #[error("{0}")]
    Local(String),
}

impl From<std::io::Error> for MarketError {
    fn from(e: std::io::Error) -> Self {
        MarketError::Local(e.to_string())
    }
}

impl From<crate::store::StoreError> for MarketError {
    fn from(e: crate::store::StoreError) -> Self {
        MarketError::Local(e.to_string())
    }
}

impl From<crate::slots::SlotError> for MarketError {
    fn from(e: crate::slots::SlotError) -> Self {
        MarketError::Local(e.to_string())
    }
}

/// The node's marketplace state: the client side (purchases) and the host engine.
pub struct Market {
    /// Set once the chain endpoint answered (at start, or later when it was away).
    chain: OnceCell<Chain>,
    host: OnceCell<Arc<Host<AlloyMarket, NodeSlots>>>,
    availabilities: Arc<Availabilities>,
    sales: Arc<SaleBook>,
    store: Arc<BlockStore>,
    fetcher: Arc<Fetcher>,
    net: NetworkHandle,
    prover: Arc<Prover>,
    shape: ProofShape,
    dir: PathBuf,
    purchase_records: RecordDir,
    purchases: Mutex<HashMap<String, Purchase>>,
    /// The node's counters (bytes fetched for sales and repairs, fills, proofs).
    metrics: Arc<Metrics>,
    config: MarketConfig,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("chain", &self.chain.get()).field("shape", &self.shape).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a background task for as long as the node runs: a task that panics or returns is
/// reported and started again a moment later, so that no failure goes unseen or stops proving.
fn supervise<F, Fut>(name: &'static str, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(make()).await {
                Ok(()) => warn!(target: LOG, task = name, "background task ended; starting it again"),
                Err(e) => error!(target: LOG, task = name, error = %e, "background task failed; starting it again"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Whether an endpoint is a URL of a scheme the client speaks (a well-formed endpoint that
/// does not answer is waited for; a malformed one stops the node).
fn endpoint_well_formed(endpoint: &str) -> bool {
    endpoint
        .parse::<alloy::transports::http::reqwest::Url>()
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss"))
}

impl Market {
    /// Loads the key and the records and connects to the chain, then starts the background
    /// tasks. A chain endpoint that does not answer does not stop the node: persistence mode
    /// joins the chain when it comes back (a key or endpoint that is wrong does stop it).
    pub async fn start(
        config: MarketConfig,
        data_dir: &Path,
        store: Arc<BlockStore>,
        fetcher: Arc<Fetcher>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
        wallet: Option<Chain>,
    ) -> Result<Arc<Self>, MarketError> {
        let key_path = config.prover_key.clone();
        let keys = tokio::task::spawn_blocking(move || prover::read_proving_key(&key_path))
            .await
            .map_err(|e| MarketError::Local(e.to_string()))?
            .map_err(|e| MarketError::Local(format!("prover key {}: {e}", config.prover_key.display())))?;
        let shape = keys.shape;
        let prover = Arc::new(
            tokio::task::spawn_blocking(move || Prover::new(keys))
                .await
                .map_err(|e| MarketError::Local(e.to_string()))?,
        );
        let dir = data_dir.join("market");
        let purchase_records = RecordDir::open(&dir.join("purchases"))?;
        let availabilities = Arc::new(Availabilities::open(RecordDir::open(&dir.join("availabilities"))?)?);
        let sales = Arc::new(SaleBook::open(RecordDir::open(&dir.join("sales"))?)?);
        availabilities.reconcile(&sales.held())?;
        let purchases =
            purchase_records.load_all::<Purchase>()?.into_iter().map(|p| (p.request_id.clone(), p)).collect();
        let first = Chain::connect_sharing(&config.chain, wallet.as_ref()).await;
        let market = Arc::new(Self {
            chain: OnceCell::new(),
            host: OnceCell::new(),
            availabilities,
            sales,
            store,
            fetcher,
            net,
            prover,
            shape,
            dir,
            purchase_records,
            purchases: Mutex::new(purchases),
            metrics,
            config,
        });
        match first {
            Ok(chain) => market.join_chain(chain),
            Err(e @ ChainError::Key { .. }) => return Err(e.into()),
            Err(e @ ChainError::Endpoint { .. }) if !endpoint_well_formed(&market.config.chain.endpoint) => {
                return Err(e.into());
            }
            Err(e) => {
                warn!(target: LOG, error = %e, "chain endpoint away; persistence mode starts when it answers");
                let m = Arc::clone(&market);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(CONNECT_RETRY).await;
                        match Chain::connect_sharing(&m.config.chain, wallet.as_ref()).await {
                            Ok(chain) => {
                                info!(target: LOG, "chain endpoint answered");
                                m.join_chain(chain);
                                return;
                            }
                            Err(e) if e.is_unreachable() => {
                                tracing::debug!(target: LOG, error = %e, "chain endpoint still away")
                            }
                            // An endpoint that answers with something else (no marketplace at
                            // the address, say) is worth an operator's look.
                            Err(e) => warn!(target: LOG, error = %e, "persistence mode cannot start yet"),
                        }
                    }
                });
            }
        }
        Ok(market)
    }

    /// Builds the host engine on a connected chain and starts the background tasks.
    fn join_chain(self: &Arc<Self>, chain: Chain) {
        let slots = NodeSlots {
            store: Arc::clone(&self.store),
            fetcher: Arc::clone(&self.fetcher),
            net: self.net.clone(),
            prover: Arc::clone(&self.prover),
            shape: self.shape,
            trees: self.dir.join("trees"),
            metrics: Arc::clone(&self.metrics),
            proving: tokio::sync::Mutex::new(()),
            fault_corrupt_cells_percent: self.config.fault_corrupt_cells_percent,
            fault_withhold_proofs: self.config.fault_withhold_proofs,
            fault_wrong_proofs: self.config.fault_wrong_proofs,
        };
        // Nodes before the follower's record kept a bare cursor file.
        let legacy_cursor = std::fs::read_to_string(self.dir.join("cursor")).ok().and_then(|t| t.trim().parse().ok());
        let outbox = Arc::new(Mutex::new(outbox::Outbox::new(OUTBOX_PROOFS)));
        let host = Arc::new(Host {
            chain: AlloyMarket::new(chain.clone()),
            work: slots,
            availabilities: Arc::clone(&self.availabilities),
            sales: Arc::clone(&self.sales),
            dir: self.dir.clone(),
            outbox: Arc::clone(&outbox),
            config: HostConfig {
                slot_size: self.slot_size(),
                max_sales: self.config.max_concurrent_sales.max(1),
                start_block: legacy_cursor.unwrap_or(self.config.start_block),
                tick: TICK,
                retry_after: Duration::from_secs(5),
                min_lease_secs: 15,
                proofs: self.config.proofs,
            },
        });
        info!(
            target: LOG,
            address = %chain.address(),
            marketplace = %chain.marketplace_address(),
            samples = self.shape.samples,
            slot_bytes = self.slot_size(),
            "persistence mode"
        );
        let record = chain.host_record(&self.net.peer_id().to_bytes());
        let (marketplace, me) = (chain.marketplace_address(), chain.address());
        if self.chain.set(chain).is_err() || self.host.set(Arc::clone(&host)).is_err() {
            return; // joined already
        }
        let net = self.net.clone();
        let source: Option<Arc<dyn crate::net::proofs::ProofSource>> = if self.config.fault_withhold_proofs {
            warn!(target: LOG, "fault injection: periodic proofs withheld from validators");
            None
        } else {
            Some(Arc::new(outbox::Shared(Arc::clone(&outbox))))
        };
        supervise("proof exchange", move || {
            let net = net.clone();
            let source = source.clone();
            let record = record.clone();
            async move {
                if let Err(e) = net.join_proofs(marketplace, None, source).await {
                    warn!(target: LOG, error = %e, "could not join the proof topic");
                }
                // The wallet-signed peer record, so validators can ask this host for a proof;
                // stored again every few minutes for peers that joined since.
                loop {
                    match &record {
                        Ok(r) => {
                            let _ = net.put_host_record(marketplace, me, r).await;
                        }
                        Err(e) => warn!(target: LOG, error = %e, "no host record: validators cannot ask this host"),
                    }
                    tokio::time::sleep(HOST_RECORD_REFRESH).await;
                }
            }
        });
        if self.config.fault_flood_proofs > 0 {
            let (net, rate) = (self.net.clone(), self.config.fault_flood_proofs);
            warn!(target: LOG, rate, "fault injection: flooding the proof topic with junk");
            supervise("proof flood", move || flood_proofs(net.clone(), rate));
        }
        let h = Arc::clone(&host);
        supervise("sales follower", move || Arc::clone(&h).follow());
        let h = Arc::clone(&host);
        supervise("proving", move || Arc::clone(&h).prove_forever());
        let market = Arc::clone(self);
        supervise("purchases", move || purchasing::watch(Arc::clone(&market)));
    }

    /// The chain handle, once the endpoint has answered.
    pub fn chain(&self) -> Result<&Chain, MarketError> {
        self.chain.get().ok_or_else(|| {
            MarketError::Chain(ChainError::Unreachable {
                call: "connect",
                reason: "the chain endpoint has not answered since the node started".into(),
            })
        })
    }

    /// Bytes per slot this node's proofs are made for.
    pub fn slot_size(&self) -> u64 {
        self.shape.slot_cells() * self.shape.cell_size as u64
    }

    /// Adds an availability.
    pub fn add_availability(&self, input: AvailabilityInput) -> Result<Availability, MarketError> {
        let space = self.store.space()?;
        let free = space.quota_max_bytes.saturating_sub(space.quota_used_bytes + space.quota_reserved_bytes);
        self.availabilities.add(input, free)
    }

    /// Changes an availability; sizes and collateral already in use stay in use.
    pub fn update_availability(&self, id: &str, input: AvailabilityInput) -> Result<(), MarketError> {
        self.availabilities.update(id, input)
    }

    /// Every availability.
    pub fn availabilities(&self) -> Vec<Availability> {
        self.availabilities.list()
    }

    /// Slots this node holds (sales not yet ended).
    pub fn active_slots(&self) -> Vec<SlotInfo> {
        self.sales
            .all()
            .into_iter()
            .filter(|s| s.state.holds_slot())
            .map(|s| SlotInfo { id: id_hex(&s.slot_id), request: s.request.clone(), slot_index: s.slot_index })
            .collect()
    }

    /// One sale by slot id.
    pub fn slot_agent(&self, slot_id: &str) -> Result<SlotAgent, MarketError> {
        let id = parse_id(slot_id).ok_or_else(|| MarketError::Invalid("invalid slot id".into()))?;
        self.sales
            .get(&id)
            .map(|s| s.agent())
            .ok_or_else(|| MarketError::NotFound(format!("no sale for slot {slot_id}")))
    }

    /// The reservations drawn from one availability (its live sales); `NotFound` for an unknown
    /// availability. When each ends is read from the chain.
    pub async fn reservations(&self, availability_id: &str) -> Result<Vec<Reservation>, MarketError> {
        let chain = self.host.get().map(|h| &h.chain);
        reservations_of(&self.availabilities, &self.sales, chain, availability_id).await
    }
}

/// The reservations drawn from an availability: a slot's size and collateral for each sale of
/// it that still holds (or may yet hold) its slot, ordered by request and slot. A sale that has
/// not filled its slot holds it until the slot's reservation on chain lapses; a filled one until
/// the request ends (or expires, if it has not started). Without a chain (`None`: the endpoint
/// has not answered since the node started) only an availability without sales can be answered.
async fn reservations_of<C: MarketChain>(
    availabilities: &Availabilities,
    sales: &SaleBook,
    chain: Option<&C>,
    availability_id: &str,
) -> Result<Vec<Reservation>, MarketError> {
    let id = parse_id(availability_id)
        .map(|b| id_hex(&b))
        .ok_or_else(|| MarketError::Invalid(format!("invalid availability id {availability_id:?}")))?;
    if !availabilities.list().iter().any(|a| a.id == id) {
        return Err(MarketError::NotFound(format!("no availability {id}")));
    }
    let mut live: Vec<SaleRecord> =
        sales.all().into_iter().filter(|s| s.availability_id == id && s.state.is_live()).collect();
    live.sort_by_key(|s| (s.request_id, s.slot_index));
    let mut out = Vec::with_capacity(live.len());
    for sale in live {
        let chain = chain.ok_or_else(|| {
            MarketError::Chain(ChainError::Unreachable {
                call: "connect",
                reason: "the chain endpoint has not answered since the node started".into(),
            })
        })?;
        let valid_until = if sale.state.holds_slot() {
            let view = chain.request(sale.request_id).await?;
            if view.ends_at > 0 { view.ends_at } else { view.expires_at }
        } else {
            chain.reservation(sale.request_id, sale.slot_index).await?.lapses_at
        };
        out.push(Reservation {
            id: id_hex(&sale.slot_id),
            availability_id: id.clone(),
            size: sale.request.ask.slot_size,
            request_id: id_hex(&sale.request_id),
            slot_index: sale.slot_index,
            valid_until,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod reservation_tests {
    use alloy::primitives::{Address, B256};
    use contracts::RequestState;

    use super::fake_chain::FakeChain;
    use super::types::{StorageAsk, StorageContent, StorageRequest};
    use super::*;

    fn sale(slot: u8, request: B256, index: u64, availability: &str, state: SaleState) -> SaleRecord {
        let ask = StorageAsk {
            slots: 4,
            slot_size: 1024,
            duration: 3600,
            proof_probability: "1".into(),
            price_per_byte_per_second: "1".into(),
            collateral_per_byte: "1".into(),
            max_slot_loss: 1,
            repair_threshold: 1,
        };
        SaleRecord {
            slot_id: B256::repeat_byte(slot),
            request_id: request,
            slot_index: index,
            request: StorageRequest {
                id: id_hex(&request),
                client: "0x00".into(),
                ask,
                content: StorageContent { cid: "z".into(), merkle_root: "0x00".into() },
                expiry: 600,
                nonce: "0x00".into(),
            },
            state,
            availability_id: availability.to_owned(),
            collateral: "1024".into(),
            cells: None,
            tree: None,
            proofs_submitted: 0,
            last_proven_period: None,
            error: None,
            repair_of: Vec::new(),
            slot_cid: None,
            fills_unanswered: 0,
        }
    }

    #[tokio::test]
    async fn an_availability_lists_its_live_sales_with_when_each_ends() -> Result<(), MarketError> {
        let dir = tempfile::tempdir()?;
        let availabilities = Availabilities::open(RecordDir::open(&dir.path().join("a"))?)?;
        let sales = SaleBook::open(RecordDir::open(&dir.path().join("s"))?)?;
        let input = |size| AvailabilityInput {
            total_size: Some(size),
            duration: Some(3600),
            min_price_per_byte_per_second: Some("1".into()),
            total_collateral: Some("100000".into()),
            enabled: None,
            until: None,
        };
        let mine = availabilities.add(input(1 << 20), u64::MAX)?.id;
        let other = availabilities.add(input(1 << 20), u64::MAX)?.id;
        let chain = FakeChain { world: FakeChain::world(), me: Address::repeat_byte(0xa1) };
        let (started, waiting) = {
            let mut w = chain.lock();
            let started = w.post_request(4, 1024, 1);
            let waiting = w.post_request(4, 1024, 1);
            let r = w.requests.get_mut(&started).expect("posted");
            r.state = RequestState::Started;
            r.ends_at = 9_000;
            let r = w.requests.get_mut(&waiting).expect("posted");
            r.slots[2].lease = Some((chain.me, 1_100));
            (started, waiting)
        };
        sales.save(&sale(1, started, 0, &mine, SaleState::Proving))?;
        sales.save(&sale(2, waiting, 2, &mine, SaleState::Downloading))?;
        sales.save(&sale(3, started, 1, &mine, SaleState::Finished))?; // over: none
        sales.save(&sale(4, started, 3, &other, SaleState::Proving))?; // another availability's

        let found = reservations_of(&availabilities, &sales, Some(&chain), &mine).await?;
        let mut want = vec![
            Reservation {
                id: id_hex(&B256::repeat_byte(1)),
                availability_id: mine.clone(),
                size: 1024,
                request_id: id_hex(&started),
                slot_index: 0,
                valid_until: 9_000,
            },
            Reservation {
                id: id_hex(&B256::repeat_byte(2)),
                availability_id: mine.clone(),
                size: 1024,
                request_id: id_hex(&waiting),
                slot_index: 2,
                valid_until: 1_100,
            },
        ];
        want.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(found, want);

        // The id may come without 0x; an unknown availability is not found.
        let bare = mine.trim_start_matches("0x");
        assert_eq!(reservations_of(&availabilities, &sales, Some(&chain), bare).await?.len(), 2);
        let unknown = id_hex(&B256::repeat_byte(9));
        let err = reservations_of(&availabilities, &sales, Some(&chain), &unknown).await.expect_err("unknown");
        assert!(matches!(err, MarketError::NotFound(_)), "{err}");
        let err = reservations_of(&availabilities, &sales, Some(&chain), "0x12").await.expect_err("invalid");
        assert!(matches!(err, MarketError::Invalid(_)), "{err}");
        // Without a chain, an availability without sales still answers.
        let idle = availabilities.add(input(1024), u64::MAX)?.id;
        assert!(reservations_of::<FakeChain>(&availabilities, &sales, None, &idle).await?.is_empty());
        assert!(reservations_of::<FakeChain>(&availabilities, &sales, None, &mine).await.is_err());
        Ok(())
    }
}
