//! The validator's loop. Each tick it reads the marketplace's new logs into its [`State`]; once
//! per period it anchors the next period's seed (and, a couple of blocks later, calls again so
//! the seed is stored); and once the previous period has ended it works out, from that period's
//! seed and the `ProofSubmitted` logs, which of its group's slots owed a proof and gave none, and
//! marks them in batches (consecutive nonces, one block for a batch). RPC calls grow with the
//! missed proofs, not with the slots watched: a slot that proved or was not selected costs none.
//! Restarts resume from the state file; a period is checked once.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::U256;
use contracts::client::{Chain, ChainConfig, ChainError, LOG_RANGE};
use tracing::{debug, info, warn};

use crate::challenge::{seed_from_anchor, selected};
use crate::metrics::ValidatorMetrics;
use crate::state::State;

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
    /// Most marks sent in one batch.
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
    /// Of those, marked by this validator.
    pub marked: usize,
}

/// A running validator.
pub struct Validator {
    chain: Chain,
    config: ValidatorConfig,
    state: State,
    anchored: Option<(u64, u64, u8)>,
    metrics: std::sync::Arc<ValidatorMetrics>,
}

impl Validator {
    /// Connects and loads the state.
    pub async fn connect(config: ValidatorConfig) -> Result<Self, ValidatorError> {
        if config.groups == 0 || config.group_index >= config.groups {
            return Err(ValidatorError::Config(format!(
                "--validator-group-index {} must be below --validator-groups {}",
                config.group_index, config.groups
            )));
        }
        let chain = Chain::connect(&config.chain).await?;
        let state = State::load(&config.state_file, config.start_block)
            .map_err(|source| ValidatorError::State { path: config.state_file.clone(), source })?;
        info!(
            target: LOG,
            address = %chain.address(),
            marketplace = %chain.marketplace_address(),
            groups = config.groups,
            group = config.group_index,
            cursor = state.cursor,
            "validator started"
        );
        let metrics = std::sync::Arc::new(ValidatorMetrics::new());
        metrics.marks.inc_by(state.stats.marks);
        metrics.marks_refused.inc_by(state.stats.marks_refused);
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
                    marked = report.marked,
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
    /// when one was checked.
    pub async fn tick(&mut self) -> Result<Option<PeriodReport>, ValidatorError> {
        let (head, now) = self.chain.head().await?;
        let length = self.chain.params().period_length;
        let period = now / length;
        let before = self.state.clone();
        while self.state.cursor <= head {
            let to = head.min(self.state.cursor + LOG_RANGE - 1);
            let logs = self.chain.logs(self.state.cursor, to).await?;
            for log in &logs {
                self.state.apply(log, self.config.groups, self.config.group_index, now);
            }
            self.state.cursor = to + 1;
        }
        self.anchor(period, head).await;
        let mut report = None;
        let previous = period.checked_sub(1);
        let window_open = now < period * length + self.chain.params().proof_timeout;
        if let Some(q) = previous
            && self.state.checked_period.is_none_or(|c| c < q)
            && window_open
        {
            report = Some(self.check(q, now).await?);
            self.state.checked_period = Some(q);
        }
        self.state.prune(now, period);
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
            Some((_, block, 1)) => head >= block + 2,
            Some(_) => false,
        };
        if !due {
            return;
        }
        let market = self.chain.market();
        match self.chain.send("anchorPeriods", market.anchorPeriods()).await {
            Ok(_) => {
                let calls = match self.anchored {
                    Some((p, _, n)) if p == period => n + 1,
                    _ => 1,
                };
                self.anchored = Some((period, head, calls));
            }
            Err(e) => debug!(target: LOG, error = %e, "anchoring failed"),
        }
    }

    /// Finds the slots of this group that owed a proof in period `q` and gave none, and marks them.
    async fn check(&mut self, q: u64, now: u64) -> Result<PeriodReport, ValidatorError> {
        let mut report = PeriodReport { period: q, watched: self.state.slots.len(), ..PeriodReport::default() };
        let market = self.chain.market();
        let seed_info = self.chain.read("periodSeed", market.periodSeed(U256::from(q))).await?;
        if !seed_info.ready || seed_info.late {
            return Ok(report); // nothing could be required in q
        }
        let seed = seed_from_anchor(self.chain.block_hash(seed_info.anchorBlock.saturating_to()).await?);
        let length = self.chain.params().period_length;
        let proven = self.state.proven.get(&q);
        let mut missed = Vec::new();
        for (id, slot) in &self.state.slots {
            let Some(request) = self.state.requests.get(&slot.request_id) else { continue };
            let Some(started) = request.started_at else { continue };
            let owes = q > started / length
                && q > slot.filled_at / length
                && request.ends_at > now
                && !proven.is_some_and(|p| p.contains(id))
                && selected(seed, *id, q, request.probability);
            if owes {
                missed.push((*id, slot.request_id));
            }
        }
        report.missed = missed.len();
        let params = self.chain.params();
        for chunk in missed.chunks(self.config.max_batch.max(1)) {
            let calls = chunk.iter().map(|(id, _)| market.markProofAsMissing(*id, U256::from(q))).collect();
            let results = self.chain.send_batch("markProofAsMissing", calls).await;
            for ((id, request_id), result) in chunk.iter().zip(results) {
                match result {
                    Ok(_) => {
                        report.marked += 1;
                        self.state.stats.marks += 1;
                        self.metrics.marks.inc();
                        if let Some(r) = self.state.requests.get(request_id) {
                            let collateral = u128::from(r.slot_size).saturating_mul(r.collateral_per_byte);
                            let slash = collateral * u128::from(params.slash_percentage) / 100;
                            let reward = slash * u128::from(params.validator_reward_percentage) / 100;
                            let total: u128 = self.state.stats.rewards.parse().unwrap_or(0);
                            self.state.stats.rewards = total.saturating_add(reward).to_string();
                            self.metrics.rewards.set(total.saturating_add(reward) as f64);
                        }
                    }
                    Err(e) => {
                        self.state.stats.marks_refused += 1;
                        self.metrics.marks_refused.inc();
                        warn!(target: LOG, slot = %id, period = q, error = %e, "missed proof not marked");
                    }
                }
            }
        }
        Ok(report)
    }
}
