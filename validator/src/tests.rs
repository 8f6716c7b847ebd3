//! The validator's loop against an in-memory marketplace: logs (with or without their blocks'
//! timestamps), seeds, accusations that hosts answer or not, settlements, and outages. Each test
//! asserts what was accused and settled on the fake chain and what the validator counted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use contracts::client::{ChainError, MarketParams};
use contracts::{MarketEvent, Marketplace};

use crate::chain::{PeriodSeed, ValidatorChain};
use crate::offchain::{Expected, MAX_TRIES, ProofCheck, ProofNet, Verdict};
use crate::service::{Validator, ValidatorConfig};
use crate::state::slot_id;
use contracts::offchain::PublishedProof;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

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
    root_reads: usize,
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
            max_missed_proofs: 3,
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

    async fn request_root(&self, request_id: B256) -> Result<B256, ChainError> {
        self.check("request_root")?;
        self.w().root_reads += 1;
        Ok(keccak256(request_id))
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
        fault_accuse_proven: false,
    }
}

const REQUEST: B256 = B256::repeat_byte(1);
const HOST: Address = Address::repeat_byte(0x40);

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
    chain.mine(&Marketplace::SlotFilled { requestId: REQUEST, slotIndex: U256::ZERO, host: HOST }, time);
    chain.mine(&Marketplace::RequestFulfilled { requestId: REQUEST }, time);
    chain.w().seeded.insert(time / LENGTH + 1); // the next period anchored (by the host, say)
    slot_id(REQUEST, 0)
}

/// Runs the validator's rounds over periods `from..to` (a few rounds per period, the clock
/// moving inside each so that anchoring, checking and settling all get their turn).
async fn run_periods<C: ValidatorChain, N: ProofNet>(v: &mut Validator<C, N>, chain: &FakeChain, from: u64, to: u64) {
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

// ------------------------------------------------------------------ proofs off the chain

/// A host's network as the validator sees it: the proofs each host answers with, and who was
/// asked for what.
#[derive(Clone, Default)]
struct FakeNet {
    answers: Arc<Mutex<HashMap<(B256, u64), PublishedProof>>>,
    asked: Arc<Mutex<Vec<(Address, B256, u64)>>>,
    /// Hosts that never answer (the request hangs).
    hang: bool,
}

impl ProofNet for FakeNet {
    async fn ask(&self, host: Address, slot_id: B256, period: u64) -> Result<Option<PublishedProof>, String> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).push((host, slot_id, period));
        if self.hang {
            tokio::time::sleep(std::time::Duration::from_secs(3_600)).await;
        }
        match self.answers.lock().unwrap_or_else(PoisonError::into_inner).get(&(slot_id, period)) {
            Some(p) => Ok(Some(*p)),
            None => Err("host not reached".into()),
        }
    }
}

/// A stand-in for the pairing: a proof is valid when its first word is the entropy it answers.
#[derive(Clone, Default)]
struct FakeCheck {
    calls: Arc<AtomicUsize>,
}

impl ProofCheck for FakeCheck {
    fn check_all(&self, items: &[(PublishedProof, Expected)]) -> Vec<Verdict> {
        self.calls.fetch_add(items.len(), Ordering::SeqCst);
        items
            .iter()
            .map(|(p, e)| {
                if (p.dataset_root, p.entropy, p.slot_index) != (e.dataset_root, e.entropy, e.slot_index) {
                    Verdict::WrongInputs
                } else if p.proof[0] == e.entropy {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                }
            })
            .collect()
    }
}

/// The proof an honest host publishes for the slot in period `q` (the fake chain's seeds come
/// from block 1's hash).
fn honest_proof(slot: B256, q: u64) -> PublishedProof {
    let seed = contracts::rules::seed_from_anchor(keccak256(1u64.to_be_bytes()));
    let entropy = contracts::rules::entropy(seed, slot, q);
    let mut proof = [U256::ZERO; 8];
    proof[0] = entropy;
    PublishedProof { slot_id: slot, period: q, slot_index: 0, dataset_root: keccak256(REQUEST), entropy, proof }
}

