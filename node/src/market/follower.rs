//! The host's log follower and sale dispatcher. It reads the marketplace's events from a
//! persisted cursor (history on the first start), keeps the requests worth serving in a pending
//! list, and runs [`Host::serve`] for them in a bounded set of supervised tasks (at most
//! `max_sales` at once, one per request). The follower itself never waits on a sale.
//!
//! A request leaves the pending list only when it is served or can no longer be served; one
//! that could not be served now (no availability, every slot reserved or not yet open, the
//! chain away, a task that failed or panicked) is looked at again after `retry_after`, or as soon
//! as an availability changes. The cursor and the pending list are one record, written
//! atomically: a restart resumes with the same requests and reads no block twice or never. Sales
//! a restart cut short are resumed through the same list.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::B256;
use contracts::MarketEvent;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::MarketError;
use super::chain::MarketChain;
use super::host::Host;
use super::records::RecordDir;
use super::sale::SaleState;
use super::selling::Served;
use super::slot_work::SlotWork;
use super::words::id_hex;

const LOG: &str = "vellum::market::follower";

/// A request worth serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The request.
    pub(crate) request_id: B256,
    /// The slots open for repair, for a repair.
    pub(crate) repair: Option<Vec<u64>>,
}

/// What the follower persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FollowerState {
    /// The next block to read.
    pub(crate) next_block: u64,
    /// Requests not yet served.
    pub(crate) pending: Vec<Pending>,
}

const STATE_KEY: &str = "follower";

/// Reads the follower's record (the first start: `start_block`, and the live sales cut short).
pub(crate) fn load_state(records: &RecordDir, start_block: u64) -> Result<FollowerState, MarketError> {
    let mut state = records
        .load_all::<FollowerState>()?
        .into_iter()
        .next()
        .unwrap_or(FollowerState { next_block: start_block, pending: Vec::new() });
    state.pending.dedup();
    Ok(state)
}

/// A pending request's schedule.
struct Slot {
    entry: Pending,
    not_before: Instant,
    failures: u32,
}

