//! An in-memory marketplace for the host engine's unit tests: requests, reservations with
//! leases and fair dispersal, fills checked against the filler's entropy, collateral and
//! deposits moved between token balances, proofs required per period, accusations, losses and
//! repair, payouts, and an event log. Faults are injected per call: the endpoint away, a
//! transaction that lands but whose answer is lost, a call that never returns (the host
//! "crashes" there: the test drops it), and a clock that moves while the host proves.
//! It applies the contract's rules only as far as a host can observe them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use contracts::Marketplace::{Ask, Content, Request};
use contracts::client::{ChainError, MarketParams};
use contracts::{MarketEvent, RequestState};

use super::chain::{Accusation, Lease, MarketChain, ProofWords, RequestView};

/// A fault for the next matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault for this call (to place a fault on a later call).
    Pass,
    /// The endpoint does not answer; nothing happens.
    Unreachable,
    /// The transaction lands, but its answer is lost (a receipt after the host's timeout).
    LandsUnanswered,
    /// The clock moves on by this many seconds before the transaction is applied.
    ClockJump(u64),
}

/// One slot on the fake chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeSlot {
    pub(crate) id: B256,
    pub(crate) host: Address,
    pub(crate) lease: Option<(Address, u64)>,
    /// Hosts fair dispersal keeps out until a time.
    pub(crate) eligible_at: HashMap<Address, u64>,
    /// Fills accepted (all hosts, all time).
    pub(crate) fills: u32,
    pub(crate) paid: bool,
}

/// One request on the fake chain.
#[derive(Debug, Clone)]
pub(crate) struct FakeRequest {
    pub(crate) request: Request,
    pub(crate) state: RequestState,
    pub(crate) ends_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) slots: Vec<FakeSlot>,
}

/// The whole fake chain.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) now: u64,
    pub(crate) block: u64,
    pub(crate) params: MarketParams,
    pub(crate) requests: HashMap<B256, FakeRequest>,
    pub(crate) balances: HashMap<Address, U256>,
    pub(crate) events: Vec<(u64, MarketEvent)>,
    /// Faults for the next calls of a method, by name.
    pub(crate) faults: HashMap<&'static str, VecDeque<Fault>>,
    /// The endpoint is away for every call.
    pub(crate) away: bool,
    /// Calls so far (every method), and the call at which the host "crashes": that call
    /// never returns; with `crash_after_apply` a transaction is applied first.
    pub(crate) calls: usize,
    pub(crate) crash_at: Option<usize>,
    pub(crate) crash_after_apply: bool,
    pub(crate) crashed: bool,
    /// Periods whose proof is required, per slot.
    pub(crate) required: HashSet<(B256, u64)>,
    /// Accepted periodic proofs, per slot and period.
    pub(crate) proofs: HashMap<(B256, u64), ProofWords>,
    pub(crate) accusations: HashMap<(B256, u64), Accusation>,
    pub(crate) defences: Vec<(B256, u64)>,
    /// Transactions sent by each address (landed ones).
    pub(crate) sent: HashMap<Address, Vec<&'static str>>,
}

/// The marketplace's own address on the fake chain (its token balance is the escrow).
pub(crate) const MARKET: Address = Address::repeat_byte(0xee);

/// A handle on the fake chain for one wallet.
#[derive(Debug, Clone)]
pub(crate) struct FakeChain {
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) me: Address,
}

fn revert(call: &'static str, e: contracts::MarketError) -> ChainError {
    ChainError::Reverted { call, reason: e.name().to_owned() }
}

fn away(call: &'static str) -> ChainError {
    ChainError::Unreachable { call, reason: "fake endpoint away".into() }
}

/// The fill entropy the fake chain expects of `host` for `slot` in `period`.
pub(crate) fn fill_entropy(slot: B256, host: Address, period: u64) -> U256 {
    U256::from_be_bytes(keccak256([slot.as_slice(), host.as_slice(), &period.to_be_bytes()].concat()).0)
}

/// The periodic entropy of `slot` in `period`.
pub(crate) fn period_entropy(slot: B256, period: u64) -> U256 {
    U256::from_be_bytes(keccak256([slot.as_slice(), &period.to_be_bytes()].concat()).0)
}

/// Whether `proof` is the stand-in prover's proof of `slot` for `entropy` (see the tests'
/// slot work: word 0 is the entropy, word 1 the slot id, word 2 the data's digest).
pub(crate) fn proof_valid(proof: &ProofWords, slot: B256, entropy: U256) -> bool {
    proof[0] == entropy && proof[1] == U256::from_be_bytes(slot.0) && proof[2] != U256::ZERO
}

