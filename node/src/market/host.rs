//! The host engine: one [`Host`] owns a host's sales and availabilities and runs them on any
//! [`MarketChain`] and [`SlotWork`]. Its work is split by job: [`super::follower`] reads the
//! marketplace's events and dispatches requests to sale tasks, [`super::selling`] takes a request
//! from reservation to fill, [`super::proving`] proves filled slots and collects their payouts.
//! The sales' records ([`SaleBook`]) are the one place a sale's state changes, through
//! [`Host::apply`], which asks the pure rules of [`super::sale`] and does what they answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alloy::primitives::B256;
use tracing::{info, warn};

use super::MarketError;
use super::availabilities::{Availabilities, Draw};
use super::chain::MarketChain;
use super::records::RecordDir;
use super::sale::{Effect, SaleEvent, SaleRecord, SaleState, next};
use super::slot_work::SlotWork;
use super::words::{id_hex, parse_amount};

const LOG: &str = "vellum::market::host";

/// How the engine runs.
#[derive(Debug, Clone)]
pub(crate) struct HostConfig {
    /// Bytes per slot this host can prove.
    pub(crate) slot_size: u64,
    /// Sales (reservation to fill) under way at once.
    pub(crate) max_sales: usize,
    /// First block read on the first start.
    pub(crate) start_block: u64,
    /// How often the follower and the prover look at the chain.
    pub(crate) tick: Duration,
    /// How long a request that could not be served now waits before it is looked at again
    /// (sooner when an availability changes).
    pub(crate) retry_after: Duration,
    /// The shortest reservation worth taking, in seconds: time to fetch the slot, prove and fill.
    pub(crate) min_lease_secs: u64,
    /// Where periodic proofs go.
    pub(crate) proofs: super::ProofMode,
}

/// The sales, in memory and on disk; a record is saved before the map changes, so what the map
/// says is what a restart will find.
pub(crate) struct SaleBook {
    records: RecordDir,
    sales: Mutex<HashMap<B256, SaleRecord>>,
}

impl SaleBook {
    /// Loads the persisted sales.
    pub(crate) fn open(records: RecordDir) -> Result<Self, MarketError> {
        let sales = records.load_all::<SaleRecord>()?.into_iter().map(|s| (s.slot_id, s)).collect();
        Ok(Self { records, sales: Mutex::new(sales) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<B256, SaleRecord>> {
        self.sales.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves a sale durably (an error means nothing changed).
    pub(crate) fn save(&self, sale: &SaleRecord) -> Result<(), MarketError> {
        self.records.save(&format!("{:x}", sale.slot_id), sale)?;
        self.lock().insert(sale.slot_id, sale.clone());
        Ok(())
    }

    /// Drops a sale that never reserved its slot (nothing of it is on chain).
    pub(crate) fn forget(&self, sale: &SaleRecord) -> Result<(), MarketError> {
        self.records.remove(&format!("{:x}", sale.slot_id))?;
        self.lock().remove(&sale.slot_id);
        Ok(())
    }

    /// Every sale.
    pub(crate) fn all(&self) -> Vec<SaleRecord> {
        self.lock().values().cloned().collect()
    }

    /// One sale.
    pub(crate) fn get(&self, slot_id: &B256) -> Option<SaleRecord> {
        self.lock().get(slot_id).cloned()
    }

    /// The live sale of a request, if any (a host holds at most one slot of a request).
    pub(crate) fn live_for(&self, request_id: &B256) -> Option<SaleRecord> {
        self.lock().values().find(|s| s.request_id == *request_id && s.state.is_live()).cloned()
    }

    /// What each sale holds of its availability: (availability, size, collateral) for live
    /// sales, and (availability, 0, collateral) for failed ones (their collateral is gone).
    pub(crate) fn held(&self) -> Vec<(String, u64, u128)> {
        self.lock()
            .values()
            .filter_map(|s| {
                let collateral = parse_amount(&s.collateral).unwrap_or(0);
                match s.state {
                    state if state.is_live() => Some((s.availability_id.clone(), s.request.ask.slot_size, collateral)),
                    SaleState::Failed => Some((s.availability_id.clone(), 0, collateral)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Slots of a request this host gave up (it may still hold their reservations).
    pub(crate) fn given_up(&self, request_id: &B256) -> Vec<u64> {
        self.lock()
            .values()
            .filter(|s| s.request_id == *request_id && s.state == SaleState::Errored)
            .map(|s| s.slot_index)
            .collect()
    }
}

/// A host: its chain, its slot work, its availabilities and its sales.
pub(crate) struct Host<C, W> {
    pub(crate) chain: C,
    pub(crate) work: W,
    pub(crate) availabilities: Arc<Availabilities>,
    pub(crate) sales: Arc<SaleBook>,
    /// Where the follower keeps its cursor and its pending requests.
    pub(crate) dir: PathBuf,
    /// The periodic proofs made, kept for validators and accusations.
    pub(crate) outbox: Arc<Mutex<super::outbox::Outbox>>,
    pub(crate) config: HostConfig,
}

impl<C: MarketChain, W: SlotWork> Host<C, W> {
    /// Moves a sale on by `event`: records the new state first, then deletes data and gives the
    /// availability back as the rules say.
    pub(crate) async fn apply(&self, sale: &mut SaleRecord, event: SaleEvent) -> Result<(), MarketError> {
        let (to, effects) = next(sale.state, event).map_err(|e| MarketError::Local(e.to_string()))?;
        let from = sale.state;
        sale.state = to;
        self.sales.save(sale)?;
        if from != to {
            info!(target: LOG, slot = %id_hex(&sale.slot_id), index = sale.slot_index, ?from, ?to, "sale moved on");
        }
        for effect in effects {
            match effect {
                Effect::DeleteData => {
                    self.work.delete(sale).await;
                    sale.cells = None;
                    sale.tree = None;
                    sale.slot_cid = None;
                    self.sales.save(sale)?;
                }
                Effect::ReturnToAvailability { collateral } => {
                    let draw = Draw {
                        id: sale.availability_id.clone(),
                        size: sale.request.ask.slot_size,
                        collateral: parse_amount(&sale.collateral).unwrap_or(0),
                    };
                    if let Err(e) = self.availabilities.give_back(&draw, *collateral) {
                        warn!(target: LOG, slot = %id_hex(&sale.slot_id), error = %e, "availability not given back");
                    }
                }
            }
        }
        Ok(())
    }
}
