//! The host side: availabilities (storage offered for sale), and the sales made from them.
//!
//! [`follow`] reads the marketplace's logs from a persisted cursor (replaying history on the
//! first start) and, for each new request, checks it against the availabilities: slot size equal
//! to this node's proof shape, duration, price, collateral, end date. A match becomes a sale: one
//! slot per request per host, tried in an order of its own so hosts spread over the slots;
//! reserve it (an exclusive lease that costs a deposit and lapses; fair dispersal opens each slot
//! to hosts one after the other, so a slot not yet open to this host, or held by another, is
//! looked at again a few seconds later without holding up the log follower), fetch the slot over
//! block exchange, check its root against the protected manifest and the request's dataset root,
//! then fill it, before the lease lapses, with a proof bound to this host's address and the rest
//! of the collateral. Proving then belongs
//! to [`super::proving`]. Each step is recorded before it is taken, so a restarted host resumes.

use std::path::PathBuf;
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolEvent;
use contracts::Marketplace::{self, Request};
use contracts::RequestState;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::purchasing::request_json;
use super::types::{Availability, AvailabilityInput, SlotAgent, SlotInfo, StorageRequest};
use super::words::{fr_word, id_hex, parse_amount, parse_id};
use super::{LOG, Market, MarketError, TICK, lock};
use crate::content::ContentId;

/// Where a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaleState {
    /// Reserved; fetching and checking the slot.
    Downloading,
    /// Slot held and checked; filling it on chain.
    Filling,
    /// Filled; proving every period that requires it.
    Proving,
    /// The request ended; collecting the payout.
    Payout,
    /// Paid out.
    Finished,
    /// The slot was lost or the request failed and nothing is owed.
    Failed,
    /// The request expired before it started; collateral and pay for the time held returned.
    Cancelled,
    /// Gave up on this slot (another host took it, or it could not be fetched or checked).
    Errored,
}

/// One sale, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleRecord {
    /// The slot.
    pub slot_id: B256,
    /// Its request.
    pub request_id: B256,
    /// Its index.
    pub slot_index: u64,
    /// The request as it was read from the chain.
    pub request: StorageRequest,
    /// Where it stands.
    pub state: SaleState,
    /// The availability it draws on.
    pub availability_id: String,
    /// Collateral put up (decimal).
    pub collateral: String,
    /// The slot's cells (a dataset's data file), once accepted.
    pub cells: Option<PathBuf>,
    /// The slot's tree, once accepted.
    pub tree: Option<PathBuf>,
    /// Accepted periodic proofs.
    pub proofs_submitted: u64,
    /// The last period proven (the fill counts).
    pub last_proven_period: Option<u64>,
    /// Why it failed or errored.
    pub error: Option<String>,
    /// For a repair: every slot that repair opened with this one (lost together).
    #[serde(default)]
    pub repair_of: Vec<u64>,
    /// The slot dataset's manifest CID, once fetched.
    #[serde(default)]
    pub slot_cid: Option<String>,
}

impl SaleRecord {
    fn agent(&self) -> SlotAgent {
        SlotAgent {
            slot_index: self.slot_index,
            request_id: id_hex(&self.request_id),
            request: self.request.clone(),
            state: format!("Sale{:?}", self.state),
            proofs_submitted: self.proofs_submitted,
            error: self.error.clone(),
        }
    }
}

/// Requests passed over that are remembered for another look.
const PASSED_OVER_LIMIT: usize = 1024;
/// Ticks between looks at the requests passed over (every 5 s).
const RETRY_PASSED_OVER_TICKS: u64 = 10;

/// How long a host repairing a lost slot other than the first waits for the first one's repairer
/// to publish the regenerated slots before it decodes on its own.
const HANDOFF_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The shortest reservation worth taking, in seconds: time to fetch the slot, prove and fill.
const MIN_LEASE_SECS: u64 = 15;

