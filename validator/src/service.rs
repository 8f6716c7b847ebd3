//! The validator's loop. Each tick it reads the marketplace's new logs into its [`State`] and
//! checks the proofs hosts published off the chain since the last tick (see [`crate::offchain`]);
//! once per period it anchors the next period's seed (one transaction; a second one only where a
//! period outlasts `blockhash`'s 256 blocks); once the previous period has ended and a grace time has passed, it
//! works out, from that period's seed, the `ProofSubmitted` logs and the proofs it verified,
//! which of its group's slots owed a proof and gave none, asks their hosts for them directly, and
//! accuses those still without a valid proof in batches (consecutive nonces, one block for a
//! batch), each accusation with the marketplace's ether bond; and once an accusation's response window has passed without the
//! host defending it, it settles it (again in batches): the miss counts against the host, and
//! the validator gets its reward and its bond back. RPC calls grow with the missed proofs, not
//! with the slots watched: a slot that proved or was not selected costs none. Restarts resume
//! from the state file (open accusations included); a period is checked once.
//!
//! A log's time is its block's timestamp: the blocks whose logs came without one are read (once
//! per batch), never given the head's time. Values from the chain are converted fallibly and
//! combined with checked or saturating arithmetic: a log whose values do not fit is ignored (and
//! logged), never a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use contracts::client::{Chain, ChainConfig, ChainError, LOG_RANGE};
use contracts::offchain::PublishedProof;
use tokio::sync::mpsc;

use crate::chain::ValidatorChain;
use contracts::{MarketError, MarketEvent};
use tracing::{debug, info, warn};

use crate::challenge::{ProofTimes, owes_proof, seed_from_anchor, selected};
use crate::metrics::ValidatorMetrics;
use crate::offchain::{Expected, MAX_TRIES, NoNet, ProofCheck, ProofNet, Verdict};
use crate::state::{
    Applied, OpenAccusation, RequestWatch, State, accusation_by, blocks_without_time, fill_block_times,
};

const LOG: &str = "vellum::validator";

/// How often the loop looks at the chain.
pub const TICK: Duration = Duration::from_millis(500);
/// Broadcast proofs taken from the network per tick (the rest wait in its bounded queue).
const PROOFS_PER_TICK: usize = 20_000;
/// Hosts asked for missing proofs at once.
const CONCURRENT_ASKS: usize = 16;
/// Blocks after its anchoring call at which a period's seed is stored by a second call, should
/// the period still be going (`blockhash` reaches 256 blocks back).
const SEED_STORE_AFTER: u64 = 128;
/// Periods whose seeds are remembered.
const SEEDS_KEPT: usize = 8;

/// What a validator needs.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// The chain and the wallet.
    pub chain: ChainConfig,
    /// Validators sharing the work: this one watches slots with `slotId mod groups == group_index`.
    pub groups: u64,
    /// This validator's group.
    pub group_index: u64,
    /// Where the state is kept.
    pub state_file: PathBuf,
    /// First block to read on the first start.
    pub start_block: u64,
    /// Most accusations (or settlements) sent in one batch.
    pub max_batch: usize,
    /// Fault injection for tests: accuse every required proof, also those proven (a validator
    /// griefing honest hosts).
    pub fault_accuse_proven: bool,
}

/// Why the validator stopped.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The chain could not be reached at start.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The state file could not be read or written.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What one period's check found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodReport {
    /// The period checked.
    pub period: u64,
    /// Slots of this group watched.
    pub watched: usize,
    /// Slots that owed a proof and gave none.
    pub missed: usize,
    /// Of those, accused by this validator.
    pub accused: usize,
}

/// A running validator, on the wallet's client or (in tests) any [`ValidatorChain`], reaching
/// hosts through a [`ProofNet`].
pub struct Validator<C = Chain, N = NoNet> {
    chain: C,
    config: ValidatorConfig,
    state: State,
    anchored: Option<(u64, u64, u8)>,
    metrics: std::sync::Arc<ValidatorMetrics>,
    offchain: Option<OffChain<N>>,
    /// Seeds of recent periods (`None`: anchored late, nothing required).
    seeds: BTreeMap<u64, Option<U256>>,
}