impl World {
    pub(crate) fn new(params: MarketParams) -> Self {
        Self {
            now: 1_000,
            block: 1,
            params,
            requests: HashMap::new(),
            balances: HashMap::new(),
            events: Vec::new(),
            faults: HashMap::new(),
            away: false,
            calls: 0,
            crash_at: None,
            crash_after_apply: false,
            crashed: false,
            required: HashSet::new(),
            proofs: HashMap::new(),
            accusations: HashMap::new(),
            defences: Vec::new(),
            sent: HashMap::new(),
        }
    }

    pub(crate) fn period(&self) -> u64 {
        self.now / self.params.period_length.max(1)
    }

    pub(crate) fn balance(&self, who: Address) -> U256 {
        self.balances.get(&who).copied().unwrap_or_default()
    }

    fn transfer(&mut self, from: Address, to: Address, amount: U256) -> Result<(), ()> {
        let have = self.balance(from);
        if have < amount {
            return Err(());
        }
        self.balances.insert(from, have - amount);
        let to_have = self.balance(to);
        self.balances.insert(to, to_have + amount);
        Ok(())
    }

    fn emit(&mut self, event: MarketEvent) {
        self.block += 1;
        self.events.push((self.block, event));
    }

    /// Posts a request of `slots` slots of `slot_size` bytes; returns its id.
    pub(crate) fn post_request(&mut self, slots: u16, slot_size: u64, collateral_per_byte: u128) -> B256 {
        let nonce = B256::from(rand::random::<[u8; 32]>());
        let request = Request {
            client: Address::repeat_byte(0xc1),
            expiry: 600,
            ask: Ask {
                slots,
                slotSize: slot_size,
                duration: 3_600,
                proofProbability: 1,
                maxSlotLoss: 1,
                repairThreshold: 1,
                pricePerBytePerSecond: 1,
                collateralPerByte: collateral_per_byte,
            },
            content: Content { cid: Bytes::from_static(b"fake"), merkleRoot: B256::repeat_byte(7) },
            nonce,
        };
        let id = keccak256(nonce);
        let slots = (0..u64::from(slots))
            .map(|i| FakeSlot { id: keccak256([id.as_slice(), &i.to_be_bytes()].concat()), ..FakeSlot::default() })
            .collect();
        let expires_at = self.now + 600;
        let ask = contracts::events::Ask {
            slots: request.ask.slots,
            slot_size: request.ask.slotSize,
            duration: request.ask.duration,
            proof_probability: request.ask.proofProbability,
            max_slot_loss: request.ask.maxSlotLoss,
            repair_threshold: request.ask.repairThreshold,
            price_per_byte_per_second: request.ask.pricePerBytePerSecond,
            collateral_per_byte: request.ask.collateralPerByte,
        };
        self.emit(MarketEvent::StorageRequested {
            request_id: id,
            client: request.client,
            ask,
            expires_at,
            ends_at: expires_at + request.ask.duration,
        });
        self.requests.insert(id, FakeRequest { request, state: RequestState::New, ends_at: 0, expires_at, slots });
        id
    }

    fn slot_mut(&mut self, slot_id: B256) -> Option<(&mut FakeRequest, usize)> {
        let (request, index) = self
            .requests
            .iter()
            .find_map(|(rid, r)| r.slots.iter().position(|s| s.id == slot_id).map(|i| (*rid, i)))?;
        self.requests.get_mut(&request).map(|r| (r, index))
    }

    /// Takes a slot from its host (missed proofs) and opens it for repair.
    pub(crate) fn lose_slot(&mut self, request_id: B256, index: usize) {
        if let Some(r) = self.requests.get_mut(&request_id) {
            r.slots[index].host = Address::ZERO;
            r.slots[index].lease = None;
        }
        self.emit(MarketEvent::RepairOpened { request_id, slot_indices: vec![index as u64] });
    }

    /// Ends a request (`Finished`, `Cancelled` or `Failed`).
    pub(crate) fn end_request(&mut self, request_id: B256, state: RequestState) {
        if let Some(r) = self.requests.get_mut(&request_id) {
            r.state = state;
        }
    }

    /// Fills recorded on a slot.
    pub(crate) fn fills(&self, request_id: B256, index: usize) -> u32 {
        self.requests.get(&request_id).map_or(0, |r| r.slots[index].fills)
    }

    /// The holder of a slot.
    pub(crate) fn holder(&self, request_id: B256, index: usize) -> Address {
        self.requests.get(&request_id).map_or(Address::ZERO, |r| r.slots[index].host)
    }
}

/// How a call goes, after the faults are looked at.
enum Go {
    Apply,
    ApplyUnanswered,
}