/// What became of a reservation attempt.
enum Reservation {
    /// Reserved now (the deposit paid).
    Taken,
    /// This host already held the reservation (from a sale it gave up): it fills with it.
    Held,
    /// Fair dispersal has not yet opened the slot to this host (see the contract's `eligibleAt`).
    NotYetEligible,
    /// Not reservable by this host now, and why.
    Unavailable(&'static str),
}

/// How often it looks for the regenerated slot meanwhile.
const HANDOFF_POLL: std::time::Duration = std::time::Duration::from_secs(3);

fn invalid(text: impl Into<String>) -> MarketError {
    MarketError::Invalid(text.into())
}

impl Market {
    // ------------------------------------------------------------------ availabilities

    /// Adds an availability.
    pub fn add_availability(&self, input: AvailabilityInput) -> Result<Availability, MarketError> {
        let total_size = input.total_size.filter(|s| *s > 0).ok_or_else(|| invalid("totalSize must be positive"))?;
        let duration = input.duration.filter(|d| *d > 0).ok_or_else(|| invalid("duration must be positive"))?;
        let price =
            input.min_price_per_byte_per_second.ok_or_else(|| invalid("minPricePerBytePerSecond is required"))?;
        parse_amount(&price).ok_or_else(|| invalid("minPricePerBytePerSecond must be a decimal string"))?;
        let collateral = input.total_collateral.ok_or_else(|| invalid("totalCollateral is required"))?;
        parse_amount(&collateral).ok_or_else(|| invalid("totalCollateral must be a decimal string"))?;
        let space = self.store.space()?;
        let free = space.quota_max_bytes.saturating_sub(space.quota_used_bytes + space.quota_reserved_bytes);
        let offered: u64 = lock(&self.availabilities).iter().map(|a| a.free_size).sum();
        if total_size > free.saturating_sub(offered) {
            return Err(invalid(format!(
                "not enough storage quota: {total_size} bytes asked, {} available",
                free.saturating_sub(offered)
            )));
        }
        let a = Availability {
            id: id_hex(&B256::from(rand::random::<[u8; 32]>())),
            total_size,
            free_size: total_size,
            duration,
            min_price_per_byte_per_second: price,
            total_remaining_collateral: collateral.clone(),
            total_collateral: collateral,
            enabled: input.enabled.unwrap_or(true),
            until: input.until.unwrap_or(0),
        };
        self.save_availability(&a)?;
        info!(target: LOG, id = %a.id, total_size, "availability added");
        Ok(a)
    }

    /// Changes an availability; sizes and collateral already in use stay in use.
    pub fn update_availability(&self, id: &str, input: AvailabilityInput) -> Result<(), MarketError> {
        let id =
            parse_id(id).map(|b| id_hex(&b)).ok_or_else(|| MarketError::Invalid("invalid availability id".into()))?;
        let mut a = lock(&self.availabilities)
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| MarketError::NotFound(format!("no availability {id}")))?;
        if let Some(total) = input.total_size {
            let used = a.total_size - a.free_size;
            if total < used || total == 0 {
                return Err(invalid(format!("totalSize must be positive and at least the {used} bytes in use")));
            }
            a.free_size = total - used;
            a.total_size = total;
        }
        if let Some(d) = input.duration {
            if d == 0 {
                return Err(invalid("duration must be positive"));
            }
            a.duration = d;
        }
        if let Some(p) = input.min_price_per_byte_per_second {
            parse_amount(&p).ok_or_else(|| invalid("minPricePerBytePerSecond must be a decimal string"))?;
            a.min_price_per_byte_per_second = p;
        }
        if let Some(c) = input.total_collateral {
            let new = parse_amount(&c).ok_or_else(|| invalid("totalCollateral must be a decimal string"))?;
            let old = parse_amount(&a.total_collateral).unwrap_or(0);
            let remaining = parse_amount(&a.total_remaining_collateral).unwrap_or(0);
            let used = old.saturating_sub(remaining);
            if new < used {
                return Err(invalid(format!("totalCollateral must be at least the {used} in use")));
            }
            a.total_collateral = c;
            a.total_remaining_collateral = (new - used).to_string();
        }
        if let Some(e) = input.enabled {
            a.enabled = e;
        }
        if let Some(u) = input.until {
            a.until = u;
        }
        self.save_availability(&a)
    }