/// What checking proofs off the chain needs.
struct OffChain<N> {
    net: Arc<N>,
    checker: Arc<dyn ProofCheck>,
    inbox: mpsc::Receiver<PublishedProof>,
    /// Pairings spent per (slot, period).
    tries: HashMap<(B256, u64), u8>,
    /// The hosts last handed to [`ProofNet::watch`], and the period they were.
    watched: (std::collections::BTreeSet<alloy::primitives::Address>, u64),
}

impl Validator<Chain> {
    /// Connects and loads the state.
    pub async fn connect(config: ValidatorConfig) -> Result<Self, ValidatorError> {
        if config.groups == 0 || config.group_index >= config.groups {
            return Err(ValidatorError::Config(format!(
                "--validator-group-index {} must be below --validator-groups {}",
                config.group_index, config.groups
            )));
        }
        let chain = Chain::connect(&config.chain).await?;
        info!(target: LOG, marketplace = %chain.marketplace_address(), "marketplace");
        Self::on(chain, config)
    }
}

impl<C: ValidatorChain> Validator<C, NoNet> {
    /// A validator on `chain`, its state loaded from the configured file.
    pub fn on(chain: C, config: ValidatorConfig) -> Result<Self, ValidatorError> {
        let state = State::load(&config.state_file, config.start_block)
            .map_err(|source| ValidatorError::State { path: config.state_file.clone(), source })?;
        info!(
            target: LOG,
            address = %chain.address(),
            groups = config.groups,
            group = config.group_index,
            cursor = state.cursor,
            "validator started"
        );
        let metrics = std::sync::Arc::new(ValidatorMetrics::new());
        metrics.marks.inc_by(state.stats.marks);
        metrics.marks_refused.inc_by(state.stats.marks_refused);
        metrics.accusations.inc_by(state.stats.accusations);
        metrics.accusations_lost.inc_by(state.stats.dismissed);
        metrics.rewards.set(state.stats.rewards.parse::<f64>().unwrap_or(0.0));
        Ok(Self { chain, config, state, anchored: None, metrics, offchain: None, seeds: BTreeMap::new() })
    }

    /// Checks proofs off the chain: broadcasts arrive on `inbox`, missing ones are asked for
    /// through `net`, and all are verified with `checker` (the deployment's verifying key).
    /// Without this, only proofs on chain count.
    pub fn with_proofs<N: ProofNet>(
        self,
        net: N,
        checker: impl ProofCheck,
        inbox: mpsc::Receiver<PublishedProof>,
    ) -> Validator<C, N> {
        Validator {
            chain: self.chain,
            config: self.config,
            state: self.state,
            anchored: self.anchored,
            metrics: self.metrics,
            offchain: Some(OffChain {
                net: Arc::new(net),
                checker: Arc::new(checker),
                inbox,
                tries: HashMap::new(),
                watched: Default::default(),
            }),
            seeds: self.seeds,
        }
    }
}

impl<C: ValidatorChain, N: ProofNet> Validator<C, N> {
    /// The validator's metrics (shared: serve them while it runs).
    pub fn metrics(&self) -> std::sync::Arc<ValidatorMetrics> {
        std::sync::Arc::clone(&self.metrics)
    }

    /// The wallet's address.
    pub fn address(&self) -> alloy::primitives::Address {
        self.chain.address()
    }

    /// The state as it stands.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs until the task is dropped.
    pub async fn run(mut self) -> Result<(), ValidatorError> {
        if self.config.fault_accuse_proven {
            warn!(target: LOG, "fault injection: every required proof is accused, proven or not");
        }
        loop {
            tokio::time::sleep(TICK).await;
            match self.tick().await {
                Ok(Some(report)) => info!(
                    target: LOG,
                    period = report.period,
                    watched = report.watched,
                    missed = report.missed,
                    accused = report.accused,
                    open_accusations = self.state.accusations.len(),
                    marks_total = self.state.stats.marks,
                    rewards_total = %self.state.stats.rewards,
                    "period checked"
                ),
                Ok(None) => {}
                Err(e) => debug!(target: LOG, error = %e, "round incomplete"),
            }
        }
    }

