//! Taking a request from reservation to fill: [`Host::serve`] runs in a sale task of its own
//! (dispatched by [`super::follower`]), so its waits (a fetch, a repair hand-off, a seed) hold
//! up nobody else.
//!
//! A request is served when it is waiting for hosts, its slots are of this host's proof size, an
//! availability takes it (its size and collateral are drawn at once, under the availabilities'
//! lock) and enough of a reservation's lease is left to fetch, prove and fill. Slots are tried in
//! an order of this host's own (repairers all try the first lost slot first: whoever holds it
//! regenerates every lost slot); a slot not yet open to this host (fair dispersal), held by
//! another or closed is skipped. A reserved slot becomes a sale that is recorded before each step.
//!
//! A fill that fails, or whose answer never comes, does not end the sale: the chain is asked who
//! holds the slot ([`super::sale::after_fill`]). Only when it answers "not this host" after a
//! refusal does the sale give up (deleting what it fetched) and the next slot get tried, so a
//! host never holds two slots of a request and never deletes a slot it holds. When the chain
//! cannot tell, the sale stays as it is and the task fails: the follower runs it again later.

use alloy::primitives::{Address, B256, U256};
use tracing::{debug, info, warn};

use super::MarketError;
use super::availabilities::{Draw, Need};
use super::chain::MarketChain;
use super::host::Host;
use super::purchasing::request_json;
use super::sale::{FillAnswer, FillDecision, Holder, SaleEvent, SaleRecord, SaleState, after_fill};
use super::slot_work::SlotWork;
use super::words::{id_hex, parse_amount};
use contracts::RequestState;
use contracts::client::ChainError;

const LOG: &str = "vellum::market::selling";