    fn save_availability(&self, a: &Availability) -> Result<(), MarketError> {
        self.availability_records.save(a.id.trim_start_matches("0x"), a)?;
        self.availability_changed.store(true, std::sync::atomic::Ordering::Release);
        let mut all = lock(&self.availabilities);
        match all.iter_mut().find(|x| x.id == a.id) {
            Some(x) => *x = a.clone(),
            None => all.push(a.clone()),
        }
        Ok(())
    }

    /// Every availability.
    pub fn availabilities(&self) -> Vec<Availability> {
        lock(&self.availabilities).clone()
    }

    /// Returns a slot's size and collateral to its availability.
    pub(super) fn release(&self, id: &str, size: u64, collateral: u128) {
        self.draw(id, size, collateral, true);
    }

    /// Takes (or, with `give_back`, returns) a slot's size and collateral from an availability.
    fn draw(&self, id: &str, size: u64, collateral: u128, give_back: bool) {
        let found = lock(&self.availabilities).iter().find(|a| a.id == id).cloned();
        if let Some(mut a) = found {
            let remaining = parse_amount(&a.total_remaining_collateral).unwrap_or(0);
            if give_back {
                a.free_size = (a.free_size + size).min(a.total_size);
                a.total_remaining_collateral = remaining.saturating_add(collateral).to_string();
            } else {
                a.free_size = a.free_size.saturating_sub(size);
                a.total_remaining_collateral = remaining.saturating_sub(collateral).to_string();
            }
            if let Err(e) = self.save_availability(&a) {
                warn!(target: LOG, error = %e, "availability not saved");
            }
        }
    }

    /// The availability that takes a request, if any.
    fn matching(&self, ask: &Marketplace::Ask, ends_at: u64) -> Option<Availability> {
        let collateral = u128::from(ask.slotSize).saturating_mul(ask.collateralPerByte);
        lock(&self.availabilities)
            .iter()
            .find(|a| {
                a.enabled
                    && a.free_size >= ask.slotSize
                    && a.duration >= ask.duration
                    && parse_amount(&a.min_price_per_byte_per_second).is_some_and(|p| p <= ask.pricePerBytePerSecond)
                    && parse_amount(&a.total_remaining_collateral).is_some_and(|c| c >= collateral)
                    && (a.until == 0 || a.until >= ends_at)
            })
            .cloned()
    }

    // ------------------------------------------------------------------ sales

    pub(super) fn save_sale(&self, s: &SaleRecord) {
        if let Err(e) = self.sale_records.save(&format!("{:x}", s.slot_id), s) {
            warn!(target: LOG, slot = %id_hex(&s.slot_id), error = %e, "sale not saved");
        }
        lock(&self.sales).insert(s.slot_id, s.clone());
    }

    pub(super) fn sales_snapshot(&self) -> Vec<SaleRecord> {
        lock(&self.sales).values().cloned().collect()
    }

    /// Slots this node holds (sales not yet ended).
    pub fn active_slots(&self) -> Vec<SlotInfo> {
        lock(&self.sales)
            .values()
            .filter(|s| matches!(s.state, SaleState::Filling | SaleState::Proving | SaleState::Payout))
            .map(|s| SlotInfo { id: id_hex(&s.slot_id), request: s.request.clone(), slot_index: s.slot_index })
            .collect()
    }

    /// One sale by slot id.
    pub fn slot_agent(&self, slot_id: &str) -> Result<SlotAgent, MarketError> {
        let id = parse_id(slot_id).ok_or_else(|| invalid("invalid slot id"))?;
        lock(&self.sales)
            .get(&id)
            .map(SaleRecord::agent)
            .ok_or_else(|| MarketError::NotFound(format!("no sale for slot {slot_id}")))
    }