    /// One round: read logs, anchor, check the previous period once. Returns the period's report
    /// when one was checked. A batch of logs is applied only once the timestamps of its blocks
    /// are known (the round stops there otherwise, and the batch is read again next round).
    pub async fn tick(&mut self) -> Result<Option<PeriodReport>, ValidatorError> {
        let (head, now) = self.chain.head().await?;
        let length = self.chain.params().period_length.max(1);
        let period = now / length;
        let before = self.state.clone();
        while self.state.cursor <= head {
            let to = head.min(self.state.cursor.saturating_add(LOG_RANGE - 1));
            let mut logs = self.chain.logs(self.state.cursor, to).await?;
            let mut times = BTreeMap::new();
            for number in blocks_without_time(&logs) {
                let time = if number == head { now } else { self.chain.block_timestamp(number).await? };
                times.insert(number, time);
            }
            fill_block_times(&mut logs, &times);
            for log in &logs {
                if let Applied::Ignored(why) = self.state.apply(log, self.config.groups, self.config.group_index) {
                    warn!(
                        target: LOG,
                        block = ?log.block_number,
                        tx = ?log.transaction_hash,
                        topic = ?log.topic0(),
                        why,
                        "marketplace log ignored"
                    );
                }
                // This validator's own accusations, also those a crash kept out of the state file.
                if let Some((slot_id, period, deadline)) = accusation_by(log, self.chain.address()) {
                    self.remember(slot_id, period, deadline);
                }
            }
            match to.checked_add(1) {
                Some(next) => self.state.cursor = next,
                None => break, // the last block there can be: read again next round
            }
        }
        self.metrics.accusations_lost.inc_by(self.state.stats.dismissed.saturating_sub(before.stats.dismissed));
        self.take_proofs(period).await;
        let mut report = None;
        let previous = period.checked_sub(1);
        let proof_timeout = self.chain.params().proof_timeout;
        let period_start = period.saturating_mul(length);
        let window_open = now < period_start.saturating_add(proof_timeout);
        // Proofs published at the very end of a period get a grace time to arrive.
        let graced = self.offchain.is_none() || now >= period_start.saturating_add(grace(proof_timeout));
        if let Some(q) = previous
            && self.state.checked_period.is_none_or(|c| c < q)
            && window_open
            && graced
        {
            report = Some(self.check(q).await?);
            self.state.checked_period = Some(q);
        }
        // Accusations first: their window is the shortest (a few seconds on test chains, where
        // each transaction waits for a block); anchoring the next period and settling can wait.
        // (A slot a settlement below takes from its host may thus be accused once more, for
        // nothing but its bond's round trip.)
        self.anchor(period, head).await;
        self.settle(now).await;
        self.state.prune(now, period, &self.times());
        self.metrics.slots_watched.set(i64::try_from(self.state.slots.len()).unwrap_or(i64::MAX));
        if let Some(r) = &report {
            self.metrics.periods_checked.inc();
            self.metrics.proofs_missed.inc_by(r.missed as u64);
        }
        if self.state != before {
            self.state
                .save(&self.config.state_file)
                .map_err(|source| ValidatorError::State { path: self.config.state_file.clone(), source })?;
        }
        Ok(report)
    }

    /// Anchors the next period on the first round of each period: one transaction per period
    /// for the whole network (hosts anchor only when no validator has, well into the period).
    /// The next period's first call also stores the seed this call anchored; only on a chain
    /// where a period spans more blocks than `blockhash` reaches (256) is a second call needed
    /// to store it in time, and it is made [`SEED_STORE_AFTER`] blocks after the first.
    async fn anchor(&mut self, period: u64, head: u64) {
        let due = match self.anchored {
            Some((p, _, _)) if p != period => true,
            None => true,
            Some((_, block, 1)) => head >= block.saturating_add(SEED_STORE_AFTER),
            Some(_) => false,
        };
        if !due {
            return;
        }
        match self.chain.anchor_periods().await {
            Ok(_) => {
                let calls = match self.anchored {
                    Some((p, _, n)) if p == period => n.saturating_add(1),
                    _ => 1,
                };
                self.anchored = Some((period, head, calls));
            }
            Err(e) => debug!(target: LOG, error = %e, "anchoring failed"),
        }
    }