impl<C: MarketChain, W: SlotWork> Host<C, W> {
    /// The follower: runs until the host stops.
    pub(crate) async fn follow(self: Arc<Self>) {
        let records = match RecordDir::open(&self.dir.join("follower")) {
            Ok(r) => r,
            Err(e) => {
                error!(target: LOG, error = %e, "follower state unreadable; not following the chain");
                return;
            }
        };
        let mut state = match load_state(&records, self.config.start_block) {
            Ok(s) => s,
            Err(e) => {
                error!(target: LOG, error = %e, "follower state unreadable; not following the chain");
                return;
            }
        };
        // Sales a restart cut short go on through the pending list.
        for sale in self.sales.all() {
            if matches!(sale.state, SaleState::Reserving | SaleState::Downloading | SaleState::Filling) {
                let entry = Pending {
                    request_id: sale.request_id,
                    repair: (!sale.repair_of.is_empty()).then(|| sale.repair_of.clone()),
                };
                if !state.pending.iter().any(|p| p.request_id == entry.request_id) {
                    state.pending.push(entry);
                }
            }
        }
        let now = Instant::now();
        let mut schedule: Vec<Slot> =
            state.pending.iter().cloned().map(|entry| Slot { entry, not_before: now, failures: 0 }).collect();
        let mut saved = FollowerState::default();
        let mut running: JoinSet<(Pending, Result<Served, MarketError>)> = JoinSet::new();
        let mut in_flight: HashMap<B256, tokio::task::Id> = HashMap::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.tick) => {}
                () = self.availabilities.changed() => {
                    let now = Instant::now();
                    for s in &mut schedule { s.not_before = s.not_before.min(now); }
                }
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, outcome) = match done {
                        Ok((id, result)) => (id, Ok(result)),
                        Err(e) => (e.id(), Err(e)),
                    };
                    in_flight.retain(|_, t| *t != id);
                    match outcome {
                        Ok((entry, result)) => self.settle(&mut schedule, entry, result),
                        Err(e) => {
                            // A panic in a sale: seen, and the request looked at again later.
                            error!(target: LOG, error = %e, "a sale task failed");
                        }
                    }
                    self.save_follower(&records, &mut state, &mut saved, &schedule);
                }
            }
            if let Err(e) = self.read_events(&mut state, &mut schedule).await {
                debug!(target: LOG, error = %e, "events not read");
            } else {
                self.save_follower(&records, &mut state, &mut saved, &schedule);
            }
            let now = Instant::now();
            for s in &mut schedule {
                if running.len() >= self.config.max_sales {
                    break;
                }
                if s.not_before > now || in_flight.contains_key(&s.entry.request_id) {
                    continue;
                }
                // Until it reports back, the entry waits as if it failed.
                s.not_before = now + self.config.retry_after;
                let host = Arc::clone(&self);
                let entry = s.entry.clone();
                let handle = running.spawn(async move {
                    let result = host.serve(entry.request_id, entry.repair.clone()).await;
                    (entry, result)
                });
                in_flight.insert(s.entry.request_id, handle.id());
            }
        }
    }

    /// Applies a sale task's outcome to the schedule.
    fn settle(&self, schedule: &mut Vec<Slot>, entry: Pending, result: Result<Served, MarketError>) {
        let request = id_hex(&entry.request_id);
        let Some(at) = schedule.iter().position(|s| s.entry == entry) else { return };
        match result {
            Ok(Served::Holding) => {
                info!(target: LOG, %request, "request served");
                schedule.remove(at);
            }
            Ok(Served::Never(why)) => {
                debug!(target: LOG, %request, why, "request not served");
                schedule.remove(at);
            }
            Ok(Served::Later(why)) => {
                debug!(target: LOG, %request, why, "request passed over for now");
                schedule[at].not_before = Instant::now() + self.config.retry_after;
            }
            Err(e) => {
                let s = &mut schedule[at];
                s.failures = s.failures.saturating_add(1);
                // Back off on repeated failures, up to 16 retry periods.
                let factor = 1u32 << s.failures.min(4);
                s.not_before = Instant::now() + self.config.retry_after * factor;
                if s.failures == 1 || s.failures.is_multiple_of(10) {
                    warn!(target: LOG, %request, failures = s.failures, error = %e, "request not served yet; will try again");
                }
            }
        }
    }

    /// Reads the next range of events into the schedule; the cursor moves only when the range
    /// was read whole.
    async fn read_events(&self, state: &mut FollowerState, schedule: &mut Vec<Slot>) -> Result<(), MarketError> {
        let (head, _) = self.chain.head().await?;
        if state.next_block > head {
            return Ok(());
        }
        let to = head.min(state.next_block.saturating_add(contracts::client::LOG_RANGE - 1));
        let events = self.chain.events(state.next_block, to).await?;
        for event in events {
            let entry = match event {
                MarketEvent::StorageRequested { request_id, .. } => Pending { request_id, repair: None },
                MarketEvent::RepairOpened { request_id, slot_indices } => {
                    Pending { request_id, repair: Some(slot_indices) }
                }
                _ => continue,
            };
            if !schedule.iter().any(|s| s.entry == entry) {
                schedule.push(Slot { entry, not_before: Instant::now(), failures: 0 });
            }
        }
        state.next_block = to + 1;
        Ok(())
    }

    /// Saves the cursor and the pending list when either changed since the last save.
    fn save_follower(
        &self,
        records: &RecordDir,
        state: &mut FollowerState,
        saved: &mut FollowerState,
        schedule: &[Slot],
    ) {
        state.pending = schedule.iter().map(|s| s.entry.clone()).collect();
        if state == saved {
            return;
        }
        match records.save(STATE_KEY, state) {
            Ok(()) => *saved = state.clone(),
            Err(e) => warn!(target: LOG, error = %e, "follower state not saved"),
        }
    }
}