    /// Considers a request (new, or with `repair` slots open for repair): when an availability
    /// takes it and this node holds none of its slots, tries the slots until one is filled.
    async fn consider(&self, request_id: B256, repair: Option<Vec<u64>>) -> Result<(), MarketError> {
        // A host holds at most one slot of a request; a sale it gave up does not count.
        let holding = |s: &SaleRecord| {
            s.request_id == request_id
                && matches!(
                    s.state,
                    SaleState::Downloading | SaleState::Filling | SaleState::Proving | SaleState::Payout
                )
        };
        if lock(&self.sales).values().any(holding) {
            return Ok(());
        }
        let m = self.chain.market();
        let waiting = if repair.is_some() { RequestState::Started } else { RequestState::New };
        if RequestState::try_from(self.chain.read("requestState", m.requestState(request_id)).await?) != Ok(waiting) {
            return Ok(()); // not waiting for hosts
        }
        let request: Request = self.chain.read("getRequest", m.getRequest(request_id)).await?;
        if request.ask.slotSize != self.slot_size() {
            debug!(target: LOG, request = %id_hex(&request_id), slot_size = request.ask.slotSize, "ignored: slot size differs from this node's proofs");
            return Ok(());
        }
        let (_, ends_at, expires_at) = self.chain.read("requestTimes", m.requestTimes(request_id)).await?.into();
        let Some(availability) = self.matching(&request.ask, ends_at) else {
            debug!(target: LOG, request = %id_hex(&request_id), "passed over: no availability matches");
            self.pass_over(request_id, repair);
            return Ok(());
        };
        let _turn = self.selling.lock().await;
        // A reservation lapses after reservationDuration, and at the latest when the fill round
        // closes (the request's expiry, or its end for a repair): too short a lease is not taken.
        let (_, now) = self.chain.head().await?;
        let closes_at = if repair.is_some() { ends_at.saturating_sub(1) } else { expires_at };
        let lapses_at = now.saturating_add(self.chain.params().reservation_duration).min(closes_at);
        if lapses_at < now.saturating_add(MIN_LEASE_SECS) {
            debug!(target: LOG, request = %id_hex(&request_id), lapses_at, now, "ignored: too little time left to fill a slot");
            return Ok(());
        }
        // Each host starts at a slot of its own choosing, so hosts spread over the slots (and
        // fair dispersal lets each host reserve some slots before the others).
        let repair_set = repair.clone().unwrap_or_default();
        let first_lost = repair_set.iter().min().copied();
        let candidates: Vec<u64> = repair.unwrap_or_else(|| (0..u64::from(request.ask.slots)).collect());
        // Repairers all go for the first lost slot first: whoever reserves it (the reservation
        // is exclusive) regenerates every lost slot, the others take the remaining ones and
        // fetch them from it.
        let start = match first_lost {
            Some(first) => candidates.iter().position(|i| *i == first).unwrap_or(0),
            None => rand::random::<u64>() as usize % candidates.len().max(1),
        };
        let mut order: Vec<u64> = (0..candidates.len()).map(|i| candidates[(start + i) % candidates.len()]).collect();
        // Slots of sales this host gave up come first: it may still hold their reservation
        // (and its deposit), which it should use rather than leave to lapse while it reserves
        // another slot.
        let given_up: Vec<u64> = lock(&self.sales)
            .values()
            .filter(|s| s.request_id == request_id && s.state == SaleState::Errored)
            .map(|s| s.slot_index)
            .collect();
        order.sort_by_key(|i| !given_up.contains(i));
        let collateral = u128::from(request.ask.slotSize).saturating_mul(request.ask.collateralPerByte);
        for index in order {
            let slot_id = self.chain.read("slotId", m.slotId(request_id, index)).await?;
            let mut sale = SaleRecord {
                slot_id,
                request_id,
                slot_index: index,
                request: request_json(&request_id, &request),
                state: SaleState::Downloading,
                availability_id: availability.id.clone(),
                collateral: collateral.to_string(),
                cells: None,
                tree: None,
                proofs_submitted: 0,
                last_proven_period: None,
                error: None,
                repair_of: repair_set.clone(),
                slot_cid: None,
            };
            // Reservations outlive sales: a host that gave up on this slot earlier (its fetch
            // failed, say) still holds its reservation until it lapses, and tries again with it.
            let reserved_before = match self.reserve(request_id, index, U256::from(collateral), now).await? {
                Reservation::Taken => false,
                Reservation::Held => true,
                Reservation::Unavailable(why) => {
                    debug!(target: LOG, request = %id_hex(&request_id), slot = index, why, "slot not reserved");
                    continue;
                }
                Reservation::NotYetEligible if Some(index) == first_lost => {
                    // Nobody holds the first lost slot yet: taking another lost slot would only
                    // wait for a repairer of the first that may never come. Wait until the
                    // first one opens to this host (within the dispersal window).
                    debug!(target: LOG, request = %id_hex(&request_id), slot = index, "first lost slot not yet open to this host");
                    break;
                }
                Reservation::NotYetEligible => {
                    debug!(target: LOG, request = %id_hex(&request_id), slot = index, "slot not yet open to this host (dispersal)");
                    continue;
                }
            };
            self.draw(&availability.id, request.ask.slotSize, collateral, false);
            self.save_sale(&sale);
            info!(target: LOG, request = %id_hex(&request_id), slot = index, reserved_before, "slot reserved");
            match self.download_and_fill(&mut sale, &request).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(target: LOG, request = %id_hex(&request_id), slot = index, error = %e, "sale abandoned");
                    sale.state = SaleState::Errored;
                    sale.error = Some(e.to_string());
                    self.discard_slot_data(&mut sale);
                    self.save_sale(&sale);
                    self.draw(&availability.id, request.ask.slotSize, collateral, true);
                    if matches!(e, MarketError::Chain(ref c) if c.is_unreachable()) {
                        return Err(e);
                    }
                }
            }
        }
        // Every slot was taken, reserved by other hosts or not yet open to this one (fair
        // dispersal): reservations lapse and dispersal windows widen, so look again in a while.
        let repair = if repair_set.is_empty() { None } else { Some(repair_set) };
        self.pass_over(request_id, repair);
        Ok(())
    }

    /// Takes the reservation of slot `index` for this host, paying its deposit, unless the host
    /// holds it already. A slot reserved by another host, not yet open to this host (fair
    /// dispersal: see the contract's `eligibleAt`), filled or closed is reported unavailable
    /// without sending anything when the views tell; the reservation's own revert says so
    /// otherwise (the chain moved on between the views and the transaction).
    async fn reserve(
        &self,
        request_id: B256,
        index: u64,
        collateral: U256,
        now: u64,
    ) -> Result<Reservation, MarketError> {
        let m = self.chain.market();
        let me = self.chain.address();
        let lease = self.chain.read("reservation", m.reservation(request_id, index)).await?;
        if lease.lapsesAt >= now && lease.holder != Address::ZERO {
            return Ok(if lease.holder == me {
                Reservation::Held
            } else {
                Reservation::Unavailable("reserved by another host")
            });
        }
        let eligible = match self.chain.read("eligibleAt", m.eligibleAt(request_id, index, me)).await {
            Ok(at) => at,
            Err(e) if e.revert_reason().is_some() => return Ok(Reservation::Unavailable("filled or closed")),
            Err(e) => return Err(e.into()),
        };
        if eligible > U256::from(now) {
            return Ok(Reservation::NotYetEligible);
        }
        let deposit = self.chain.params().deposit(collateral);
        if deposit > U256::ZERO {
            let token = self.chain.token();
            let market = self.chain.marketplace_address();
            if self.chain.read("allowance", token.allowance(me, market)).await? < deposit {
                self.chain.send("approve", token.approve(market, deposit)).await?;
            }
        }
        match self.chain.send("reserveSlot", m.reserveSlot(request_id, index)).await {
            Ok(_) => Ok(Reservation::Taken),
            Err(e) => match e.market_error() {
                Some(contracts::MarketError::AlreadyReserved) => Ok(Reservation::Held),
                Some(contracts::MarketError::SlotReservedByOther) => {
                    Ok(Reservation::Unavailable("reserved by another host"))
                }
                Some(contracts::MarketError::NotYetEligible) => Ok(Reservation::NotYetEligible),
                _ if e.revert_reason().is_some() => Ok(Reservation::Unavailable("filled or closed")),
                _ => Err(e.into()),
            },
        }
    }

    /// Remembers a request to look at again (when availabilities change, and every few seconds).
    fn pass_over(&self, request_id: B256, repair: Option<Vec<u64>>) {
        let mut passed = lock(&self.passed_over);
        let entry = (request_id, repair);
        if !passed.contains(&entry) {
            if passed.len() >= PASSED_OVER_LIMIT {
                passed.pop_front();
            }
            passed.push_back(entry);
        }
    }

    /// Fetches the slot, checks it, and fills it (resuming from the recorded step).
    pub(super) async fn download_and_fill(&self, sale: &mut SaleRecord, request: &Request) -> Result<(), MarketError> {
        let m = self.chain.market();
        if sale.state == SaleState::Downloading {
            let (cells, tree, cid) = self.fetch_slot(sale, request).await?;
            sale.slot_cid = Some(cid.to_string());
            sale.cells = Some(cells);
            sale.tree = Some(tree);
            sale.state = SaleState::Filling;
            self.save_sale(sale);
        }
        if sale.state == SaleState::Filling {
            // A restart between the fill's transaction and its record: the chain knows.
            if self.chain.read("getHost", m.getHost(sale.slot_id)).await? == self.chain.address() {
                sale.state = SaleState::Proving;
                self.save_sale(sale);
                return Ok(());
            }
            // The reservation's deposit counts towards the collateral: the fill takes the rest
            // (less the repair reward for a repair).
            let collateral = U256::from(parse_amount(&sale.collateral).unwrap_or(0));
            let rest = collateral.saturating_sub(self.chain.params().deposit(collateral));
            let token = self.chain.token();
            if rest > U256::ZERO {
                self.chain.send("approve", token.approve(self.chain.marketplace_address(), rest)).await?;
            }
            let mut last = None;
            for _ in 0..3 {
                let (period, proof) = self.prove_fill(sale).await?;
                match self.chain.send("fillSlot", m.fillSlot(sale.request_id, sale.slot_index, proof)).await {
                    Ok(_) => {
                        sale.state = SaleState::Proving;
                        sale.last_proven_period = Some(period);
                        self.save_sale(sale);
                        self.metrics.slots_filled.inc();
                        info!(target: LOG, request = %id_hex(&sale.request_id), slot = sale.slot_index, "slot filled");
                        if self.fault_corrupt_cells_percent > 0
                            && let Some(cells) = &sale.cells
                        {
                            let percent = self.fault_corrupt_cells_percent;
                            match corrupt_cells(cells, self.shape.cell_size, percent) {
                                Ok(n) => {
                                    warn!(target: LOG, slot = sale.slot_index, cells = n, percent, "fault injection: slot cells corrupted")
                                }
                                Err(e) => warn!(target: LOG, error = %e, "fault injection failed"),
                            }
                        }
                        return Ok(());
                    }
                    // the period (and so the challenge) moved on while proving: prove again
                    Err(e) if e.market_error() == Some(contracts::MarketError::InvalidProof) => last = Some(e),
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(last.map_or_else(|| MarketError::Local("fill failed".into()), MarketError::from));
        }
        Ok(())
    }

    /// Fetches slot `sale.slot_index` of the request's dataset and checks it.
    async fn fetch_slot(
        &self,
        sale: &SaleRecord,
        request: &Request,
    ) -> Result<(PathBuf, PathBuf, ContentId), MarketError> {
        let cid_text =
            String::from_utf8(request.content.cid.to_vec()).map_err(|_| invalid("request CID is not text"))?;
        let cid: ContentId = cid_text.parse().map_err(|e| invalid(format!("request CID {cid_text}: {e}")))?;
        let protected = self.fetcher.manifest(&cid).await.map_err(|e| MarketError::Local(e.to_string()))?;
        let (layout, verification) = crate::slots::layout_of(&protected)?;
        if layout.slot_count() as u64 != u64::from(request.ask.slots) || layout.slot_size() != request.ask.slotSize {
            return Err(invalid("the manifest's slots do not match the request"));
        }
        let root = <&[u8; 32]>::try_from(verification.verify_root.as_slice())
            .ok()
            .and_then(circuits::fr_from_bytes)
            .ok_or_else(|| invalid("the manifest's dataset root is not a field element"))?;
        if fr_word(&root) != request.content.merkleRoot {
            return Err(invalid("the manifest's dataset root is not the request's"));
        }
        let index = sale.slot_index as usize;
        let slot_cid = crate::slots::slot_cid(&protected, index)?;
        let mut fetched = crate::repair::fetch_dataset(&self.fetcher, &self.store, slot_cid).await;
        let first_lost = sale.repair_of.iter().min().copied();
        if fetched.is_err() && first_lost.is_some_and(|first| first != sale.slot_index) {
            // The host repairing the first lost slot regenerates them all: wait for it to publish
            // this one rather than decode a second time (and fetch K slots again).
            info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, "waiting for the first lost slot's repairer");
            let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
            while fetched.is_err() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(HANDOFF_POLL).await;
                fetched = crate::repair::fetch_dataset(&self.fetcher, &self.store, slot_cid).await;
            }
        }
        let bytes = *fetched.as_ref().unwrap_or(&0);
        if let Err(e) = fetched {
            if sale.repair_of.is_empty() {
                return Err(MarketError::Local(e.to_string()));
            }
            // Nobody serves the lost slot: rebuild all the lost slots from K others, once.
            info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, error = %e, "slot unavailable; regenerating the lost slots");
            self.regenerate_lost(&protected, &sale.repair_of).await?;
        }
        let tree = self.dir.join("trees").join(format!("{:x}.tree", sale.slot_id));
        let store = Arc::clone(&self.store);
        let held = tokio::task::spawn_blocking(move || crate::slots::accept(&store, &protected, index, &tree, 2))
            .await
            .map_err(|e| MarketError::Local(e.to_string()))??;
        let _ = self.net.provide(&slot_cid).await;
        self.metrics.sale_bytes_fetched.inc_by(bytes);
        if !sale.repair_of.is_empty() {
            self.metrics.repair_bytes_fetched.inc_by(bytes);
        }
        info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, bytes, "slot fetched and checked");
        Ok((held.cells, held.tree, slot_cid))
    }

    /// Drops the slot data an abandoned sale fetched: nobody pays this host to keep it (and a
    /// copy kept by chance would hide a lost slot from repair).
    fn discard_slot_data(&self, sale: &mut SaleRecord) {
        if let Some(cid) = sale.slot_cid.take().and_then(|c| c.parse::<ContentId>().ok())
            && let Err(e) = self.store.delete(&cid)
        {
            debug!(target: LOG, %cid, error = %e, "abandoned slot data not deleted");
        }
        if let Some(tree) = sale.tree.take() {
            let _ = std::fs::remove_file(tree);
        }
        sale.cells = None;
    }

    /// Lazy repair: fetches any K surviving slots, decodes once, regenerates every slot in
    /// `lost` and announces them, so that this host and the others repairing fetch them from here.
    async fn regenerate_lost(&self, protected: &crate::content::Manifest, lost: &[u64]) -> Result<(), MarketError> {
        let lost: Vec<usize> = lost.iter().map(|i| *i as usize).collect();
        let fetched = crate::repair::fetch_k_slots(&self.fetcher, &self.store, protected, &lost)
            .await
            .map_err(|e| MarketError::Local(e.to_string()))?;
        info!(target: LOG, slots = fetched.slots.len(), bytes = fetched.bytes_fetched, "repair: surviving slots fetched");
        self.metrics.sale_bytes_fetched.inc_by(fetched.bytes_fetched);
        self.metrics.repair_bytes_fetched.inc_by(fetched.bytes_fetched);
        let present = fetched.slots;
        let store = Arc::clone(&self.store);
        let manifest = protected.clone();
        let cids = tokio::task::spawn_blocking(move || crate::slots::regenerate(&store, &manifest, &present, &lost))
            .await
            .map_err(|e| MarketError::Local(e.to_string()))??;
        for cid in cids {
            let _ = self.net.provide(&cid).await;
            if let Ok(Some(m)) = self.store.manifest(&cid)
                && let Ok(tree) = m.tree()
            {
                let _ = self.net.provide(&tree).await;
            }
        }
        Ok(())
    }
}

