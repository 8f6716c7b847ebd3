//! The validator's loop. Each tick it reads the marketplace's new logs into its [`State`]; once
//! per period it anchors the next period's seed (and, a couple of blocks later, calls again so
//! the seed is stored); once the previous period has ended it works out, from that period's seed
//! and the `ProofSubmitted` logs, which of its group's slots owed a proof and gave none, and
//! accuses them in batches (consecutive nonces, one block for a batch), each accusation with the
//! marketplace's ether bond; and once an accusation's response window has passed without the
//! host defending it, it settles it (again in batches): the miss counts against the host, and
//! the validator gets its reward and its bond back. RPC calls grow with the missed proofs, not
//! with the slots watched: a slot that proved or was not selected costs none. Restarts resume
//! from the state file (open accusations included); a period is checked once.
//!
//! A log's time is its block's timestamp: the blocks whose logs came without one are read (once
//! per batch), never given the head's time. Values from the chain are converted fallibly and
//! combined with checked or saturating arithmetic: a log whose values do not fit is ignored (and
//! logged), never a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::B256;
use contracts::client::{Chain, ChainConfig, ChainError, LOG_RANGE};

use crate::chain::ValidatorChain;
use contracts::{MarketError, MarketEvent};
use tracing::{debug, info, warn};

use crate::challenge::{ProofTimes, owes_proof, seed_from_anchor, selected};
use crate::metrics::ValidatorMetrics;
use crate::state::{
    Applied, OpenAccusation, RequestWatch, State, accusation_by, blocks_without_time, fill_block_times,
};

const LOG: &str = "vellum::validator";

/// How often the loop looks at the chain.
pub const TICK: Duration = Duration::from_millis(500);

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

/// A running validator, on the wallet's client or (in tests) any [`ValidatorChain`].
pub struct Validator<C = Chain> {
    chain: C,
    config: ValidatorConfig,
    state: State,
    anchored: Option<(u64, u64, u8)>,
    metrics: std::sync::Arc<ValidatorMetrics>,
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

impl<C: ValidatorChain> Validator<C> {
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
        metrics.rewards.set(state.stats.rewards.parse::<f64>().unwrap_or(0.0));
        Ok(Self { chain, config, state, anchored: None, metrics })
    }

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
        self.anchor(period, head).await;
        // Settling first: a settlement that loses a slot spares it a pointless accusation below.
        self.settle(now).await;
        let mut report = None;
        let previous = period.checked_sub(1);
        let window_open = now < period.saturating_mul(length).saturating_add(self.chain.params().proof_timeout);
        if let Some(q) = previous
            && self.state.checked_period.is_none_or(|c| c < q)
            && window_open
        {
            report = Some(self.check(q).await?);
            self.state.checked_period = Some(q);
        }
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

    /// Anchors the next period on the first round of each period, and calls again two blocks
    /// later so that its seed is stored.
    async fn anchor(&mut self, period: u64, head: u64) {
        let due = match self.anchored {
            Some((p, _, _)) if p != period => true,
            None => true,
            Some((_, block, 1)) => head >= block.saturating_add(2),
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

    /// Finds the slots of this group that owed a proof in period `q` and gave none, and accuses
    /// them, each with the bond. A request is watched until it settles: the last period that
    /// overlaps it owes proofs too, even once its end has passed.
    async fn check(&mut self, q: u64) -> Result<PeriodReport, ValidatorError> {
        let mut report = PeriodReport { period: q, watched: self.state.slots.len(), ..PeriodReport::default() };
        let seed_info = self.chain.period_seed(q).await?;
        if !seed_info.ready || seed_info.late {
            return Ok(report); // nothing could be required in q
        }
        let Ok(anchor) = u64::try_from(seed_info.anchor_block) else {
            warn!(target: LOG, period = q, anchor = %seed_info.anchor_block, "anchor block beyond u64: period not checked");
            return Ok(report);
        };
        let seed = seed_from_anchor(self.chain.block_hash(anchor).await?);
        let length = self.chain.params().period_length.max(1);
        let proven = self.state.proven.get(&q);
        let mut missed = Vec::new();
        for (id, slot) in &self.state.slots {
            let Some(request) = self.state.requests.get(&slot.request_id) else { continue };
            let Some(started) = request.started_at else { continue };
            let owes = owes_proof(q, started, slot.filled_at, request.ends_at, length)
                && !proven.is_some_and(|p| p.contains(id))
                && selected(seed, *id, q, request.probability);
            if owes {
                missed.push((*id, slot.request_id));
            }
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
        };
        assert_eq!(validator_reward(&request(u64::MAX, u128::MAX), &params), u128::MAX / 100);
        assert_eq!(validator_reward(&request(0, u128::MAX), &params), 0);
        let fair = contracts::client::MarketParams { slash_percentage: 10, validator_reward_percentage: 20, ..params };
        // 4096 · 5 = 20480 collateral, 2048 slashed, 409 to the validator (rounded down)
        assert_eq!(validator_reward(&request(4096, 5), &fair), 409);
    }
}
