//! The host engine against the fake chain: every fault a host met (or could meet) with its
//! collateral at stake, each asserting what the chain and the disk hold afterwards, not only
//! that nothing failed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use contracts::RequestState;
use tokio::sync::Notify;

use super::availabilities::Availabilities;
use super::chain::ProofWords;
use super::fake_chain::{FakeChain, Fault, MARKET, World};
use super::follower::load_state;
use super::host::{Host, HostConfig, SaleBook};
use super::records::RecordDir;
use super::sale::{SaleRecord, SaleState};
use super::selling::Served;
use super::slot_work::{SlotFiles, SlotWork};
use super::types::AvailabilityInput;
use super::{MarketError, ProofMode};
use contracts::offchain::PublishedProof;

const SLOT: u64 = 1024;
const COLLATERAL_PER_BYTE: u128 = 10;
const COLLATERAL: u128 = SLOT as u128 * COLLATERAL_PER_BYTE;
const FUNDS: u64 = 1_000_000;
const HOST: Address = Address::repeat_byte(0xa1);
const OTHER: Address = Address::repeat_byte(0xb2);

/// Slot work on files in a temporary directory, with a stand-in prover whose proofs the fake
/// chain checks (entropy, slot id, a digest of the data).
#[derive(Default)]
struct FakeSlots {
    dir: PathBuf,
    /// Slot indices whose fetch fails.
    fail: Mutex<HashSet<u64>>,
    /// Requests whose fetch waits for `gate` (a repair hand-off, a slow peer).
    gated: Mutex<HashSet<B256>>,
    gate: Arc<Notify>,
    /// Fetches that panic, counted down.
    panics: AtomicUsize,
    fetched: AtomicUsize,
    deleted: Mutex<Vec<B256>>,
    published: Mutex<Vec<PublishedProof>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotWork for FakeSlots {
    async fn fetch(
        &self,
        sale: &SaleRecord,
        _request: &contracts::Marketplace::Request,
    ) -> Result<SlotFiles, MarketError> {
        if locked(&self.gated).contains(&sale.request_id) {
            self.gate.notified().await;
        }
        if self.panics.load(Ordering::SeqCst) > 0 {
            self.panics.fetch_sub(1, Ordering::SeqCst);
            panic!("injected panic in a sale");
        }
        if locked(&self.fail).contains(&sale.slot_index) {
            return Err(MarketError::Local("no peer serves the slot".into()));
        }
        let cells = self.dir.join(format!("{:x}.cells", sale.slot_id));
        let tree = self.dir.join(format!("{:x}.tree", sale.slot_id));
        std::fs::write(&cells, sale.slot_id.repeat(32))?;
        std::fs::write(&tree, b"tree")?;
        self.fetched.fetch_add(1, Ordering::SeqCst);
        Ok(SlotFiles { cells, tree, cid: format!("slot-{:x}", sale.slot_id) })
    }

    async fn prove(&self, sale: &SaleRecord, entropy: U256) -> Result<ProofWords, MarketError> {
        let cells = sale.cells.as_ref().ok_or_else(|| MarketError::Local("no cells".into()))?;
        let data = std::fs::read(cells)?;
        let mut proof = [U256::ZERO; 8];
        proof[0] = entropy;
        proof[1] = U256::from_be_bytes(sale.slot_id.0);
        proof[2] = U256::from_be_bytes(keccak256(&data).0);
        Ok(proof)
    }

    async fn publish(&self, proof: PublishedProof) {
        locked(&self.published).push(proof);
    }

    async fn delete(&self, sale: &SaleRecord) {
        for path in [&sale.cells, &sale.tree].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
        locked(&self.deleted).push(sale.slot_id);
    }
}

type TestHost = Host<FakeChain, FakeSlots>;

/// A host on a fake chain, in a directory that survives its restarts.
struct Rig {
    world: Arc<Mutex<World>>,
    dir: tempfile::TempDir,
    host: Arc<TestHost>,
}

fn config() -> HostConfig {
    HostConfig {
        slot_size: SLOT,
        max_sales: 4,
        start_block: 0,
        tick: Duration::from_millis(5),
        retry_after: Duration::from_millis(40),
        min_lease_secs: 15,
        proofs: ProofMode::OnChain,
    }
}

fn availability(slots: u64) -> AvailabilityInput {
    AvailabilityInput {
        total_size: Some(slots * SLOT),
        duration: Some(10_000),
        min_price_per_byte_per_second: Some("1".into()),
        total_collateral: Some((u128::from(slots) * COLLATERAL).to_string()),
        enabled: None,
        until: None,
    }
}

/// A host at `dir` on `world` (a restart when the directory was used before).
fn host_at(world: &Arc<Mutex<World>>, dir: &std::path::Path, me: Address, config: HostConfig) -> Arc<TestHost> {
    let market = dir.join("market");
    let slots = dir.join("slots");
    std::fs::create_dir_all(&slots).expect("slots dir");
    let availabilities =
        Availabilities::open(RecordDir::open(&market.join("availabilities")).expect("dir")).expect("open");
    let sales = SaleBook::open(RecordDir::open(&market.join("sales")).expect("dir")).expect("open");
    availabilities.reconcile(&sales.held()).expect("reconcile"); // as the node does at start
    Arc::new(Host {
        chain: FakeChain { world: Arc::clone(world), me },
        work: FakeSlots { dir: slots, ..FakeSlots::default() },
        availabilities: Arc::new(availabilities),
        sales: Arc::new(sales),
        dir: market,
        outbox: Arc::new(Mutex::new(super::outbox::Outbox::new(1_000))),
        config,
    })
}

impl Rig {
    /// A host with funds and an availability of `slots` slots.
    fn new(slots: u64) -> Self {
        Self::with(slots, config())
    }

