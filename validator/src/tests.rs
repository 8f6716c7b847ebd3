//! The validator's loop against an in-memory marketplace: logs (with or without their blocks'
//! timestamps), seeds, accusations that hosts answer or not, settlements, and outages. Each test
//! asserts what was accused and settled on the fake chain and what the validator counted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use contracts::client::{ChainError, MarketParams};
use contracts::{MarketEvent, Marketplace};

use crate::chain::{PeriodSeed, ValidatorChain};
use crate::service::{Validator, ValidatorConfig};
use crate::state::slot_id;

const LENGTH: u64 = 10;
const WINDOW: u64 = 5;
const ME: Address = Address::repeat_byte(0x7a);

/// The fake marketplace.
#[derive(Default)]
struct World {
    head: u64,
    now: u64,
    logs: Vec<Log>,
    /// Block timestamps the fake serves on request (logs carry none, as many endpoints do).
    times: HashMap<u64, u64>,
    /// Periods whose seed is readable.
    seeded: HashSet<u64>,
    /// Open accusations: (slot, period) → deadline.
    accused: HashMap<(B256, u64), u64>,
    /// Accusations the host answered.
    defended: HashSet<(B256, u64)>,
    /// Settled accusations that counted as misses.
    missed: Vec<(B256, u64)>,
    accusations_sent: usize,
    away: bool,
    timestamp_reads: usize,
}

#[derive(Clone, Default)]
struct FakeChain(Arc<Mutex<World>>);

impl FakeChain {
    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self, call: &'static str) -> Result<(), ChainError> {
        if self.w().away { Err(ChainError::Unreachable { call, reason: "fake endpoint away".into() }) } else { Ok(()) }
    }

    /// Mines `event` in a new block at `time`.
    fn mine<E: SolEvent>(&self, event: &E, time: u64) {
        let mut w = self.w();
        w.head += 1;
        w.now = w.now.max(time);
        let block = w.head;
        w.times.insert(block, time);
        w.logs.push(Log {
            inner: alloy::primitives::Log { address: Address::ZERO, data: event.encode_log_data() },
            block_number: Some(block),
            ..Log::default()
        });
    }

    /// Moves the clock (one empty block).
    fn at(&self, time: u64) {
        let mut w = self.w();
        w.head += 1;
        w.now = time;
        let block = w.head;
        w.times.insert(block, time);
    }
}

fn revert(call: &'static str, e: contracts::MarketError) -> ChainError {
    ChainError::Reverted { call, reason: e.name().to_owned() }
}

impl ValidatorChain for FakeChain {
    fn address(&self) -> Address {
        ME
    }

    fn params(&self) -> MarketParams {
        MarketParams {
            period_length: LENGTH,
            proof_timeout: 5,
            response_window: WINDOW,
            max_request_expiry: 0,
            slash_percentage: 10,
            validator_reward_percentage: 20,
            reservation_deposit_percentage: 0,
            reservation_duration: 0,
            dispersal_window: 0,
            accusation_bond: U256::from(7u8),
        }
    }

    async fn head(&self) -> Result<(u64, u64), ChainError> {
        self.check("head")?;
        let w = self.w();
        Ok((w.head, w.now))
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        self.check("logs")?;
        Ok(self.w().logs.iter().filter(|l| l.block_number.is_some_and(|b| (from..=to).contains(&b))).cloned().collect())
    }