impl FakeChain {
    /// A fresh chain with short periods and a 10 % deposit.
    pub(crate) fn world() -> Arc<Mutex<World>> {
        Arc::new(Mutex::new(World::new(MarketParams {
            period_length: 10,
            proof_timeout: 5,
            response_window: 5,
            max_request_expiry: 3_600,
            max_missed_proofs: 3,
            slash_percentage: 10,
            validator_reward_percentage: 10,
            reservation_deposit_percentage: 10,
            reservation_duration: 120,
            dispersal_window: 0,
            accusation_bond: U256::ZERO,
        })))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the call and applies the faults: `Err` to return at once, or how to go on. A
    /// crash makes the call hang forever (the test drops the host's future there).
    async fn enter(&self, call: &'static str, transaction: bool) -> Result<Go, ChainError> {
        let crash_now = {
            let mut w = self.lock();
            w.calls += 1;
            if w.crash_at == Some(w.calls) {
                w.crashed = true;
                Some(w.crash_after_apply && transaction)
            } else {
                None
            }
        };
        match crash_now {
            Some(true) => return Ok(Go::ApplyUnanswered), // applied, then the host dies (see `answer`)
            Some(false) => std::future::pending::<()>().await,
            None => {}
        }
        let mut w = self.lock();
        if w.away {
            return Err(away(call));
        }
        match w.faults.get_mut(call).and_then(VecDeque::pop_front) {
            Some(Fault::Unreachable) => Err(away(call)),
            Some(Fault::LandsUnanswered) => Ok(Go::ApplyUnanswered),
            Some(Fault::ClockJump(s)) => {
                w.now += s;
                Ok(Go::Apply)
            }
            Some(Fault::Pass) | None => Ok(Go::Apply),
        }
    }

    /// The answer to a transaction that was applied: lost when so injected, and never given
    /// when the host crashed right after it.
    async fn answer(&self, call: &'static str, go: Go, result: Result<(), ChainError>) -> Result<(), ChainError> {
        if result.is_ok() {
            self.lock().sent.entry(self.me).or_default().push(call);
        }
        match go {
            Go::Apply => result,
            Go::ApplyUnanswered => {
                if self.lock().crashed {
                    std::future::pending::<()>().await;
                }
                Err(ChainError::Unreachable { call, reason: "transaction sent: not mined in time".into() })
            }
        }
    }

    fn view<T>(&self, f: impl FnOnce(&World) -> T) -> T {
        f(&self.lock())
    }
}

impl MarketChain for FakeChain {
    fn address(&self) -> Address {
        self.me
    }

    fn params(&self) -> MarketParams {
        self.lock().params
    }