    fn with(slots: u64, config: HostConfig) -> Self {
        let world = FakeChain::world();
        world_of(&world).balances.insert(HOST, U256::from(FUNDS));
        let dir = tempfile::tempdir().expect("tmp");
        let host = host_at(&world, dir.path(), HOST, config);
        if slots > 0 {
            host.availabilities.add(availability(slots), u64::MAX).expect("availability");
        }
        Self { world, dir, host }
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        world_of(&self.world)
    }

    /// The same host after a crash: everything in memory gone, the directory kept.
    fn restart(&mut self) {
        self.host = host_at(&self.world, self.dir.path(), HOST, self.host.config.clone());
    }

    fn request(&self, slots: u16) -> B256 {
        self.w().post_request(slots, SLOT, COLLATERAL_PER_BYTE)
    }

    fn balance(&self) -> U256 {
        self.w().balance(HOST)
    }

    /// The slots of `request` this host holds on chain.
    fn held(&self, request: B256) -> Vec<usize> {
        let w = self.w();
        let n = w.requests[&request].slots.len();
        (0..n).filter(|i| w.holder(request, *i) == HOST).collect()
    }

    fn sales(&self) -> Vec<SaleRecord> {
        self.host.sales.all()
    }

    fn sale_of(&self, request: B256, state: SaleState) -> Option<SaleRecord> {
        self.sales().into_iter().find(|s| s.request_id == request && s.state == state)
    }

    fn free_size(&self) -> u64 {
        self.host.availabilities.list().iter().map(|a| a.free_size).sum()
    }

    fn free_collateral(&self) -> u128 {
        self.host
            .availabilities
            .list()
            .iter()
            .map(|a| a.total_remaining_collateral.parse::<u128>().expect("amount"))
            .sum()
    }

    /// Runs the follower and the prover until `done` holds (or panics after 5 s).
    async fn run_until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        let follow = tokio::spawn(Arc::clone(&self.host).follow());
        let prove = tokio::spawn(Arc::clone(&self.host).prove_forever());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        follow.abort();
        prove.abort();
    }

    /// One proving round (checks, proofs, payouts) without the follower.
    async fn prove_round(&self) {
        let prove = tokio::spawn(Arc::clone(&self.host).prove_forever());
        tokio::time::sleep(Duration::from_millis(60)).await;
        prove.abort();
    }
}

fn world_of(world: &Arc<Mutex<World>>) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spent(rig: &Rig) -> U256 {
    U256::from(FUNDS) - rig.balance()
}

fn deposit() -> U256 {
    U256::from(COLLATERAL / 10)
}

// ------------------------------------------------------------------ a sale's happy path

#[tokio::test]
async fn a_new_request_is_served_with_one_slot_and_the_collateral_paid_once() {
    let rig = Rig::new(4);
    let request = rig.request(3);
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    let held = rig.held(request);
    assert_eq!(held.len(), 1);
    assert_eq!(rig.w().fills(request, held[0]), 1);
    assert_eq!(spent(&rig), U256::from(COLLATERAL), "deposit plus the rest of the collateral");
    assert_eq!(rig.w().balance(MARKET), U256::from(COLLATERAL));
    let sale = rig.sale_of(request, SaleState::Proving).expect("proving");
    assert!(sale.cells.as_ref().is_some_and(|c| c.exists()));
    assert_eq!((rig.free_size(), rig.free_collateral()), (3 * SLOT, 3 * COLLATERAL));
    // and serving it again takes no second slot
    assert_eq!(rig.host.serve(request, None).await.expect("again"), Served::Never("holding one of its slots already"));
    assert_eq!(rig.held(request).len(), 1);
}

