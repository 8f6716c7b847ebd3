//! The devnet's timeline: reads the marketplace's logs as blocks arrive and prints what happened
//! (fills, proofs per period, accusations and missed proofs, losses, repair) with the time since the start, naming hosts
//! and slots the way the devnet calls them, and keeps the tallies the summary needs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use contracts::Marketplace;

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
        let Some(topic) = log.topic0().copied() else { return };
        let t = &mut self.tallies;
        if let Ok(e) = log.log_decode::<Marketplace::SlotFilled>() {
            let e = e.inner.data;
            t.fills += 1;
            let who = self.who(e.host);
            timeline.say(format_args!("slot {} filled by {who}", e.slotIndex));
        } else if topic == Marketplace::RequestFulfilled::SIGNATURE_HASH {
            t.fulfilled = true;
            timeline.say("request started: every slot filled");
        } else if let Ok(e) = log.log_decode::<Marketplace::ProofSubmitted>() {
            let e = e.inner.data;
            t.proofs += 1;
            if let Some(i) = self.slots.get(&e.slotId) {
                t.proven_slots.insert(*i);
            }
            let slot = self.slot(&e.slotId);
            proofs.entry(e.period.saturating_to()).or_default().push(slot);
        } else if let Ok(e) = log.log_decode::<Marketplace::ProofAccused>() {
            let e = e.inner.data;
            t.accusations += 1;
            let (slot, who) = (self.slot(&e.slotId), self.who(e.accuser));
            timeline.say(format_args!("{who} accused {slot} of missing its proof of period {}", e.period));
        } else if let Ok(e) = log.log_decode::<Marketplace::AccusationDismissed>() {
            let e = e.inner.data;
            let slot = self.slot(&e.slotId);
            timeline.say(format_args!("{slot} defended its proof of period {}: accusation dismissed", e.period));
        } else if let Ok(e) = log.log_decode::<Marketplace::ProofMissed>() {
            let e = e.inner.data;
            t.marks += 1;
            let (slot, who) = (self.slot(&e.slotId), self.who(e.validator));
            timeline.say(format_args!(
                "{who}'s accusation settled: {slot} missed its proof of period {} (missed {})",
                e.period, e.missedProofs
            ));
        } else if let Ok(e) = log.log_decode::<Marketplace::SlotLost>() {
            let e = e.inner.data;
            t.lost.push(e.slotIndex.saturating_to());
            let who = self.who(e.host);
            timeline.say(format_args!("slot {} lost: {who}'s collateral forfeited", e.slotIndex));
        } else if let Ok(e) = log.log_decode::<Marketplace::RepairOpened>() {
            let indices: Vec<u64> = e.inner.data.slotIndices.iter().map(|i| i.saturating_to()).collect();
            timeline.say(format_args!("repair opened for slots {indices:?}"));
            t.repair_opened.extend(indices);
        } else if let Ok(e) = log.log_decode::<Marketplace::SlotRepaired>() {
            let e = e.inner.data;
            t.repaired.push(e.slotIndex.saturating_to());
            let who = self.who(e.host);
            timeline.say(format_args!("slot {} repaired by {who}", e.slotIndex));
        } else if topic == Marketplace::RequestFailed::SIGNATURE_HASH {
            t.failed = true;
            timeline.say("request failed: more slots lost than it tolerates");
        } else if topic == Marketplace::RequestCancelled::SIGNATURE_HASH {
            t.failed = true;
            timeline.say("request cancelled: not filled before it expired");
        }
    }
}