    async fn head(&self) -> Result<(u64, u64), ChainError> {
        self.enter("head", false).await?;
        Ok(self.view(|w| (w.block, w.now)))
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<MarketEvent>, ChainError> {
        self.enter("events", false).await?;
        Ok(self.view(|w| w.events.iter().filter(|(b, _)| (from..=to).contains(b)).map(|(_, e)| e.clone()).collect()))
    }

    async fn request(&self, id: B256) -> Result<RequestView, ChainError> {
        self.enter("request", false).await?;
        self.view(|w| {
            w.requests
                .get(&id)
                .map(|r| RequestView {
                    state: r.state,
                    request: r.request.clone(),
                    ends_at: r.ends_at,
                    expires_at: r.expires_at,
                })
                .ok_or_else(|| revert("getRequest", contracts::MarketError::UnknownRequest))
        })
    }

    async fn request_state(&self, id: B256) -> Result<RequestState, ChainError> {
        self.enter("request_state", false).await?;
        Ok(self.view(|w| w.requests.get(&id).map_or(RequestState::None, |r| r.state)))
    }

    async fn slot_id(&self, request_id: B256, index: u64) -> Result<B256, ChainError> {
        self.enter("slot_id", false).await?;
        self.view(|w| {
            w.requests
                .get(&request_id)
                .and_then(|r| r.slots.get(index as usize))
                .map(|s| s.id)
                .ok_or_else(|| revert("slotId", contracts::MarketError::InvalidSlotIndex))
        })
    }

    async fn slot_host(&self, slot_id: B256) -> Result<Address, ChainError> {
        self.enter("slot_host", false).await?;
        Ok(self.view(|w| {
            w.requests.values().flat_map(|r| r.slots.iter()).find(|s| s.id == slot_id).map_or(Address::ZERO, |s| s.host)
        }))
    }

    async fn reservation(&self, request_id: B256, index: u64) -> Result<Lease, ChainError> {
        self.enter("reservation", false).await?;
        Ok(self.view(|w| {
            let lease = w.requests.get(&request_id).and_then(|r| r.slots.get(index as usize)).and_then(|s| s.lease);
            lease.map_or(Lease { holder: Address::ZERO, lapses_at: 0 }, |(holder, lapses_at)| Lease {
                holder,
                lapses_at,
            })
        }))
    }

    async fn eligible_at(&self, request_id: B256, index: u64) -> Result<Option<u64>, ChainError> {
        self.enter("eligible_at", false).await?;
        let me = self.me;
        Ok(self.view(|w| {
            let r = w.requests.get(&request_id)?;
            let s = r.slots.get(index as usize)?;
            let open = matches!(r.state, RequestState::New | RequestState::Started) && s.host == Address::ZERO;
            open.then(|| s.eligible_at.get(&me).copied().unwrap_or(0))
        }))
    }

    async fn reserve(&self, request_id: B256, index: u64, collateral: U256) -> Result<(), ChainError> {
        let go = self.enter("reserve", true).await?;
        let me = self.me;
        let result = {
            let mut w = self.lock();
            let now = w.now;
            let deposit = w.params.deposit(collateral);
            let duration = w.params.reservation_duration;
            match w.requests.get(&request_id).and_then(|r| r.slots.get(index as usize)).cloned() {
                None => Err(revert("reserveSlot", contracts::MarketError::InvalidSlotIndex)),
                Some(s) if s.host != Address::ZERO => {
                    Err(revert("reserveSlot", contracts::MarketError::SlotNotAvailable))
                }
                Some(s) if s.eligible_at.get(&me).is_some_and(|at| *at > now) => {
                    Err(revert("reserveSlot", contracts::MarketError::NotYetEligible))
                }
                Some(FakeSlot { lease: Some((holder, lapses)), .. }) if lapses >= now => Err(revert(
                    "reserveSlot",
                    if holder == me {
                        contracts::MarketError::AlreadyReserved
                    } else {
                        contracts::MarketError::SlotReservedByOther
                    },
                )),
                Some(_) => {
                    if w.transfer(me, MARKET, deposit).is_err() {
                        Err(ChainError::Reverted { call: "reserveSlot", reason: "ERC20InsufficientBalance".into() })
                    } else {
                        if let Some(r) = w.requests.get_mut(&request_id) {
                            r.slots[index as usize].lease = Some((me, now + duration));
                        }
                        Ok(())
                    }
                }
            }
        };
        self.answer("reserve", go, result).await
    }

    async fn fill_challenge(&self, slot_id: B256) -> Result<(u64, U256), ChainError> {
        self.enter("fill_challenge", false).await?;
        let me = self.me;
        Ok(self.view(|w| (w.period(), fill_entropy(slot_id, me, w.period()))))
    }

    async fn fill(&self, request_id: B256, index: u64, proof: ProofWords, collateral: U256) -> Result<(), ChainError> {
        let go = self.enter("fill", true).await?;
        let me = self.me;
        let result = {
            let mut w = self.lock();
            let now = w.now;
            let period = w.period();
            let rest = collateral.saturating_sub(w.params.deposit(collateral));
            match w.requests.get(&request_id).and_then(|r| r.slots.get(index as usize)).cloned() {
                None => Err(revert("fillSlot", contracts::MarketError::InvalidSlotIndex)),
                Some(s) if s.host != Address::ZERO => Err(revert("fillSlot", contracts::MarketError::SlotNotAvailable)),
                Some(s) if s.lease.is_none_or(|(holder, lapses)| holder != me || lapses < now) => {
                    Err(revert("fillSlot", contracts::MarketError::NotReserved))
                }
                Some(s) if !proof_valid(&proof, s.id, fill_entropy(s.id, me, period)) => {
                    Err(revert("fillSlot", contracts::MarketError::InvalidProof))
                }
                Some(_) => {
                    if w.transfer(me, MARKET, rest).is_err() {
                        Err(ChainError::Reverted { call: "fillSlot", reason: "ERC20InsufficientBalance".into() })
                    } else {
                        let r = w.requests.get_mut(&request_id).expect("checked above");
                        let slot = &mut r.slots[index as usize];
                        slot.host = me;
                        slot.lease = None;
                        slot.fills += 1;
                        if r.state == RequestState::New && r.slots.iter().all(|s| s.host != Address::ZERO) {
                            r.state = RequestState::Started;
                            r.ends_at = now + r.request.ask.duration;
                        }
                        w.emit(MarketEvent::SlotFilled { request_id, slot_index: index, host: me });
                        Ok(())
                    }
                }
            }
        };
        self.answer("fill", go, result).await
    }

    async fn settles_at(&self, request_id: B256) -> Result<u64, ChainError> {
        self.enter("settles_at", false).await?;
        Ok(self.view(|w| w.requests.get(&request_id).map_or(0, |r| if r.ends_at > 0 { r.ends_at + 20 } else { 0 })))
    }

    async fn proof_required(&self, slot_id: B256) -> Result<bool, ChainError> {
        self.enter("proof_required", false).await?;
        Ok(self.view(|w| w.required.contains(&(slot_id, w.period()))))
    }

    async fn proof_will_be_required(&self, slot_id: B256) -> Result<bool, ChainError> {
        self.enter("proof_will_be_required", false).await?;
        Ok(self.view(|w| w.required.contains(&(slot_id, w.period() + 1))))
    }

    async fn entropy_at(&self, slot_id: B256, period: u64) -> Result<U256, ChainError> {
        self.enter("entropy_at", false).await?;
        Ok(period_entropy(slot_id, period))
    }

    async fn submit_proof(&self, slot_id: B256, proof: ProofWords) -> Result<(), ChainError> {
        let go = self.enter("submit_proof", true).await?;
        let me = self.me;
        let result = {
            let mut w = self.lock();
            let period = w.period();
            let host = w.slot_mut(slot_id).map(|(r, i)| r.slots[i].host);
            if host != Some(me) {
                Err(revert("submitProof", contracts::MarketError::NotSlotHost))
            } else if !proof_valid(&proof, slot_id, period_entropy(slot_id, period)) {
                Err(revert("submitProof", contracts::MarketError::InvalidProof))
            } else {
                match w.proofs.entry((slot_id, period)) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        Err(revert("submitProof", contracts::MarketError::ProofAlreadySubmitted))
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(proof);
                        Ok(())
                    }
                }
            }
        };
        self.answer("submit_proof", go, result).await
    }