    /// The marketplace's proof timing.
    fn times(&self) -> ProofTimes {
        let p = self.chain.params();
        ProofTimes {
            period_length: p.period_length,
            proof_timeout: p.proof_timeout,
            response_window: p.response_window,
        }
    }

    /// Period `q`'s seed if proofs could be required in it (anchored in advance), read once.
    /// `Ok(None)`: nothing is required in `q`, or its seed is not known yet (then not remembered).
    async fn seed(&mut self, q: u64) -> Result<Option<U256>, ValidatorError> {
        if let Some(known) = self.seeds.get(&q) {
            return Ok(*known);
        }
        let info = self.chain.period_seed(q).await?;
        if !info.ready {
            return Ok(None);
        }
        let seed = if info.late {
            None
        } else if let Ok(anchor) = u64::try_from(info.anchor_block) {
            Some(seed_from_anchor(self.chain.block_hash(anchor).await?))
        } else {
            warn!(target: LOG, period = q, anchor = %info.anchor_block, "anchor block beyond u64: period not checked");
            None
        };
        self.seeds.insert(q, seed);
        while self.seeds.len() > SEEDS_KEPT {
            self.seeds.pop_first();
        }
        Ok(seed)
    }

    /// What the chain fixes for a proof of `slot_id` in `q`, if the slot owed one then.
    async fn expected(&mut self, slot_id: B256, q: u64) -> Result<Option<Expected>, ValidatorError> {
        let Some(slot) = self.state.slots.get(&slot_id).cloned() else { return Ok(None) };
        let Some(request) = self.state.requests.get(&slot.request_id).cloned() else { return Ok(None) };
        let Some(started) = request.started_at else { return Ok(None) };
        let length = self.chain.params().period_length.max(1);
        if !owes_proof(q, started, slot.filled_at, request.ends_at, length) {
            return Ok(None);
        }
        let Some(seed) = self.seed(q).await? else { return Ok(None) };
        if !selected(seed, slot_id, q, request.probability) {
            return Ok(None);
        }
        let root = match request.root {
            Some(root) => root,
            None => {
                let root = self.chain.request_root(slot.request_id).await?;
                if let Some(r) = self.state.requests.get_mut(&slot.request_id) {
                    r.root = Some(root);
                }
                root
            }
        };
        Ok(Some(Expected {
            dataset_root: root,
            entropy: contracts::rules::entropy(seed, slot_id, q),
            slot_index: slot.index,
        }))
    }

    /// Checks proofs and records the valid ones as proven; returns how many were valid.
    /// Broadcasts are `capped`: a (slot, period) gets at most [`MAX_TRIES`] checks from them, so
    /// junk cannot cost more; a proof its host answers with directly is always checked (junk
    /// from others cannot shut the host out).
    async fn verify(&mut self, proofs: Vec<PublishedProof>, capped: bool) -> Result<usize, ValidatorError> {
        let mut items = Vec::new();
        for p in proofs {
            let key = (p.slot_id, p.period);
            if self.state.proven.get(&p.period).is_some_and(|s| s.contains(&p.slot_id)) {
                continue; // proven already
            }
            let Some(off) = self.offchain.as_mut() else { return Ok(0) };
            if capped && off.tries.get(&key).is_some_and(|t| *t >= MAX_TRIES) {
                continue;
            }
            let Some(expected) = self.expected(p.slot_id, p.period).await? else { continue };
            if let Some(off) = self.offchain.as_mut() {
                let tries = off.tries.entry(key).or_default();
                *tries = tries.saturating_add(1);
            }
            items.push((p, expected));
        }
        let Some(off) = self.offchain.as_ref() else { return Ok(0) };
        if items.is_empty() {
            return Ok(0);
        }
        let checker = Arc::clone(&off.checker);
        let (items, verdicts) = tokio::task::spawn_blocking(move || {
            let verdicts = checker.check_all(&items);
            (items, verdicts)
        })
        .await
        .map_err(|e| ValidatorError::Config(format!("proof checks stopped: {e}")))?;
        let mut valid = 0;
        for ((p, _), verdict) in items.iter().zip(verdicts) {
            if verdict == Verdict::Valid {
                if self.state.proven.entry(p.period).or_default().insert(p.slot_id) {
                    valid += 1;
                    self.metrics.proofs_verified.inc();
                }
            } else {
                self.metrics.proofs_invalid.inc();
                debug!(target: LOG, slot = %p.slot_id, period = p.period, ?verdict, "proof refused");
            }
        }
        Ok(valid)
    }