#[tokio::test]
async fn a_request_for_another_slot_size_or_too_late_is_never_served() {
    let rig = Rig::new(4);
    let other_size = rig.w().post_request(2, 2 * SLOT, 1);
    assert!(matches!(rig.host.serve(other_size, None).await, Ok(Served::Never(_))));
    let late = rig.request(2);
    let soon = rig.w().now + 5;
    rig.w().requests.get_mut(&late).expect("request").expires_at = soon;
    assert!(matches!(rig.host.serve(late, None).await, Ok(Served::Never(_))));
    assert_eq!(spent(&rig), U256::ZERO);
    assert_eq!(rig.free_size(), 4 * SLOT, "nothing drawn");
}

// ------------------------------------------------------------------ fills in doubt

#[tokio::test]
async fn a_fill_whose_receipt_comes_after_the_timeout_is_kept() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    rig.w().faults.entry("fill").or_default().push_back(Fault::LandsUnanswered);
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    let held = rig.held(request);
    assert_eq!(held.len(), 1);
    let sale = rig.sale_of(request, SaleState::Proving).expect("the chain's word decided");
    assert!(sale.cells.as_ref().is_some_and(|c| c.exists()), "the data of a held slot is kept");
    assert!(locked(&rig.host.work.deleted).is_empty());
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn a_fill_with_no_answer_and_no_word_from_the_chain_keeps_everything_and_is_retried() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    rig.w().faults.entry("fill").or_default().push_back(Fault::Unreachable);
    // the first holder check passes (nobody), the fill is lost, the second check fails
    rig.w().faults.insert("slot_host", [Fault::Pass, Fault::Unreachable].into_iter().collect());
    let first = rig.host.serve(request, None).await;
    assert!(matches!(first, Err(MarketError::Chain(ref e)) if e.is_unreachable()), "{first:?}");
    let sale = rig.sale_of(request, SaleState::Filling).expect("still filling");
    assert!(sale.cells.as_ref().is_some_and(|c| c.exists()), "nothing deleted on doubt");
    assert_eq!(sale.fills_unanswered, 1);
    assert_eq!(rig.host.serve(request, None).await.expect("retry"), Served::Holding);
    assert_eq!(rig.held(request), vec![sale.slot_index as usize], "the same slot, not another");
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn a_resend_while_the_first_fill_lands_fills_once() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    rig.w().faults.entry("fill").or_default().push_back(Fault::LandsUnanswered);
    // the holder is unknown after the fill, so the task fails and the sale stays Filling
    rig.w().faults.insert("slot_host", [Fault::Pass, Fault::Unreachable].into_iter().collect());
    let first = rig.host.serve(request, None).await;
    assert!(first.is_err(), "{first:?}");
    let second = rig.host.serve(request, None).await.expect("resumed");
    assert_eq!(second, Served::Holding);
    let w = rig.w();
    let fills: usize = w.sent[&HOST].iter().filter(|c| **c == "fill").count();
    assert_eq!(fills, 1, "the resumed sale asked the chain instead of filling again");
    drop(w);
    assert_eq!(rig.held(request).len(), 1);
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn a_stale_proof_is_proven_again_and_the_slot_filled_once() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    // the period moves on between the challenge and the fill
    rig.w().faults.entry("fill").or_default().push_back(Fault::ClockJump(10));
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    let held = rig.held(request);
    assert_eq!(held.len(), 1);
    assert_eq!(rig.w().fills(request, held[0]), 1);
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn a_refused_fill_gives_the_slot_up_and_the_next_one_is_taken_without_holding_two() {
    let rig = Rig::new(4);
    let request = rig.request(3);
    // the lease lapses while the host proves: the fill is refused (NotReserved)
    rig.w().faults.entry("fill").or_default().push_back(Fault::ClockJump(500));
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    assert_eq!(rig.held(request).len(), 1, "one slot of the request, never two");
    let errored = rig.sale_of(request, SaleState::Errored).expect("the first slot given up");
    assert!(errored.cells.is_none());
    assert_eq!(*locked(&rig.host.work.deleted), vec![errored.slot_id]);
    // the lapsed lease's deposit is lost, the new slot's collateral paid in full
    assert_eq!(spent(&rig), deposit() + U256::from(COLLATERAL));
    assert_eq!(rig.free_size(), 3 * SLOT, "one slot's worth drawn, the given-up one returned");
}

#[tokio::test]
async fn a_reservation_whose_answer_was_lost_is_used_not_paid_twice() {
    let rig = Rig::new(4);
    let request = rig.request(1);
    rig.w().faults.entry("reserve").or_default().push_back(Fault::LandsUnanswered);
    assert!(rig.host.serve(request, None).await.is_err());
    assert!(rig.sale_of(request, SaleState::Reserving).is_some(), "recorded before it was sent");
    assert_eq!(rig.free_size(), 3 * SLOT, "the draw stays with the recorded reservation");
    assert_eq!(rig.host.serve(request, None).await.expect("again"), Served::Holding);
    assert_eq!(spent(&rig), U256::from(COLLATERAL), "one deposit, counted towards the collateral");
}