/// Reads the marketplace's logs from the persisted cursor and considers every new request.
pub(super) async fn follow(market: Arc<Market>, start_block: u64) {
    let cursor_file = market.dir.join("cursor");
    let mut next =
        std::fs::read_to_string(&cursor_file).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(start_block);
    // Sales cut short by a restart go on from their recorded step.
    for mut sale in market.sales_snapshot() {
        if matches!(sale.state, SaleState::Downloading | SaleState::Filling) {
            let m = market.chain.market();
            let request = match market.chain.read("getRequest", m.getRequest(sale.request_id)).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(target: LOG, error = %e, "cannot resume a sale yet");
                    continue;
                }
            };
            let _turn = market.selling.lock().await;
            if let Err(e) = market.download_and_fill(&mut sale, &request).await {
                warn!(target: LOG, slot = %id_hex(&sale.slot_id), error = %e, "resumed sale abandoned");
                sale.state = SaleState::Errored;
                sale.error = Some(e.to_string());
                market.discard_slot_data(&mut sale);
                market.save_sale(&sale);
            }
        }
    }
    let mut ticks: u64 = 0;
    loop {
        tokio::time::sleep(TICK).await;
        ticks += 1;
        let retry = ticks.is_multiple_of(RETRY_PASSED_OVER_TICKS);
        if market.availability_changed.swap(false, std::sync::atomic::Ordering::AcqRel) || retry {
            // An availability changed: requests passed over earlier may match now.
            let passed: Vec<(B256, Option<Vec<u64>>)> = lock(&market.passed_over).drain(..).collect();
            for (request_id, repair) in passed {
                if let Err(e) = market.consider(request_id, repair).await {
                    debug!(target: LOG, request = %id_hex(&request_id), error = %e, "request not considered again");
                }
            }
        }
        let head = match market.chain.head().await {
            Ok((n, _)) => n,
            Err(e) => {
                debug!(target: LOG, error = %e, "no chain head");
                continue;
            }
        };
        if next > head {
            continue;
        }
        let to = head.min(next + contracts::client::LOG_RANGE - 1);
        let logs = match market.chain.logs(next, to).await {
            Ok(l) => l,
            Err(e) => {
                debug!(target: LOG, error = %e, "logs not read");
                continue;
            }
        };
        let mut done = true;
        for log in logs {
            let (request_id, repair) = if log.topic0() == Some(&Marketplace::StorageRequested::SIGNATURE_HASH) {
                let Some(id) = log.topics().get(1).copied() else { continue };
                (id, None)
            } else if log.topic0() == Some(&Marketplace::RepairOpened::SIGNATURE_HASH) {
                let Ok(opened) = log.log_decode::<Marketplace::RepairOpened>() else { continue };
                let indices = opened.inner.data.slotIndices.iter().map(|i| i.saturating_to::<u64>()).collect();
                (opened.inner.data.requestId, Some(indices))
            } else {
                continue;
            };
            if let Err(e) = market.consider(request_id, repair).await {
                debug!(target: LOG, request = %id_hex(&request_id), error = %e, "request not considered yet");
                if matches!(e, MarketError::Chain(ref c) if c.is_unreachable()) {
                    done = false; // read these blocks again
                    break;
                }
            }
        }
        if done {
            next = to + 1;
            let _ = std::fs::write(&cursor_file, next.to_string());
        }
    }
}