    /// Takes the proofs broadcast since the last tick (of recent periods) and checks them.
    async fn take_proofs(&mut self, period: u64) {
        let Some(off) = self.offchain.as_mut() else { return };
        let hosts: std::collections::BTreeSet<_> = self.state.slots.values().map(|s| s.host).collect();
        if off.watched.1 != period || hosts != off.watched.0 {
            off.net.watch(hosts.iter().copied().collect());
            off.watched = (hosts, period);
        }
        let mut batch = Vec::new();
        while batch.len() < PROOFS_PER_TICK {
            match off.inbox.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        off.tries.retain(|(_, q), _| q.saturating_add(2) >= period);
        if batch.is_empty() {
            return;
        }
        self.metrics.proofs_received.inc_by(batch.len() as u64);
        batch.retain(|p| p.period <= period && p.period.saturating_add(2) >= period);
        if let Err(e) = self.verify(batch, true).await {
            debug!(target: LOG, error = %e, "proofs not checked this round");
        }
    }

    /// Asks the hosts of `missed` slots for their proofs of `q` ([`CONCURRENT_ASKS`] at a time,
    /// all within one time limit however many there are) and checks the answers; returns the
    /// slots still without a valid proof.
    async fn ask_hosts(&mut self, q: u64, missed: Vec<(B256, B256)>) -> Vec<(B256, B256)> {
        let Some(off) = self.offchain.as_ref() else { return missed };
        let deadline = tokio::time::Instant::now() + ask_limit(self.chain.params().proof_timeout);
        self.metrics.proofs_asked.inc_by(missed.len() as u64);
        let turns = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ASKS));
        let mut tasks = tokio::task::JoinSet::new();
        for (id, _) in &missed {
            let host = self.state.slots.get(id).map(|s| s.host).unwrap_or_default();
            let (net, turns, id) = (Arc::clone(&off.net), Arc::clone(&turns), *id);
            tasks.spawn(async move {
                let _turn = turns.acquire_owned().await.map_err(|e| e.to_string())?;
                net.ask(host, id, q).await
            });
        }
        let mut answers = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(Ok(Some(p))))) if p.period == q => answers.push(p),
                Ok(Some(Ok(Ok(_)))) => {}
                Ok(Some(Ok(Err(e)))) => debug!(target: LOG, period = q, error = %e, "host not reached for a proof"),
                Ok(Some(Err(e))) => warn!(target: LOG, error = %e, "proof request task failed"),
                Err(_) => {
                    debug!(target: LOG, period = q, unanswered = tasks.len(), "hosts did not answer in time");
                    tasks.abort_all();
                    break;
                }
            }
        }
        let asked: std::collections::BTreeSet<B256> = missed.iter().map(|(id, _)| *id).collect();
        answers.retain(|p| asked.contains(&p.slot_id));
        match self.verify(answers, false).await {
            Ok(n) => {
                self.metrics.proofs_fetched.inc_by(n as u64);
            }
            Err(e) => debug!(target: LOG, error = %e, "fetched proofs not checked"),
        }
        let proven = self.state.proven.get(&q);
        missed.into_iter().filter(|(id, _)| !proven.is_some_and(|p| p.contains(id))).collect()
    }

    /// Finds the slots of this group that owed a proof in period `q` and gave none (on chain or
    /// off it), asks their hosts, and accuses those still without one, each with the bond. A
    /// request is watched until it settles: the last period that overlaps it owes proofs too,
    /// even once its end has passed.
    async fn check(&mut self, q: u64) -> Result<PeriodReport, ValidatorError> {
        let mut report = PeriodReport { period: q, watched: self.state.slots.len(), ..PeriodReport::default() };
        let Some(seed) = self.seed(q).await? else {
            return Ok(report); // nothing could be required in q (or its seed is unknown)
        };
        let length = self.chain.params().period_length.max(1);
        let proven = self.state.proven.get(&q);
        let mut missed = Vec::new();
        for (id, slot) in &self.state.slots {
            let Some(request) = self.state.requests.get(&slot.request_id) else { continue };
            let Some(started) = request.started_at else { continue };
            let owes = owes_proof(q, started, slot.filled_at, request.ends_at, length)
                && (self.config.fault_accuse_proven || !proven.is_some_and(|p| p.contains(id)))
                && selected(seed, *id, q, request.probability);
            if owes {
                missed.push((*id, slot.request_id));
            }
        }
        if !self.config.fault_accuse_proven && !missed.is_empty() {
            missed = self.ask_hosts(q, missed).await;
        }
        report.missed = missed.len();
        let params = self.chain.params();
        let bond = params.accusation_bond;
        let fallback_deadline = self.chain.head().await.map_or(0, |(_, t)| t).saturating_add(params.response_window);
        for chunk in missed.chunks(self.config.max_batch.max(1)) {
            let items: Vec<(B256, u64)> = chunk.iter().map(|(id, _)| (*id, q)).collect();
            let results = self.chain.accuse(&items, bond).await;
            for ((id, request_id), result) in chunk.iter().zip(results) {
                match result {
                    Ok(events) => {
                        report.accused = report.accused.saturating_add(1);
                        let deadline = events
                            .iter()
                            .find_map(|e| match e {
                                MarketEvent::ProofAccused { deadline, .. } => Some(*deadline),
                                _ => None,
                            })
                            .unwrap_or(fallback_deadline);
                        debug!(target: LOG, slot = %id, request = %request_id, period = q, deadline, "missing proof accused");
                        self.remember(*id, q, deadline);
                    }
                    Err(e) => {
                        self.state.stats.marks_refused = self.state.stats.marks_refused.saturating_add(1);
                        self.metrics.marks_refused.inc();
                        warn!(target: LOG, slot = %id, period = q, error = %e, "missing proof not accused");
                    }
                }
            }
        }
        Ok(report)
    }

    /// Records an accusation of this validator (once: it is seen both in its transaction's
    /// receipt and in the logs), with the reward it earns if it stands.
    fn remember(&mut self, slot_id: B256, period: u64, deadline: u64) {
        if self.state.accusations.iter().any(|a| a.slot_id == slot_id && a.period == period) {
            return;
        }
        let request_id = self.state.slots.get(&slot_id).map_or(B256::ZERO, |s| s.request_id);
        let reward = self.state.requests.get(&request_id).map_or(0, |r| validator_reward(r, &self.chain.params()));
        self.state.accusations.push(OpenAccusation { slot_id, request_id, period, deadline, reward });
        self.state.stats.accusations = self.state.stats.accusations.saturating_add(1);
        self.metrics.accusations.inc();
    }

    /// Settles this validator's accusations whose response window has passed (the host did not
    /// defend): each becomes a missed proof, with the reward and the bond paid to this
    /// validator. An accusation that is gone (dismissed, or settled by someone else) is
    /// forgotten; one that cannot be settled yet, or whose settlement did not get through, is
    /// tried again on a later round.
    async fn settle(&mut self, now: u64) {
        let due: Vec<OpenAccusation> = self.state.accusations.iter().filter(|a| a.deadline < now).cloned().collect();
        if due.is_empty() {
            return;
        }
        for chunk in due.chunks(self.config.max_batch.max(1)) {
            let items: Vec<(B256, u64)> = chunk.iter().map(|a| (a.slot_id, a.period)).collect();
            let results = self.chain.settle(&items).await;
            for (a, result) in chunk.iter().zip(results) {
                let done = match result {
                    Ok(events) => {
                        let missed = events.iter().any(|e| matches!(e, MarketEvent::ProofMissed { .. }));
                        if events.iter().any(|e| matches!(e, MarketEvent::SlotLost { .. })) {
                            // (the log itself is read on a later round; no more accusations meanwhile)
                            self.state.slots.remove(&a.slot_id);
                        }
                        if missed {
                            self.state.stats.marks = self.state.stats.marks.saturating_add(1);
                            self.metrics.marks.inc();
                            let total: u128 = self.state.stats.rewards.parse().unwrap_or(0);
                            self.state.stats.rewards = total.saturating_add(a.reward).to_string();
                            self.metrics.rewards.set(total.saturating_add(a.reward) as f64);
                        }
                        self.metrics.accusations_settled.inc();
                        info!(target: LOG, slot = %a.slot_id, period = a.period, missed, "accusation settled");
                        true
                    }
                    Err(e) if e.market_error() == Some(MarketError::ResponseWindowOpen) || e.is_unreachable() => false,
                    Err(e) if e.market_error() == Some(MarketError::NoAccusation) => {
                        debug!(target: LOG, slot = %a.slot_id, period = a.period, "accusation already settled or dismissed");
                        true
                    }
                    Err(e) => {
                        warn!(target: LOG, slot = %a.slot_id, period = a.period, error = %e, "accusation not settled");
                        false
                    }
                };
                if done {
                    self.state.accusations.retain(|o| !(o.slot_id == a.slot_id && o.period == a.period));
                }
            }
        }
    }
}