// ------------------------------------------------------------------ fetches and availabilities

#[tokio::test]
async fn a_slot_that_cannot_be_fetched_is_given_up_with_its_data_and_its_draw() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    locked(&rig.host.work.fail).extend([0, 1]);
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Later("no slot open to this host"));
    assert!(rig.held(request).is_empty());
    assert_eq!(rig.sales().iter().filter(|s| s.state == SaleState::Errored).count(), 2);
    assert_eq!((rig.free_size(), rig.free_collateral()), (4 * SLOT, 4 * COLLATERAL));
    assert_eq!(spent(&rig), deposit() * U256::from(2u8), "two leases held, to lapse");
    // once the peers serve it, the host uses the lease it still holds: no third deposit
    locked(&rig.host.work.fail).clear();
    assert_eq!(rig.host.serve(request, None).await.expect("again"), Served::Holding);
    assert_eq!(spent(&rig), deposit() + U256::from(COLLATERAL));
}

#[tokio::test]
async fn a_request_passed_over_is_served_once_an_availability_appears() {
    let rig = Rig::new(0);
    let request = rig.request(2);
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Later("no availability takes it"));
    let follow = tokio::spawn(Arc::clone(&rig.host).follow());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.held(request).is_empty());
    rig.host.availabilities.add(availability(1), u64::MAX).expect("availability");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.held(request).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    follow.abort();
    assert_eq!(rig.free_size(), 0);
}

#[tokio::test]
async fn two_sales_for_the_last_slot_of_room_take_it_once() {
    let rig = Rig::new(1);
    let (a, b) = (rig.request(1), rig.request(1));
    let (ra, rb) = tokio::join!(rig.host.serve(a, None), rig.host.serve(b, None));
    let outcomes = [ra.expect("a"), rb.expect("b")];
    assert_eq!(outcomes.iter().filter(|o| **o == Served::Holding).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Served::Later("no availability takes it")));
    assert_eq!((rig.free_size(), rig.free_collateral()), (0, 0));
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

// ------------------------------------------------------------------ the follower

#[tokio::test]
async fn two_requests_are_served_at_once_while_a_hand_off_wait_runs() {
    let rig = Rig::new(4);
    let waiting = rig.request(2);
    locked(&rig.host.work.gated).insert(waiting);
    let other = rig.request(2);
    rig.run_until("the second request served while the first waits", |r| r.held(other).len() == 1).await;
    assert!(rig.held(waiting).is_empty(), "the first is still waiting for its hand-off");
    assert!(rig.sale_of(waiting, SaleState::Downloading).is_some());
    rig.host.work.gate.notify_waiters();
    locked(&rig.host.work.gated).clear();
    rig.run_until("the first served after its wait", |r| r.held(waiting).len() == 1).await;
}

#[tokio::test]
async fn pending_requests_survive_a_restart_with_the_cursor() {
    let mut rig = Rig::new(0);
    let request = rig.request(2);
    let follow = tokio::spawn(Arc::clone(&rig.host).follow());
    let records = RecordDir::open(&rig.host.dir.join("follower")).expect("dir");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = load_state(&records, 0).expect("state");
        if state.next_block > 1 && state.pending.iter().any(|p| p.request_id == request) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    follow.abort();
    let _ = follow.await;
    rig.restart();
    rig.host.availabilities.add(availability(2), u64::MAX).expect("availability");
    // the log was read already: only the persisted pending list can bring the request back
    rig.run_until("served after the restart", |r| r.held(request).len() == 1).await;
}

#[tokio::test]
async fn a_request_that_can_no_longer_be_filled_leaves_the_pending_list() {
    let rig = Rig::new(0);
    let request = rig.request(2);
    rig.run_until("pending", |r| {
        let records = RecordDir::open(&r.host.dir.join("follower")).expect("dir");
        load_state(&records, 0).expect("state").pending.len() == 1
    })
    .await;
    rig.w().end_request(request, RequestState::Cancelled);
    rig.host.availabilities.add(availability(1), u64::MAX).expect("availability");
    rig.run_until("dropped", |r| {
        let records = RecordDir::open(&r.host.dir.join("follower")).expect("dir");
        load_state(&records, 0).expect("state").pending.is_empty()
    })
    .await;
    assert!(rig.sales().is_empty());
}

#[tokio::test]
async fn a_sale_task_that_panics_is_seen_and_its_request_served_later() {
    let rig = Rig::new(2);
    rig.host.work.panics.store(1, Ordering::SeqCst);
    let request = rig.request(2);
    rig.run_until("served after the panic", |r| r.held(request).len() == 1).await;
    assert_eq!(rig.host.work.panics.load(Ordering::SeqCst), 0, "the panic happened");
}