/// Fault injection: flips one byte in `percent` % of the cells of a slot's cells file (cells
/// spread evenly over the slot, at least one); returns how many were corrupted.
fn corrupt_cells(path: &std::path::Path, cell_size: usize, percent: u8) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let cells = file.metadata()?.len() / cell_size.max(1) as u64;
    let count = (cells * u64::from(percent.min(100))).div_ceil(100).max(1).min(cells);
    for k in 0..count {
        let cell = k * cells / count;
        let offset = cell * cell_size as u64 + (cell % cell_size as u64);
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut byte)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&[byte[0] ^ 0xff])?;
    }
    file.sync_all()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_cells_flips_one_byte_in_the_given_share_of_cells() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cells");
        let original: Vec<u8> = (0..256 * 64).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original)?;
        assert_eq!(corrupt_cells(&path, 64, 5)?, 13); // 5 % of 256 cells, rounded up
        let damaged = std::fs::read(&path)?;
        assert_eq!(damaged.len(), original.len());
        let changed: Vec<usize> =
            (0..256).filter(|c| damaged[c * 64..(c + 1) * 64] != original[c * 64..(c + 1) * 64]).collect();
        assert_eq!(changed.len(), 13);
        for c in changed {
            let bytes = (0..64).filter(|b| damaged[c * 64 + b] != original[c * 64 + b]).count();
            assert_eq!(bytes, 1, "cell {c}");
        }
        Ok(())
    }
}