    async fn accusation(&self, slot_id: B256, period: u64) -> Result<Accusation, ChainError> {
        self.enter("accusation", false).await?;
        Ok(self.view(|w| {
            w.accusations.get(&(slot_id, period)).copied().unwrap_or(Accusation { accuser: Address::ZERO, deadline: 0 })
        }))
    }

    async fn defend(&self, slot_id: B256, period: u64, proof: ProofWords) -> Result<(), ChainError> {
        let go = self.enter("defend", true).await?;
        let result = {
            let mut w = self.lock();
            if !proof_valid(&proof, slot_id, period_entropy(slot_id, period)) {
                Err(revert("defendProof", contracts::MarketError::InvalidProof))
            } else if w.accusations.remove(&(slot_id, period)).is_none() {
                Err(revert("defendProof", contracts::MarketError::ProofNotMissing))
            } else {
                w.defences.push((slot_id, period));
                Ok(())
            }
        };
        self.answer("defend", go, result).await
    }

    async fn anchor_next(&self, _period: u64) -> Result<(), ChainError> {
        self.enter("anchor_next", false).await?;
        Ok(())
    }

    async fn free_slot(&self, slot_id: B256) -> Result<U256, ChainError> {
        let go = self.enter("free_slot", true).await?;
        let me = self.me;
        let mut paid = U256::ZERO;
        let result = {
            let mut w = self.lock();
            match w.slot_mut(slot_id).map(|(r, i)| (r.state, r.slots[i].clone(), r.request.ask.clone())) {
                Some((_, s, _)) if s.host != me => Err(revert("freeSlot", contracts::MarketError::NotSlotHost)),
                Some((_, s, _)) if s.paid => Ok(()), // collected before: the trait answers 0
                Some((state, _, _)) if !state.is_over() => {
                    Err(revert("freeSlot", contracts::MarketError::RequestNotEnded))
                }
                Some((state, _, ask)) => {
                    let collateral = U256::from(ask.slotSize) * U256::from(ask.collateralPerByte);
                    let pay = if state == RequestState::Finished {
                        U256::from(ask.slotSize) * U256::from(ask.duration) * U256::from(ask.pricePerBytePerSecond)
                    } else {
                        U256::ZERO
                    };
                    paid = collateral + pay;
                    let market_has = w.balance(MARKET);
                    w.balances.insert(MARKET, market_has + pay); // the client's payment, escrowed
                    let _ = w.transfer(MARKET, me, paid);
                    if let Some((r, i)) = w.slot_mut(slot_id) {
                        r.slots[i].paid = true;
                    }
                    Ok(())
                }
                None => Err(revert("freeSlot", contracts::MarketError::NotSlotHost)),
            }
        };
        self.answer("free_slot", go, result).await.map(|()| paid)
    }
}