    async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        self.check("block_timestamp")?;
        let mut w = self.w();
        w.timestamp_reads += 1;
        w.times.get(&number).copied().ok_or(ChainError::Rpc { call: "block", reason: "no such block".into() })
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        self.check("block_hash")?;
        Ok(alloy::primitives::keccak256(number.to_be_bytes()))
    }

    async fn anchor_periods(&self) -> Result<(), ChainError> {
        self.check("anchor")?;
        let mut w = self.w();
        let next = w.now / LENGTH + 1;
        w.seeded.insert(next);
        Ok(())
    }

    async fn period_seed(&self, q: u64) -> Result<PeriodSeed, ChainError> {
        self.check("period_seed")?;
        let ready = self.w().seeded.contains(&q);
        Ok(PeriodSeed { ready, late: false, anchor_block: U256::from(1u8) })
    }

    async fn accuse(&self, items: &[(B256, u64)], _bond: U256) -> Vec<Result<Vec<MarketEvent>, ChainError>> {
        let away = self.w().away;
        items
            .iter()
            .map(|(slot, q)| {
                if away {
                    return Err(ChainError::Unreachable { call: "accuse", reason: "away".into() });
                }
                let mut w = self.w();
                w.accusations_sent += 1;
                if w.accused.contains_key(&(*slot, *q)) {
                    return Err(revert("accuseMissingProof", contracts::MarketError::ProofNotMissing));
                }
                let deadline = w.now + WINDOW;
                w.accused.insert((*slot, *q), deadline);
                Ok(vec![MarketEvent::ProofAccused { slot_id: *slot, period: *q, accuser: ME, deadline }])
            })
            .collect()
    }

    async fn settle(&self, items: &[(B256, u64)]) -> Vec<Result<Vec<MarketEvent>, ChainError>> {
        let away = self.w().away;
        items
            .iter()
            .map(|(slot, q)| {
                if away {
                    return Err(ChainError::Unreachable { call: "settle", reason: "away".into() });
                }
                let mut w = self.w();
                if w.defended.contains(&(*slot, *q)) {
                    return Err(revert("settleAccusation", contracts::MarketError::NoAccusation));
                }
                match w.accused.get(&(*slot, *q)).copied() {
                    None => Err(revert("settleAccusation", contracts::MarketError::NoAccusation)),
                    Some(deadline) if w.now <= deadline => {
                        Err(revert("settleAccusation", contracts::MarketError::ResponseWindowOpen))
                    }
                    Some(_) => {
                        w.accused.remove(&(*slot, *q));
                        w.missed.push((*slot, *q));
                        Ok(vec![MarketEvent::ProofMissed {
                            slot_id: *slot,
                            period: *q,
                            missed_proofs: 1,
                            validator: ME,
                        }])
                    }
                }
            })
            .collect()
    }
}

fn config(dir: &std::path::Path) -> ValidatorConfig {
    ValidatorConfig {
        chain: contracts::client::ChainConfig {
            endpoint: "http://unused.invalid".into(),
            key_file: dir.join("key"),
            marketplace: Address::ZERO,
        },
        groups: 1,
        group_index: 0,
        state_file: dir.join("state.json"),
        start_block: 0,
        max_batch: 8,
    }
}

const REQUEST: B256 = B256::repeat_byte(1);

/// A started one-slot request filled at `time` (probability 1: every period owes a proof).
fn started_request(chain: &FakeChain, time: u64) -> B256 {
    let ask = Marketplace::Ask {
        slots: 1,
        slotSize: 1024,
        duration: 10_000,
        proofProbability: 1,
        maxSlotLoss: 0,
        repairThreshold: 1,
        pricePerBytePerSecond: 1,
        collateralPerByte: 100,
    };
    let requested = Marketplace::StorageRequested {
        requestId: REQUEST,
        client: Address::ZERO,
        ask,
        expiresAt: time + 100,
        endsAt: time + 10_000,
    };
    chain.mine(&requested, time);
    chain.mine(&Marketplace::SlotFilled { requestId: REQUEST, slotIndex: U256::ZERO, host: Address::ZERO }, time);
    chain.mine(&Marketplace::RequestFulfilled { requestId: REQUEST }, time);
    chain.w().seeded.insert(time / LENGTH + 1); // the next period anchored (by the host, say)
    slot_id(REQUEST, 0)
}

/// Runs the validator's rounds over periods `from..to` (a few rounds per period, the clock
/// moving inside each so that anchoring, checking and settling all get their turn).
async fn run_periods<C: ValidatorChain>(v: &mut Validator<C>, chain: &FakeChain, from: u64, to: u64) {
    for p in from..to {
        for offset in [0, 1, 7] {
            chain.at(p * LENGTH + offset);
            let _ = v.tick().await;
        }
    }
}

