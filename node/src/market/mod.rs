//! The marketplace side of a node (persistence mode): buying storage as a client
//! ([`purchasing`]), selling it as a host ([`sales`]) and proving what it sells ([`proving`]).
//!
//! One [`Market`] per node owns the chain handle, the prover and the records; background tasks
//! follow the chain (new requests from the marketplace's logs, request states, periods) and act.
//! Every task survives an unreachable endpoint: a failed round is logged at debug level (the
//! endpoint's going down and coming back are logged once each by [`contracts::client`]) and retried
//! on the next tick. Records are written before and after each chain transaction, so a restarted
//! node resumes where it was: a host that had filled a slot goes back to proving it without
//! downloading it again.

mod proving;
mod purchasing;
mod records;
mod sales;
pub mod types;
mod words;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alloy::primitives::B256;
use circuits::r1cs::ProofShape;
use prover::Prover;
use tracing::info;

use self::records::RecordDir;
pub use self::sales::SaleRecord;

/// `prover`'s EVM verifying key in the plain form the contracts are deployed and checked with
/// (the same words in the same order: `contracts` depends on no proving code).
pub fn verifying_key_words(vk: &prover::EvmVerifyingKey) -> contracts::VerifyingKeyWords {
    contracts::VerifyingKeyWords { alpha: vk.alpha, beta: vk.beta, gamma: vk.gamma, delta: vk.delta, ic: vk.ic.clone() }
}
use self::types::{Availability, Purchase};
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::net::NetworkHandle;
use crate::store::BlockStore;
use contracts::client::{Chain, ChainConfig, ChainError};

const LOG: &str = "vellum::market";

/// How often the background tasks look at the chain.
pub const TICK: Duration = Duration::from_millis(500);

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

/// The node's marketplace state.
pub struct Market {
    chain: Chain,
    store: Arc<BlockStore>,
    fetcher: Arc<Fetcher>,
    net: NetworkHandle,
    prover: Arc<Prover>,
    shape: ProofShape,
    dir: PathBuf,
    purchase_records: RecordDir,
    availability_records: RecordDir,
    sale_records: RecordDir,
    purchases: Mutex<HashMap<String, Purchase>>,
    availabilities: Mutex<Vec<Availability>>,
    sales: Mutex<HashMap<B256, SaleRecord>>,
    /// One sale at a time reserves, downloads and fills (collateral approvals stay in order).
    selling: tokio::sync::Mutex<()>,
    /// Requests seen waiting for hosts that this node did not take (looked at again when an
    /// availability is added or changed); bounded.
    passed_over: Mutex<std::collections::VecDeque<(B256, Option<Vec<u64>>)>>,
    /// Set when availabilities change.
    availability_changed: std::sync::atomic::AtomicBool,
    /// One proof at a time (a proof takes both cores and up to a few GB).
    proving: tokio::sync::Mutex<()>,
    /// The node's counters (bytes fetched for sales and repairs, fills, proofs).
    metrics: Arc<Metrics>,
    /// Fault injection: see [`MarketConfig::fault_corrupt_cells_percent`].
    fault_corrupt_cells_percent: u8,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("chain", &self.chain).field("shape", &self.shape).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Market {
    /// Loads the key and the records, connects to the chain and starts the background tasks.
    pub async fn start(
        config: MarketConfig,
        data_dir: &Path,
        store: Arc<BlockStore>,
        fetcher: Arc<Fetcher>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
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
        let chain = Chain::connect(&config.chain).await?;
        let dir = data_dir.join("market");
        let purchase_records = RecordDir::open(&dir.join("purchases"))?;
        let availability_records = RecordDir::open(&dir.join("availabilities"))?;
        let sale_records = RecordDir::open(&dir.join("sales"))?;
        let purchases =
            purchase_records.load_all::<Purchase>()?.into_iter().map(|p| (p.request_id.clone(), p)).collect();
        let availabilities = availability_records.load_all::<Availability>()?;
        let sales = sale_records.load_all::<SaleRecord>()?.into_iter().map(|s| (s.slot_id, s)).collect();
        let market = Arc::new(Self {
            chain,
            store,
            fetcher,
            net,
            prover,
            shape,
            dir,
            purchase_records,
            availability_records,
            sale_records,
            purchases: Mutex::new(purchases),
            availabilities: Mutex::new(availabilities),
            sales: Mutex::new(sales),
            selling: tokio::sync::Mutex::new(()),
            passed_over: Mutex::new(std::collections::VecDeque::new()),
            availability_changed: std::sync::atomic::AtomicBool::new(false),
            proving: tokio::sync::Mutex::new(()),
            metrics,
            fault_corrupt_cells_percent: config.fault_corrupt_cells_percent,
        });
        info!(
            target: LOG,
            address = %market.chain.address(),
            marketplace = %market.chain.marketplace_address(),
            samples = shape.samples,
            slot_bytes = shape.slot_cells() * shape.cell_size as u64,
            "persistence mode"
        );
        tokio::spawn(purchasing::watch(Arc::clone(&market)));
        tokio::spawn(sales::follow(Arc::clone(&market), config.start_block));
        tokio::spawn(proving::run(Arc::clone(&market)));
        Ok(market)
    }

    /// The chain handle.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Bytes per slot this node's proofs are made for.
    pub fn slot_size(&self) -> u64 {
        self.shape.slot_cells() * self.shape.cell_size as u64
    }
}