struct OffRig {
    chain: FakeChain,
    net: FakeNet,
    check: FakeCheck,
    proofs: mpsc::Sender<PublishedProof>,
    slot: B256,
}

fn off_chain_validator(dir: &std::path::Path, config: ValidatorConfig) -> (OffRig, Validator<FakeChain, FakeNet>) {
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    let (net, check) = (FakeNet::default(), FakeCheck::default());
    let (proofs, inbox) = mpsc::channel(4096);
    let v = Validator::on(chain.clone(), ValidatorConfig { state_file: dir.join("state.json"), ..config })
        .expect("validator")
        .with_proofs(net.clone(), check.clone(), inbox);
    (OffRig { chain, net, check, proofs, slot }, v)
}

#[tokio::test]
async fn proofs_published_off_the_chain_are_verified_and_never_accused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) = off_chain_validator(dir.path(), config(dir.path()));
    for q in 1..4 {
        rig.proofs.try_send(honest_proof(rig.slot, q)).expect("queue");
        run_periods(&mut v, &rig.chain, q, q + 1).await;
    }
    run_periods(&mut v, &rig.chain, 4, 5).await;
    let w = rig.chain.w();
    assert_eq!(w.accusations_sent, 0, "no accusation: {:?}", w.accused);
    assert_eq!(v.metrics().proofs_verified.get(), 3);
    assert!(rig.net.asked.lock().expect("asked").is_empty(), "nobody asked: every proof came by broadcast");
    assert_eq!(w.root_reads, 1, "the request's root is read once");
}

#[tokio::test]
async fn a_proof_missed_by_broadcast_is_fetched_from_its_host_before_any_accusation() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) = off_chain_validator(dir.path(), config(dir.path()));
    rig.net.answers.lock().expect("answers").insert((rig.slot, 1), honest_proof(rig.slot, 1));
    run_periods(&mut v, &rig.chain, 1, 4).await;
    let w = rig.chain.w();
    assert!(!w.accused.contains_key(&(rig.slot, 1)) && !w.missed.contains(&(rig.slot, 1)), "period 1 fetched");
    assert!(w.accused.contains_key(&(rig.slot, 2)) || w.missed.contains(&(rig.slot, 2)), "period 2 withheld");
    drop(w);
    assert_eq!(v.metrics().proofs_fetched.get(), 1);
    let asked = rig.net.asked.lock().expect("asked").clone();
    assert_eq!(&asked[..2], &[(HOST, rig.slot, 1), (HOST, rig.slot, 2)], "the slot's host was asked, once a period");
}

#[tokio::test]
async fn a_wrong_proof_is_refused_and_accused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) = off_chain_validator(dir.path(), config(dir.path()));
    let mut wrong = honest_proof(rig.slot, 1);
    wrong.proof[0] += U256::from(1u8); // a pairing that fails
    let mut stale = honest_proof(rig.slot, 1);
    stale.entropy += U256::from(1u8); // another period's entropy
    rig.proofs.try_send(wrong).expect("queue");
    rig.proofs.try_send(stale).expect("queue");
    rig.net.answers.lock().expect("answers").insert((rig.slot, 1), wrong); // and answers with it
    run_periods(&mut v, &rig.chain, 1, 3).await;
    assert!(rig.chain.w().accused.contains_key(&(rig.slot, 1)) || rig.chain.w().missed.contains(&(rig.slot, 1)));
    assert!(v.metrics().proofs_invalid.get() >= 2, "{}", v.metrics().proofs_invalid.get());
    assert_eq!(v.metrics().proofs_verified.get(), 0);
}