#[tokio::test]
async fn a_missed_proof_is_accused_once_and_settled_with_the_reward() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
    run_periods(&mut v, &chain, 1, 4).await;
    let w = chain.w();
    // periods 1 and 2 were seeded ahead, owed and not proven: each accused once and settled
    assert!(w.missed.contains(&(slot, 1)) && w.missed.contains(&(slot, 2)), "{:?}", w.missed);
    assert_eq!(w.accusations_sent, w.missed.len() + w.accused.len(), "no accusation sent twice");
    drop(w);
    assert_eq!(v.state().stats.marks as usize, chain.w().missed.len());
    let reward: u128 = v.state().stats.rewards.parse().expect("amount");
    // 10 % of 1024 · 100 = 10,240 slashed per miss, 20 % of it to the validator
    assert_eq!(reward, 2_048 * v.state().stats.marks as u128);
}

#[tokio::test]
async fn a_proven_period_is_not_accused() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    chain.mine(&Marketplace::ProofSubmitted { slotId: slot, period: U256::from(1u8) }, 12);
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
    run_periods(&mut v, &chain, 1, 4).await;
    let w = chain.w();
    assert!(!w.missed.contains(&(slot, 1)) && !w.accused.contains_key(&(slot, 1)), "period 1 was proven");
    assert!(w.accused.contains_key(&(slot, 2)) || w.missed.contains(&(slot, 2)), "period 2 was not");
}

#[tokio::test]
async fn a_defended_accusation_is_forgotten_and_counts_no_miss() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
    run_periods(&mut v, &chain, 1, 2).await;
    chain.at(21);
    v.tick().await.expect("tick"); // period 1 accused during period 2
    assert!(v.state().accusations.iter().any(|a| a.slot_id == slot && a.period == 1));
    chain.w().defended.insert((slot, 1)); // the host answers with its proof
    chain.w().accused.remove(&(slot, 1));
    chain.mine(&Marketplace::AccusationDismissed { slotId: slot, period: U256::from(1u8) }, 27);
    run_periods(&mut v, &chain, 3, 4).await;
    assert!(!chain.w().missed.contains(&(slot, 1)));
    assert!(!v.state().accusations.iter().any(|a| a.slot_id == slot && a.period == 1));
    assert_eq!(v.state().stats.dismissed, 1);
}

#[tokio::test]
async fn an_old_fill_read_after_catching_up_is_accused_at_its_blocks_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    // the slot was filled long ago; the validator starts much later
    let slot = started_request(&chain, 5);
    chain.w().seeded.insert(99);
    chain.at(99 * LENGTH);
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
    run_periods(&mut v, &chain, 100, 102).await;
    assert!(chain.w().timestamp_reads > 0, "the logs' block times were read");
    let w = chain.w();
    assert!(w.accused.contains_key(&(slot, 99)) || w.missed.contains(&(slot, 99)), "period 99 accused");
}

#[tokio::test]
async fn an_outage_mid_round_loses_nothing_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
    run_periods(&mut v, &chain, 1, 2).await;
    chain.w().away = true;
    chain.at(2 * LENGTH + 1);
    assert!(v.tick().await.is_err());
    chain.w().away = false;
    run_periods(&mut v, &chain, 2, 5).await;
    let w = chain.w();
    assert!(w.missed.contains(&(slot, 1)), "period 1's miss settled after the outage");
    assert_eq!(w.accusations_sent, w.missed.len() + w.accused.len(), "no accusation sent twice");
}

#[tokio::test]
async fn a_restarted_validator_settles_the_accusations_it_made_before() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    {
        let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator");
        run_periods(&mut v, &chain, 1, 2).await;
        chain.at(21);
        v.tick().await.expect("tick");
        assert!(v.state().accusations.iter().any(|a| a.slot_id == slot));
    }
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("restarted");
    assert!(v.state().accusations.iter().any(|a| a.slot_id == slot), "open accusations kept in the state file");
    run_periods(&mut v, &chain, 3, 4).await;
    assert!(chain.w().missed.contains(&(slot, 1)));
}