/// How long after a period ends its proofs may still arrive before missing ones are asked for
/// and accused: a quarter of the accusation window (at most two minutes), leaving the rest to
/// ask and accuse.
pub fn grace(proof_timeout: u64) -> u64 {
    (proof_timeout / 4).min(120)
}

/// How long a host asked for a missing proof has to answer: a quarter of the accusation window,
/// between one and thirty seconds.
pub fn ask_limit(proof_timeout: u64) -> Duration {
    Duration::from_secs((proof_timeout / 4).clamp(1, 30))
}

/// The reward of one missed proof of a slot of request `r`, as the contract computes it.
fn validator_reward(r: &RequestWatch, params: &contracts::client::MarketParams) -> u128 {
    let collateral = u128::from(r.slot_size).saturating_mul(r.collateral_per_byte);
    let slash = collateral.saturating_mul(u128::from(params.slash_percentage)) / 100;
    slash.saturating_mul(u128::from(params.validator_reward_percentage)) / 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;

    #[test]
    fn rewards_of_hostile_requests_saturate() {
        let params = contracts::client::MarketParams {
            period_length: 10,
            proof_timeout: 5,
            response_window: 5,
            max_request_expiry: 0,
            max_missed_proofs: 3,
            slash_percentage: u64::MAX,
            validator_reward_percentage: u64::MAX,
            reservation_deposit_percentage: 0,
            reservation_duration: 0,
            dispersal_window: 0,
            accusation_bond: U256::MAX,
        };
        let request = |slot_size, collateral_per_byte| RequestWatch {
            probability: 0,
            slots: u16::MAX,
            slot_size,
            collateral_per_byte,
            ends_at: 0,
            started_at: Some(u64::MAX),
            root: None,
        };
        assert_eq!(validator_reward(&request(u64::MAX, u128::MAX), &params), u128::MAX / 100);
        assert_eq!(validator_reward(&request(0, u128::MAX), &params), 0);
        let fair = contracts::client::MarketParams { slash_percentage: 10, validator_reward_percentage: 20, ..params };
        // 4096 · 5 = 20480 collateral, 2048 slashed, 409 to the validator (rounded down)
        assert_eq!(validator_reward(&request(4096, 5), &fair), 409);
    }
}