#[tokio::test]
async fn junk_on_the_topic_costs_bounded_checks_and_no_honest_host_is_accused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) = off_chain_validator(dir.path(), config(dir.path()));
    rig.chain.at(LENGTH); // period 1
    // proofs of slots nobody watches, of far periods, and well-formed junk for the real slot
    for i in 0..500u64 {
        let mut p = honest_proof(keccak256(i.to_be_bytes()), 1);
        p.proof[0] = U256::ZERO;
        rig.proofs.try_send(p).expect("queue");
        rig.proofs.try_send(PublishedProof { period: 1_000 + i, ..honest_proof(rig.slot, 1) }).expect("queue");
        let mut junk = honest_proof(rig.slot, 1);
        junk.proof[1] = U256::from(i);
        junk.proof[0] = U256::from(i);
        rig.proofs.try_send(junk).expect("queue");
    }
    v.tick().await.expect("tick");
    assert_eq!(v.metrics().proofs_received.get(), 1_500);
    assert_eq!(rig.check.calls.load(Ordering::SeqCst), usize::from(MAX_TRIES), "at most MAX_TRIES checks");
    // the honest proof arrives after the flood: dropped unchecked, but its host answers when asked
    rig.proofs.try_send(honest_proof(rig.slot, 1)).expect("queue");
    rig.net.answers.lock().expect("answers").insert((rig.slot, 1), honest_proof(rig.slot, 1));
    run_periods(&mut v, &rig.chain, 1, 3).await;
    assert!(!rig.chain.w().accused.contains_key(&(rig.slot, 1)));
    assert!(!rig.chain.w().missed.contains(&(rig.slot, 1)));
    assert_eq!(v.metrics().proofs_fetched.get(), 1);
}

#[tokio::test]
async fn a_validator_restarted_mid_period_keeps_the_proofs_it_verified() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) = off_chain_validator(dir.path(), config(dir.path()));
    rig.proofs.try_send(honest_proof(rig.slot, 1)).expect("queue");
    rig.chain.at(LENGTH + 3);
    v.tick().await.expect("tick");
    assert_eq!(v.metrics().proofs_verified.get(), 1);
    drop(v);
    let (_, inbox) = mpsc::channel(1);
    let mut v = Validator::on(rig.chain.clone(), config(dir.path())).expect("restarted").with_proofs(
        rig.net.clone(),
        rig.check.clone(),
        inbox,
    );
    run_periods(&mut v, &rig.chain, 2, 3).await;
    assert_eq!(rig.chain.w().accusations_sent, 0, "period 1 was proven before the restart");
    assert!(rig.net.asked.lock().expect("asked").is_empty());
}

#[tokio::test]
async fn a_griefing_validator_accuses_proven_periods() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rig, mut v) =
        off_chain_validator(dir.path(), ValidatorConfig { fault_accuse_proven: true, ..config(dir.path()) });
    rig.proofs.try_send(honest_proof(rig.slot, 1)).expect("queue");
    run_periods(&mut v, &rig.chain, 1, 2).await;
    rig.chain.at(2 * LENGTH + 1);
    v.tick().await.expect("tick");
    assert_eq!(v.metrics().proofs_verified.get(), 1);
    assert!(rig.chain.w().accused.contains_key(&(rig.slot, 1)), "accused although proven");
}

#[tokio::test]
async fn a_host_that_never_answers_costs_one_time_limit_and_is_accused() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = FakeChain::default();
    let slot = started_request(&chain, 5);
    let (_proofs, inbox) = mpsc::channel(1);
    let net = FakeNet { hang: true, ..FakeNet::default() };
    let mut v = Validator::on(chain.clone(), config(dir.path())).expect("validator").with_proofs(
        net,
        FakeCheck::default(),
        inbox,
    );
    let started = std::time::Instant::now();
    run_periods(&mut v, &chain, 1, 3).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    let w = chain.w();
    assert!(w.accused.contains_key(&(slot, 1)) || w.missed.contains(&(slot, 1)), "accused after the time limit");
}
