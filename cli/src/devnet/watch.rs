//! The devnet's timeline: reads the marketplace's logs as blocks arrive and prints what happened
//! (fills, proofs per period, accusations and missed proofs, losses, repair) with the time since the start, naming hosts
//! and slots the way the devnet calls them, and keeps the tallies the summary needs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use contracts::{MarketEvent, Marketplace};

/// Prints lines stamped with the seconds since the devnet started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeline {
    start: Instant,
}

impl Timeline {
    pub(super) fn new() -> Self {
        Self { start: Instant::now() }
    }

    /// Prints one line of the timeline.
    pub(super) fn say(&self, text: impl std::fmt::Display) {
        println!("[{:>6.1}s] {text}", self.start.elapsed().as_secs_f64());
    }

    /// Seconds since the start.
    pub(super) fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// What the chain has said so far.
#[derive(Debug, Default, Clone)]
pub(super) struct Tallies {
    pub(super) fills: u64,
    pub(super) fulfilled: bool,
    pub(super) proofs: u64,
    /// Slots (by index) with at least one accepted proof.
    pub(super) proven_slots: std::collections::BTreeSet<u64>,
    /// Accusations of missing proofs made.
    pub(super) accusations: u64,
    /// Accusations settled as missed proofs.
    pub(super) marks: u64,
    pub(super) lost: Vec<u64>,
    pub(super) repair_opened: Vec<u64>,
    pub(super) repaired: Vec<u64>,
    pub(super) failed: bool,
}

/// Follows the marketplace's logs for one request.
pub(super) struct Watcher {
    provider: DynProvider,
    marketplace: Address,
    next_block: u64,
    names: HashMap<Address, String>,
    slots: HashMap<B256, u64>,
    pub(super) tallies: Tallies,
}

impl Watcher {
    pub(super) fn new(provider: DynProvider, marketplace: Address) -> Self {
        Self {
            provider,
            marketplace,
            next_block: 0,
            names: HashMap::new(),
            slots: HashMap::new(),
            tallies: Tallies::default(),
        }
    }

    /// Names an address in the timeline (hosts, the validator).
    pub(super) fn name(&mut self, address: Address, name: &str) {
        self.names.insert(address, name.to_owned());
    }

    /// Follows `request` (its slot ids, so proofs and marks name their slot's index).
    pub(super) async fn follow(&mut self, request: B256, slots: u64) -> anyhow::Result<()> {
        let market = Marketplace::new(self.marketplace, self.provider.clone());
        for i in 0..slots {
            let id = market.slotId(request, i).call().await?;
            self.slots.insert(id, i);
        }
        Ok(())
    }

    fn who(&self, a: Address) -> String {
        self.names.get(&a).cloned().unwrap_or_else(|| format!("{a:#x}"))
    }

    fn slot(&self, id: &B256) -> String {
        self.slots.get(id).map_or_else(|| format!("{id:#x}"), |i| format!("slot {i}"))
    }

    /// Reads the logs of new blocks and prints them.
    pub(super) async fn poll(&mut self, timeline: &Timeline) -> anyhow::Result<()> {
        let head = self.provider.get_block_number().await?;
        if head < self.next_block {
            return Ok(());
        }
        let filter = Filter::new().address(self.marketplace).from_block(self.next_block).to_block(head);
        let logs = self.provider.get_logs(&filter).await?;
        self.next_block = head + 1;
        let mut proofs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for log in &logs {
            self.apply(log, timeline, &mut proofs);
        }
        for (period, slots) in proofs {
            timeline.say(format_args!("proofs accepted for period {period}: {}", slots.join(", ")));
        }
        Ok(())
    }

    fn apply(&mut self, log: &Log, timeline: &Timeline, proofs: &mut BTreeMap<u64, Vec<String>>) {
        let Some(event) = MarketEvent::decode(log) else { return };
        let t = &mut self.tallies;
        match event {
            MarketEvent::SlotFilled { slot_index, host, .. } => {
                t.fills += 1;
                let who = self.who(host);
                timeline.say(format_args!("slot {slot_index} filled by {who}"));
            }
            MarketEvent::RequestFulfilled { .. } => {
                t.fulfilled = true;
                timeline.say("request started: every slot filled");
            }
            MarketEvent::ProofSubmitted { slot_id, period } => {
                t.proofs += 1;
                if let Some(i) = self.slots.get(&slot_id) {
                    t.proven_slots.insert(*i);
                }
                let slot = self.slot(&slot_id);
                proofs.entry(period).or_default().push(slot);
            }
            MarketEvent::ProofAccused { slot_id, period, accuser, .. } => {
                t.accusations += 1;
                let (slot, who) = (self.slot(&slot_id), self.who(accuser));
                timeline.say(format_args!("{who} accused {slot} of missing its proof of period {period}"));
            }
            MarketEvent::AccusationDismissed { slot_id, period } => {
                let slot = self.slot(&slot_id);
                timeline.say(format_args!("{slot} defended its proof of period {period}: accusation dismissed"));
            }
            MarketEvent::ProofMissed { slot_id, period, missed_proofs, validator } => {
                t.marks += 1;
                let (slot, who) = (self.slot(&slot_id), self.who(validator));
                timeline.say(format_args!(
                    "{who}'s accusation settled: {slot} missed its proof of period {period} (missed {missed_proofs})"
                ));
            }
            MarketEvent::SlotLost { slot_index, host, .. } => {
                t.lost.push(slot_index);
                let who = self.who(host);
                timeline.say(format_args!("slot {slot_index} lost: {who}'s collateral forfeited"));
            }
            MarketEvent::RepairOpened { slot_indices, .. } => {
                timeline.say(format_args!("repair opened for slots {slot_indices:?}"));
                t.repair_opened.extend(slot_indices);
            }
            MarketEvent::SlotRepaired { slot_index, host, .. } => {
                t.repaired.push(slot_index);
                let who = self.who(host);
                timeline.say(format_args!("slot {slot_index} repaired by {who}"));
            }
            MarketEvent::RequestFailed { .. } => {
                t.failed = true;
                timeline.say("request failed: more slots lost than it tolerates");
            }
            MarketEvent::RequestCancelled { .. } => {
                t.failed = true;
                timeline.say("request cancelled: not filled before it expired");
            }
            MarketEvent::StorageRequested { .. }
            | MarketEvent::SlotReserved { .. }
            | MarketEvent::RequestFinished { .. }
            | MarketEvent::SlotFreed { .. }
            | MarketEvent::FundsWithdrawn { .. }
            | MarketEvent::PeriodAnchored { .. } => {}
        }
    }
}