/// Fill attempts per sale task when the proof's challenge keeps moving on.
const FILL_ROUNDS: usize = 3;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// This host holds one of its slots.
    Holding,
    /// It can no longer be served by this host (and why): forget it.
    Never(&'static str),
    /// Not now (and why): look again later, or when an availability changes.
    Later(&'static str),
}

/// What became of a reservation attempt.
enum Reservation {
    /// Reserved now, or held already (from a sale given up earlier).
    Held,
    /// Fair dispersal has not yet opened the slot to this host.
    NotYetEligible,
    /// Not reservable by this host now, and why.
    Unavailable(&'static str),
    /// Filled, or its request no longer takes fills: never reservable again in this round.
    Closed,
}

/// How one sale run ended.
enum SaleRun {
    /// The slot is this host's.
    Holding,
    /// The sale was given up; its data deleted.
    GaveUp,
}

impl<C: MarketChain, W: SlotWork> Host<C, W> {
    /// Serves a request (new, or with `repair` slots open for repair): resumes this host's sale
    /// of it if one is under way, otherwise takes one of its slots if it can.
    pub(crate) async fn serve(&self, request_id: B256, repair: Option<Vec<u64>>) -> Result<Served, MarketError> {
        if let Some(mut sale) = self.sales.live_for(&request_id) {
            if matches!(sale.state, SaleState::Proving | SaleState::Payout) {
                return Ok(Served::Never("holding one of its slots already"));
            }
            let view = self.chain.request(request_id).await?;
            if sale.state == SaleState::Reserving {
                // A reservation sent before a crash or whose answer was lost: use it if it stood.
                let (_, now) = self.chain.head().await?;
                let collateral = U256::from(parse_amount(&sale.collateral).unwrap_or(0));
                match self.reserve(request_id, sale.slot_index, collateral, now).await? {
                    Reservation::Held => self.apply(&mut sale, SaleEvent::Reserved).await?,
                    Reservation::NotYetEligible | Reservation::Unavailable(_) | Reservation::Closed => {
                        self.drop_unreserved(&sale);
                        return Box::pin(self.serve(request_id, repair)).await;
                    }
                }
            }
            return match self.run_sale(&mut sale, &view.request).await? {
                SaleRun::Holding => Ok(Served::Holding),
                SaleRun::GaveUp => Box::pin(self.serve(request_id, repair)).await,
            };
        }
        let view = self.chain.request(request_id).await?;
        let waiting = if repair.is_some() { RequestState::Started } else { RequestState::New };
        if view.state != waiting {
            return Ok(Served::Never("not waiting for hosts"));
        }
        let request = &view.request;
        if request.ask.slotSize != self.config.slot_size {
            return Ok(Served::Never("slot size differs from this host's proofs"));
        }
        // A reservation lapses after reservationDuration, and at the latest when the fill round
        // closes (the request's expiry, or its end for a repair): too short a lease is not taken.
        let (_, now) = self.chain.head().await?;
        let closes_at = if repair.is_some() { view.ends_at.saturating_sub(1) } else { view.expires_at };
        let lapses_at = now.saturating_add(self.chain.params().reservation_duration).min(closes_at);
        if lapses_at < now.saturating_add(self.config.min_lease_secs) {
            return Ok(Served::Never("too little time left to fill a slot"));
        }
        let collateral = u128::from(request.ask.slotSize).saturating_mul(request.ask.collateralPerByte);
        let need = Need {
            slot_size: request.ask.slotSize,
            duration: request.ask.duration,
            price: request.ask.pricePerBytePerSecond,
            collateral,
            ends_at: if view.ends_at > 0 { view.ends_at } else { now.saturating_add(request.ask.duration) },
        };
        let repair_set = repair.unwrap_or_default();
        // Whether some slot may still open to this host (a lease lapsing, dispersal widening).
        let mut open = false;
        for index in self.slot_order(&request_id, u64::from(request.ask.slots), &repair_set) {
            let Some(draw) = self.availabilities.draw(&need)? else {
                return Ok(Served::Later("no availability takes it"));
            };
            let give_back = |why: &str| {
                if let Err(e) = self.availabilities.give_back(&draw, true) {
                    warn!(target: LOG, error = %e, why, "availability not given back");
                }
            };
            let slot_id = match self.chain.slot_id(request_id, index).await {
                Ok(id) => id,
                Err(e) => {
                    give_back("no slot id");
                    return Err(e.into());
                }
            };
            // Recorded before the reservation is sent: its answer may be lost while it stands.
            let mut sale = SaleRecord {
                slot_id,
                request_id,
                slot_index: index,
                request: request_json(&request_id, request),
                state: SaleState::Reserving,
                availability_id: draw.id.clone(),
                collateral: collateral.to_string(),
                cells: None,
                tree: None,
                proofs_submitted: 0,
                last_proven_period: None,
                error: None,
                repair_of: repair_set.clone(),
                slot_cid: None,
                fills_unanswered: 0,
            };
            if let Err(e) = self.sales.save(&sale) {
                give_back("sale not recorded");
                return Err(e);
            }
            // An error leaves the record (and its draw) for the resumed sale to settle.
            match self.reserve(request_id, index, U256::from(collateral), now).await? {
                Reservation::Held => self.apply(&mut sale, SaleEvent::Reserved).await?,
                Reservation::Closed => {
                    self.drop_unreserved(&sale);
                    debug!(target: LOG, request = %id_hex(&request_id), slot = index, "slot filled or closed");
                    continue;
                }
                Reservation::Unavailable(why) => {
                    open = true;
                    self.drop_unreserved(&sale);
                    debug!(target: LOG, request = %id_hex(&request_id), slot = index, why, "slot not reserved");
                    continue;
                }
                Reservation::NotYetEligible => {
                    open = true;
                    self.drop_unreserved(&sale);
                    if repair_set.iter().min() == Some(&index) {
                        // Nobody holds the first lost slot yet: taking another lost slot would
                        // only wait for a repairer of the first that may never come.
                        return Ok(Served::Later("the first lost slot is not yet open to this host"));
                    }
                    continue;
                }
            }
            info!(target: LOG, request = %id_hex(&request_id), slot = index, "slot reserved");
            match self.run_sale(&mut sale, request).await? {
                SaleRun::Holding => return Ok(Served::Holding),
                SaleRun::GaveUp => {
                    open = true; // its lease may still be this host's
                    continue;
                }
            }
        }
        if !open {
            // Every slot is filled or closed: nothing left for anyone in this round.
            return Ok(Served::Never("every slot filled"));
        }
        // Some slots are reserved by other hosts or not yet open to this one: leases lapse and
        // dispersal windows widen, so look again in a while.
        Ok(Served::Later("no slot open to this host"))
    }

    /// Forgets a sale whose slot was never reserved, and gives its draw back.
    fn drop_unreserved(&self, sale: &SaleRecord) {
        let draw = Draw {
            id: sale.availability_id.clone(),
            size: sale.request.ask.slot_size,
            collateral: parse_amount(&sale.collateral).unwrap_or(0),
        };
        if let Err(e) = self.availabilities.give_back(&draw, true) {
            warn!(target: LOG, error = %e, "availability not given back");
        }
        if let Err(e) = self.sales.forget(sale) {
            warn!(target: LOG, error = %e, "unreserved sale not forgotten");
        }
    }

    /// The order in which this host tries a request's slots.
    fn slot_order(&self, request_id: &B256, slots: u64, repair: &[u64]) -> Vec<u64> {
        let candidates: Vec<u64> = if repair.is_empty() { (0..slots).collect() } else { repair.to_vec() };
        let start = match repair.iter().min() {
            Some(first) => candidates.iter().position(|i| i == first).unwrap_or(0),
            None => rand::random::<u64>() as usize % candidates.len().max(1),
        };
        let mut order: Vec<u64> = (0..candidates.len()).map(|i| candidates[(start + i) % candidates.len()]).collect();
        // Slots of sales this host gave up come first: it may still hold their reservation
        // (and its deposit), which it should use rather than leave to lapse.
        let given_up = self.sales.given_up(request_id);
        order.sort_by_key(|i| !given_up.contains(i));
        order
    }

    /// Takes slot `index`'s reservation for this host unless it holds it already.
    async fn reserve(
        &self,
        request_id: B256,
        index: u64,
        collateral: U256,
        now: u64,
    ) -> Result<Reservation, MarketError> {
        let me = self.chain.address();
        let lease = self.chain.reservation(request_id, index).await?;
        if lease.lapses_at >= now && lease.holder != Address::ZERO {
            return Ok(if lease.holder == me {
                Reservation::Held
            } else {
                Reservation::Unavailable("reserved by another host")
            });
        }
        match self.chain.eligible_at(request_id, index).await? {
            None => return Ok(Reservation::Closed),
            Some(at) if at > now => return Ok(Reservation::NotYetEligible),
            Some(_) => {}
        }
        match self.chain.reserve(request_id, index, collateral).await {
            Ok(()) => Ok(Reservation::Held),
            Err(e) => match e.market_error() {
                Some(contracts::MarketError::AlreadyReserved) => Ok(Reservation::Held),
                Some(contracts::MarketError::SlotReservedByOther) => {
                    Ok(Reservation::Unavailable("reserved by another host"))
                }
                Some(contracts::MarketError::NotYetEligible) => Ok(Reservation::NotYetEligible),
                _ if e.revert_reason().is_some() => Ok(Reservation::Closed),
                // Unknown outcome: the reservation may stand. Either way it lapses by itself and
                // its deposit goes to the client; nothing of this host's is at risk yet.
                _ => Err(e.into()),
            },
        }
    }

    /// Runs a sale from its recorded state until it holds the slot or gives it up.
    async fn run_sale(
        &self,
        sale: &mut SaleRecord,
        request: &contracts::Marketplace::Request,
    ) -> Result<SaleRun, MarketError> {
        loop {
            match sale.state {
                SaleState::Downloading => match self.work.fetch(sale, request).await {
                    Ok(files) => {
                        sale.cells = Some(files.cells);
                        sale.tree = Some(files.tree);
                        sale.slot_cid = Some(files.cid);
                        self.apply(sale, SaleEvent::Fetched).await?;
                    }
                    Err(e) => {
                        warn!(target: LOG, request = %id_hex(&sale.request_id), slot = sale.slot_index, error = %e, "slot not fetched; sale given up");
                        sale.error = Some(e.to_string());
                        self.apply(sale, SaleEvent::FetchFailed).await?;
                        return Ok(SaleRun::GaveUp);
                    }
                },
                SaleState::Filling => return self.fill(sale).await,
                _ => return Ok(SaleRun::Holding),
            }
        }
    }

    /// Who holds the sale's slot, as the chain says.
    async fn holder(&self, slot_id: B256) -> Holder {
        match self.chain.slot_host(slot_id).await {
            Ok(host) if host == self.chain.address() => Holder::This,
            Ok(_) => Holder::NotThis,
            Err(e) => {
                debug!(target: LOG, slot = %id_hex(&slot_id), error = %e, "holder unknown");
                Holder::Unknown
            }
        }
    }

    /// Fills the sale's slot, first asking the chain whether an earlier fill (before a restart,
    /// or one whose answer was lost) already made this host its holder.
    async fn fill(&self, sale: &mut SaleRecord) -> Result<SaleRun, MarketError> {
        let unknown = |what: &str| {
            MarketError::Chain(ChainError::Unreachable {
                call: "fillSlot",
                reason: format!("{what}: asked again later"),
            })
        };
        match self.holder(sale.slot_id).await {
            Holder::This => {
                self.apply(sale, SaleEvent::HolderIsThis).await?;
                return Ok(SaleRun::Holding);
            }
            Holder::Unknown => return Err(unknown("the slot's holder is unknown")),
            Holder::NotThis => {}
        }
        let collateral = U256::from(super::words::parse_amount(&sale.collateral).unwrap_or(0));
        for _ in 0..FILL_ROUNDS {
            let (period, entropy) = self.chain.fill_challenge(sale.slot_id).await?;
            let proof = self.work.prove(sale, entropy).await?;
            // Recorded before the step: a fill whose answer never comes may still land.
            sale.fills_unanswered = sale.fills_unanswered.saturating_add(1);
            self.sales.save(sale)?;
            let answer = match self.chain.fill(sale.request_id, sale.slot_index, proof, collateral).await {
                Ok(()) => FillAnswer::Accepted,
                Err(e) if e.market_error() == Some(contracts::MarketError::InvalidProof) => FillAnswer::StaleProof,
                Err(e) if e.revert_reason().is_some() => {
                    debug!(target: LOG, slot = sale.slot_index, error = %e, "fill refused");
                    sale.error = Some(e.to_string());
                    FillAnswer::Refused
                }
                Err(e) => {
                    warn!(target: LOG, slot = sale.slot_index, error = %e, "fill sent; its outcome is unknown");
                    FillAnswer::Unknown
                }
            };
            if answer != FillAnswer::Unknown {
                sale.fills_unanswered = sale.fills_unanswered.saturating_sub(1);
            }
            if answer == FillAnswer::Accepted {
                sale.last_proven_period = Some(period);
                sale.error = None;
                self.apply(sale, SaleEvent::Filled).await?;
                self.work.filled(sale);
                info!(target: LOG, request = %id_hex(&sale.request_id), slot = sale.slot_index, "slot filled");
                return Ok(SaleRun::Holding);
            }
            self.sales.save(sale)?;
            match after_fill(answer, self.holder(sale.slot_id).await) {
                FillDecision::Hold => {
                    sale.error = None;
                    self.apply(sale, SaleEvent::HolderIsThis).await?;
                    info!(target: LOG, request = %id_hex(&sale.request_id), slot = sale.slot_index, "slot filled (the chain says so)");
                    return Ok(SaleRun::Holding);
                }
                FillDecision::ProveAgain => continue,
                FillDecision::GiveUp => {
                    warn!(target: LOG, request = %id_hex(&sale.request_id), slot = sale.slot_index, error = ?sale.error, "fill refused; sale given up");
                    self.apply(sale, SaleEvent::HolderIsOther).await?;
                    return Ok(SaleRun::GaveUp);
                }
                FillDecision::AskAgainLater => return Err(unknown("the fill's outcome is unknown")),
            }
        }
        Err(MarketError::Local("the fill proof went stale in every attempt".into()))
    }
}