#[tokio::test]
async fn a_host_started_while_the_chain_is_away_joins_it_when_it_returns() {
    let rig = Rig::new(2);
    rig.w().away = true;
    let request = rig.request(2);
    let follow = tokio::spawn(Arc::clone(&rig.host).follow());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(rig.held(request).is_empty());
    rig.w().away = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.held(request).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    follow.abort();
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn at_most_max_sales_run_at_once() {
    let mut config = config();
    config.max_sales = 2;
    let rig = Rig::with(8, config);
    let requests: Vec<B256> = (0..4).map(|_| rig.request(1)).collect();
    for r in &requests {
        locked(&rig.host.work.gated).insert(*r);
    }
    let follow = tokio::spawn(Arc::clone(&rig.host).follow());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let downloading = rig.sales().iter().filter(|s| s.state == SaleState::Downloading).count();
    assert_eq!(downloading, 2, "two sales under way, two requests waiting their turn");
    locked(&rig.host.work.gated).clear();
    rig.host.work.gate.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while requests.iter().any(|r| rig.held(*r).is_empty()) {
        assert!(tokio::time::Instant::now() < deadline, "not all served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    follow.abort();
}

// ------------------------------------------------------------------ crashes at every step

/// Runs a sale of a fresh request with a crash at call `k` (a transaction applied first when
/// `after_apply`), restarts the host and lets it finish; returns whether the crash happened.
async fn crash_and_resume(k: usize, after_apply: bool) -> bool {
    let mut rig = Rig::new(4);
    let request = rig.request(2);
    {
        let mut w = rig.w();
        w.calls = 0;
        w.crash_at = Some(k);
        w.crash_after_apply = after_apply;
    }
    let run = tokio::time::timeout(Duration::from_millis(300), rig.host.serve(request, None)).await;
    let crashed = rig.w().crashed;
    if !crashed {
        assert!(matches!(run, Ok(Ok(Served::Holding))), "k = {k}: {run:?}");
    }
    rig.w().crash_at = None;
    rig.restart();
    rig.run_until(&format!("resumed after a crash at call {k}"), |r| r.sale_of(request, SaleState::Proving).is_some())
        .await;
    let held = rig.held(request);
    assert_eq!(held.len(), 1, "k = {k}, after_apply = {after_apply}: one slot held");
    assert_eq!(rig.w().fills(request, held[0]), 1, "k = {k}: filled once");
    let sale = rig.sale_of(request, SaleState::Proving).expect("proving");
    assert_eq!(sale.slot_index as usize, held[0], "k = {k}: the record names the held slot");
    assert!(sale.cells.as_ref().is_some_and(|c| c.exists()), "k = {k}: the held slot's data is there");
    // at most one lapsed deposit: a crash after the reservation keeps the lease it paid for
    assert!(spent(&rig) <= U256::from(COLLATERAL) + deposit(), "k = {k}: spent {}", spent(&rig));
    assert_eq!(spent(&rig), U256::from(COLLATERAL), "k = {k}: the lease was reused");
    assert_eq!((rig.free_size(), rig.free_collateral()), (3 * SLOT, 3 * COLLATERAL), "k = {k}: one slot's worth drawn");
    crashed
}

#[tokio::test]
async fn a_host_crashing_at_every_step_of_a_sale_resumes_without_loss_or_double_fill() {
    let mut k = 1;
    while crash_and_resume(k, false).await {
        k += 1;
    }
    assert!(k > 8, "a sale takes more than {k} calls");
}

#[tokio::test]
async fn a_host_crashing_right_after_each_transaction_lands_resumes_without_loss_or_double_fill() {
    let mut k = 1;
    while crash_and_resume(k, true).await {
        k += 1;
    }
    assert!(k > 8);
}

// ------------------------------------------------------------------ endings

/// A rig whose host holds a slot of a started request (the other slot filled by another host).
async fn holding() -> (Rig, B256, SaleRecord) {
    holding_with(config()).await
}

/// A host holding one slot of a started request, its proofs going off the chain.
async fn holding_off_chain() -> (Rig, B256, SaleRecord) {
    holding_with(HostConfig { proofs: ProofMode::OffChain, ..config() }).await
}

async fn holding_with(config: HostConfig) -> (Rig, B256, SaleRecord) {
    let rig = Rig::with(4, config);
    let request = rig.request(2);
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    {
        let mut w = rig.w();
        let now = w.now;
        let r = w.requests.get_mut(&request).expect("request");
        for s in &mut r.slots {
            if s.host == Address::ZERO {
                s.host = OTHER;
            }
        }
        r.state = RequestState::Started;
        r.ends_at = now + 3_600;
    }
    let sale = rig.sale_of(request, SaleState::Proving).expect("proving");
    (rig, request, sale)
}

/// Moves the clock into the next period, where another party accuses the slot of missing its
/// proof of `period` (the host has five seconds to answer).
fn accuse_in_next_period(rig: &Rig, slot_id: B256, period: u64) {
    let mut w = rig.w();
    w.now += w.params.period_length;
    let deadline = w.now + 5;
    w.accusations.insert((slot_id, period), super::chain::Accusation { accuser: OTHER, deadline });
}

/// Moves the fake chain's clock to the next period (the fill answered for its own).
fn next_period(rig: &Rig) -> u64 {
    let mut w = rig.w();
    w.now += w.params.period_length;
    w.period()
}

#[tokio::test]
async fn a_finished_sale_is_paid_and_deletes_its_data() {
    let (rig, request, sale) = holding().await;
    rig.w().end_request(request, RequestState::Finished);
    rig.prove_round().await;
    let done = rig.sale_of(request, SaleState::Finished).expect("finished");
    assert!(!sale.cells.as_ref().expect("cells").exists(), "data deleted");
    assert!(done.cells.is_none());
    let pay = U256::from(SLOT * 3_600);
    assert_eq!(rig.balance(), U256::from(FUNDS) + pay, "collateral back and paid");
    assert_eq!((rig.free_size(), rig.free_collateral()), (4 * SLOT, 4 * COLLATERAL));
}

#[tokio::test]
async fn a_cancelled_sale_gets_its_collateral_back_and_deletes_its_data() {
    let (rig, request, sale) = holding().await;
    rig.w().end_request(request, RequestState::Cancelled);
    rig.prove_round().await;
    assert!(rig.sale_of(request, SaleState::Cancelled).is_some());
    assert!(!sale.cells.as_ref().expect("cells").exists());
    assert_eq!(rig.balance(), U256::from(FUNDS));
    assert_eq!(rig.free_size(), 4 * SLOT);
}

#[tokio::test]
async fn a_failed_request_frees_the_slot_and_deletes_its_data() {
    let (rig, request, sale) = holding().await;
    rig.w().end_request(request, RequestState::Failed);
    rig.prove_round().await;
    let ended = rig.sales().into_iter().find(|s| s.request_id == request).expect("sale");
    assert!(!ended.state.is_live(), "{:?}", ended.state);
    assert!(!sale.cells.as_ref().expect("cells").exists());
    assert_eq!(rig.free_size(), 4 * SLOT);
}

#[tokio::test]
async fn a_lost_slot_fails_the_sale_deletes_its_data_and_keeps_the_collateral_gone() {
    let (rig, request, sale) = holding().await;
    rig.w().lose_slot(request, sale.slot_index as usize);
    rig.prove_round().await;
    let failed = rig.sale_of(request, SaleState::Failed).expect("failed");
    assert!(failed.error.is_some());
    assert!(!sale.cells.as_ref().expect("cells").exists());
    assert_eq!((rig.free_size(), rig.free_collateral()), (4 * SLOT, 3 * COLLATERAL));
}

#[tokio::test]
async fn a_restarted_host_that_finds_its_slot_in_repair_stops_proving_it() {
    let (mut rig, request, sale) = holding().await;
    rig.w().lose_slot(request, sale.slot_index as usize);
    rig.restart();
    let period = rig.w().period();
    rig.w().required.insert((sale.slot_id, period));
    rig.prove_round().await;
    assert!(rig.sale_of(request, SaleState::Failed).is_some());
    assert!(rig.w().proofs.is_empty(), "no proof for a slot it no longer holds");
    assert!(!sale.cells.as_ref().expect("cells").exists());
}

#[tokio::test]
async fn a_repair_slot_is_served_by_another_host() {
    let (rig, request, sale) = holding().await;
    // another host's slot is lost; this host already holds one slot of the request
    let other = 1 - sale.slot_index as usize;
    rig.w().lose_slot(request, other);
    assert!(matches!(rig.host.serve(request, Some(vec![other as u64])).await, Ok(Served::Never(_))));
    let second = tempfile::tempdir().expect("tmp");
    let repairer = host_at(&rig.world, second.path(), OTHER, config());
    rig.w().balances.insert(OTHER, U256::from(FUNDS));
    repairer.availabilities.add(availability(1), u64::MAX).expect("availability");
    assert_eq!(repairer.serve(request, Some(vec![other as u64])).await.expect("repair"), Served::Holding);
    assert_eq!(rig.w().holder(request, other), OTHER);
}

// ------------------------------------------------------------------ proving

#[tokio::test]
async fn a_required_proof_is_submitted_with_the_periods_entropy() {
    let (rig, _, sale) = holding().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    rig.prove_round().await;
    assert!(rig.w().proofs.contains_key(&(sale.slot_id, period)));
    let after = rig.host.sales.get(&sale.slot_id).expect("sale");
    assert_eq!((after.proofs_submitted, after.last_proven_period), (1, Some(period)));
}

#[tokio::test]
async fn an_accused_proof_that_did_not_get_through_is_defended() {
    let (rig, _, sale) = holding().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    rig.w().faults.insert("submit_proof", std::iter::repeat_n(Fault::Unreachable, 1_000).collect());
    let prover = tokio::spawn(Arc::clone(&rig.host).prove_forever());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(rig.w().proofs.is_empty());
    // the slot's data goes away: only the proof kept in the outbox can answer now
    std::fs::remove_file(sale.cells.as_ref().expect("cells")).expect("remove");
    accuse_in_next_period(&rig, sale.slot_id, period);
    tokio::time::sleep(Duration::from_millis(60)).await;
    prover.abort();
    assert_eq!(rig.w().defences, vec![(sale.slot_id, period)]);
}

#[tokio::test]
async fn off_the_chain_a_required_proof_is_published_and_kept_never_submitted() {
    let (rig, _, sale) = holding_off_chain().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    let entropy = super::fake_chain::period_entropy(sale.slot_id, period);
    rig.prove_round().await;
    assert!(rig.w().proofs.is_empty(), "no submitProof");
    let published = locked(&rig.host.work.published).clone();
    assert_eq!(published.len(), 1, "published once, not once per round");
    let p = published[0];
    assert_eq!((p.slot_id, p.period, p.slot_index, p.entropy), (sale.slot_id, period, sale.slot_index, entropy));
    assert_eq!(rig.host.outbox.lock().expect("outbox").get(sale.slot_id, period), Some(&p), "kept for requests");
    let after = rig.host.sales.get(&sale.slot_id).expect("sale");
    assert_eq!((after.proofs_submitted, after.last_proven_period), (1, Some(period)));
}

#[tokio::test]
async fn off_the_chain_an_accusation_is_answered_with_the_published_proof() {
    let (rig, _, sale) = holding_off_chain().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    let prover = tokio::spawn(Arc::clone(&rig.host).prove_forever());
    tokio::time::sleep(Duration::from_millis(60)).await;
    // the slot's data goes away: only the published proof can answer now
    std::fs::remove_file(sale.cells.as_ref().expect("cells")).expect("remove");
    accuse_in_next_period(&rig, sale.slot_id, period);
    tokio::time::sleep(Duration::from_millis(60)).await;
    prover.abort();
    assert_eq!(rig.w().defences, vec![(sale.slot_id, period)]);
    assert!(rig.w().proofs.is_empty(), "nothing submitted unasked");
}

#[tokio::test]
async fn off_the_chain_an_unaccused_period_costs_no_transaction() {
    let (rig, _, sale) = holding_off_chain().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    let prover = tokio::spawn(Arc::clone(&rig.host).prove_forever());
    tokio::time::sleep(Duration::from_millis(40)).await;
    for _ in 0..2 {
        next_period(&rig);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    prover.abort();
    assert!(rig.w().defences.is_empty());
    assert!(rig.w().proofs.is_empty());
    assert_eq!(locked(&rig.host.work.published).len(), 1);
}

#[tokio::test]
async fn off_the_chain_a_restarted_host_answers_an_accusation_of_the_period_before() {
    let (mut rig, _, sale) = holding_off_chain().await;
    let period = next_period(&rig);
    rig.w().required.insert((sale.slot_id, period));
    rig.prove_round().await;
    assert_eq!(locked(&rig.host.work.published).len(), 1);
    // a crash: the outbox is gone with the process; the next period begins, an accusation comes
    rig.restart();
    accuse_in_next_period(&rig, sale.slot_id, period);
    rig.prove_round().await;
    assert_eq!(rig.w().defences, vec![(sale.slot_id, period)], "proven again from the slot's data and defended");
}

#[tokio::test]
async fn a_proof_for_the_next_period_is_made_ahead_and_sent_when_it_begins() {
    let (rig, _, sale) = holding().await;
    let next = next_period(&rig) + 1;
    rig.w().required.insert((sale.slot_id, next));
    let prover = tokio::spawn(Arc::clone(&rig.host).prove_forever());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(rig.w().proofs.is_empty());
    // the slot's data goes away: only the proof made ahead can answer the next period
    std::fs::remove_file(sale.cells.as_ref().expect("cells")).expect("remove");
    {
        let mut w = rig.w();
        w.now += w.params.period_length;
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    prover.abort();
    assert!(rig.w().proofs.contains_key(&(sale.slot_id, next)), "the proof made ahead was sent");
}

// ------------------------------------------------------------------ other hosts, dispersal, hostile values

#[tokio::test]
async fn a_slot_leased_by_another_host_is_left_to_it() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    {
        let mut w = rig.w();
        let lapses = w.now + 100;
        w.requests.get_mut(&request).expect("request").slots[0].lease = Some((OTHER, lapses));
    }
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Holding);
    assert_eq!(rig.held(request), vec![1]);
    assert_eq!(spent(&rig), U256::from(COLLATERAL));
}

#[tokio::test]
async fn slots_not_yet_open_to_this_host_are_taken_once_dispersal_opens_them() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    {
        let mut w = rig.w();
        let at = w.now + 30;
        for s in &mut w.requests.get_mut(&request).expect("request").slots {
            s.eligible_at.insert(HOST, at);
        }
    }
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Later("no slot open to this host"));
    assert_eq!((spent(&rig), rig.free_size()), (U256::ZERO, 4 * SLOT), "nothing paid, nothing drawn");
    assert!(rig.sales().is_empty(), "no record of a sale that never reserved");
    rig.w().now += 30;
    assert_eq!(rig.host.serve(request, None).await.expect("later"), Served::Holding);
}

#[tokio::test]
async fn repairers_wait_for_the_first_lost_slot_rather_than_take_another() {
    let (rig, request, _) = holding().await;
    let second = tempfile::tempdir().expect("tmp");
    let repairer = host_at(&rig.world, second.path(), OTHER, config());
    rig.w().balances.insert(OTHER, U256::from(FUNDS));
    repairer.availabilities.add(availability(2), u64::MAX).expect("availability");
    {
        let mut w = rig.w();
        let r = w.requests.get_mut(&request).expect("request");
        for s in &mut r.slots {
            s.host = Address::ZERO;
        }
        let at = w.now + 50;
        w.requests.get_mut(&request).expect("request").slots[0].eligible_at.insert(OTHER, at);
    }
    let lost = Some(vec![0, 1]);
    let outcome = repairer.serve(request, lost.clone()).await.expect("serve");
    assert_eq!(outcome, Served::Later("the first lost slot is not yet open to this host"));
    assert_eq!(rig.w().holder(request, 1), Address::ZERO, "the second lost slot was not taken first");
    rig.w().now += 50;
    assert_eq!(repairer.serve(request, lost).await.expect("later"), Served::Holding);
    assert_eq!(rig.w().holder(request, 0), OTHER);
}

#[tokio::test]
async fn a_payout_whose_answer_was_lost_is_collected_once() {
    let (rig, request, _) = holding().await;
    rig.w().end_request(request, RequestState::Finished);
    rig.w().faults.insert("free_slot", [Fault::LandsUnanswered].into_iter().collect());
    let prover = tokio::spawn(Arc::clone(&rig.host).prove_forever());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.sale_of(request, SaleState::Finished).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "never finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    prover.abort();
    assert_eq!(rig.balance(), U256::from(FUNDS) + U256::from(SLOT * 3_600), "paid once");
    assert_eq!(rig.free_size(), 4 * SLOT, "the availability got the slot back once");
}

#[tokio::test]
async fn hostile_request_values_are_refused_without_a_panic() {
    let rig = Rig::new(4);
    let request = rig.request(2);
    {
        let mut w = rig.w();
        let r = w.requests.get_mut(&request).expect("request");
        r.request.ask.collateralPerByte = u128::MAX;
        r.request.ask.duration = u64::MAX;
        r.expires_at = u64::MAX;
    }
    // collateral beyond any availability: passed over, nothing drawn
    assert_eq!(rig.host.serve(request, None).await.expect("serve"), Served::Later("no availability takes it"));
    let empty = rig.request(0);
    assert!(matches!(rig.host.serve(empty, None).await, Ok(Served::Never(_))));
    assert_eq!((spent(&rig), rig.free_size()), (U256::ZERO, 4 * SLOT));
}

#[tokio::test]
async fn a_repair_whose_slots_others_filled_is_not_looked_at_again() {
    let (rig, request, sale) = holding().await;
    let other = 1 - sale.slot_index as usize;
    rig.w().lose_slot(request, other);
    let third = Address::repeat_byte(0xc3);
    rig.w().requests.get_mut(&request).expect("request").slots[other].host = third;
    let second = tempfile::tempdir().expect("tmp");
    let repairer = host_at(&rig.world, second.path(), OTHER, config());
    repairer.availabilities.add(availability(1), u64::MAX).expect("availability");
    let outcome = repairer.serve(request, Some(vec![other as u64])).await.expect("serve");
    assert_eq!(outcome, Served::Never("every slot filled"));
    assert_eq!(repairer.availabilities.list()[0].free_size, SLOT, "nothing drawn");
}
