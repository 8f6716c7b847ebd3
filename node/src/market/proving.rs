//! Proving what this node sells. Once per period (by the chain's clock) the node anchors the
//! next period's seed if nobody has (see the contract's ProofPeriods), checks each filled slot's
//! request (settled: collect the payout; slot lost: stop), and proves every slot whose proof the
//! period requires. When the next period's challenge is already known and will require a proof,
//! the proof is made ahead and sent as soon as that period begins.
//!
//! Proofs are due up to and including the last period that overlaps the request, even once the
//! request's end has passed within that period; the request reads Finished only after that
//! period's accusations can no longer be made, answered or settled (the contract's `settlesAt`),
//! and only then is the slot freed.
//!
//! A required proof that did not get through in its period (the transaction came too late, the
//! endpoint was down) may be accused by a validator; the host then answers the accusation with
//! that period's proof before the response window closes, which dismisses it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use circuits::r1cs::{build_inputs, dataset_path};
use contracts::RequestState;
use prover::{DiskSlot, EvmProof};
use tracing::{debug, info, warn};

use super::sales::{SaleRecord, SaleState};
use super::words::{id_hex, parse_amount};
use super::{LOG, Market, MarketError, TICK};
use crate::content::ContentId;

/// How long to wait for a period's seed to become readable after anchoring it.
const SEED_WAIT_TICKS: u32 = 120;

impl Market {
    /// Makes the current period's seed readable: anchors it if nobody has, then waits for the
    /// anchor block to be followed by another. Returns the period.
    async fn ensure_seed(&self) -> Result<u64, MarketError> {
        let m = self.chain.market();
        for _ in 0..SEED_WAIT_TICKS {
            let (_, now) = self.chain.head().await?;
            let period = self.chain.period_of(now);
            let seed = self.chain.read("periodSeed", m.periodSeed(U256::from(period))).await?;
            if seed.ready {
                return Ok(period);
            }
            if seed.anchorBlock == U256::ZERO {
                self.chain.send("anchorPeriods", m.anchorPeriods()).await?;
            }
            tokio::time::sleep(TICK).await;
        }
        Err(MarketError::Local("the period's seed did not become readable (is the chain producing blocks?)".into()))
    }

    /// A proof for `period` with entropy `entropy`.
    async fn prove_with(&self, sale: &SaleRecord, entropy: U256) -> Result<[U256; 8], MarketError> {
        let (cells, tree) = match (&sale.cells, &sale.tree) {
            (Some(c), Some(t)) => (c.clone(), t.clone()),
            _ => return Err(MarketError::Local("the sale has no slot files".into())),
        };
        let cid: ContentId = sale.request.content.cid.parse().map_err(|e| MarketError::Local(format!("{e}")))?;
        let manifest = self.fetcher.manifest(&cid).await.map_err(|e| MarketError::Local(e.to_string()))?;
        let roots = crate::slots::slot_roots(&manifest)?;
        let prover = Arc::clone(&self.prover);
        let shape = self.shape;
        let index = sale.slot_index;
        let _turn = self.proving.lock().await;
        let started = std::time::Instant::now();
        let proof = tokio::task::spawn_blocking(move || -> Result<[U256; 8], String> {
            let slot = DiskSlot::open(&cells, &tree, shape.cell_size, shape.slot_cells()).map_err(|e| e.to_string())?;
            let entropy = prover::entropy_from_block_hash(&entropy.to_be_bytes::<32>());
            let root = circuits::dataset_root(&roots);
            let inputs = build_inputs(&shape, &slot, dataset_path(&roots, index), root, entropy, index)
                .map_err(|e| e.to_string())?;
            let proof = prover.prove(&inputs).map_err(|e| e.to_string())?;
            Ok(contracts::proof_words(&EvmProof::new(&proof).words()))
        })
        .await
        .map_err(|e| MarketError::Local(e.to_string()))?
        .map_err(MarketError::Local)?;
        info!(target: LOG, slot = %id_hex(&sale.slot_id), ms = started.elapsed().as_millis() as u64, "proof made");
        Ok(proof)
    }

    /// A fill proof against the current period's challenge (anchoring the period if needed),
    /// bound to this host's address (the contract's `fillEntropy`).
    pub(super) async fn prove_fill(&self, sale: &SaleRecord) -> Result<(u64, [U256; 8]), MarketError> {
        let period = self.ensure_seed().await?;
        let m = self.chain.market();
        let entropy = self.chain.read("fillEntropy", m.fillEntropy(sale.slot_id, self.chain.address())).await?;
        Ok((period, self.prove_with(sale, entropy).await?))
    }

    /// Collects the payout of a slot whose request ended (`cancelled`: before it started).
    async fn payout(&self, sale: &mut SaleRecord, cancelled: bool) -> Result<(), MarketError> {
        let m = self.chain.market();
        let amount = self.chain.read("slotPayout", m.slotPayout(sale.slot_id)).await.unwrap_or_default();
        match self.chain.send("freeSlot", m.freeSlot(sale.slot_id)).await {
            Ok(_) => {
                info!(target: LOG, slot = %id_hex(&sale.slot_id), %amount, proofs = sale.proofs_submitted, "slot freed and paid")
            }
            Err(e) if e.market_error() == Some(contracts::MarketError::AlreadyPaid) => {}
            Err(e) => return Err(e.into()),
        }
        sale.state = if cancelled { SaleState::Cancelled } else { SaleState::Finished };
        self.save_sale(sale);
        let collateral = parse_amount(&sale.collateral).unwrap_or(0);
        self.draw_back(sale, collateral);
        Ok(())
    }

    fn draw_back(&self, sale: &SaleRecord, collateral: u128) {
        self.release(&sale.availability_id, sale.request.ask.slot_size, collateral);
    }
}

/// Per-period checks and proofs for every filled slot.
pub(super) async fn run(market: Arc<Market>) {
    let mut anchored_for: Option<u64> = None;
    let mut checked: HashMap<B256, Checked> = HashMap::new();
    let mut ahead: HashMap<(B256, u64), [U256; 8]> = HashMap::new();
    let mut owed: HashSet<(B256, u64)> = HashSet::new();
    loop {
        tokio::time::sleep(TICK).await;
        let sales: Vec<SaleRecord> = market
            .sales_snapshot()
            .into_iter()
            .filter(|s| matches!(s.state, SaleState::Proving | SaleState::Payout))
            .collect();
        if sales.is_empty() {
            continue;
        }
        let Ok((_, now)) = market.chain.head().await else { continue };
        let period = market.chain.period_of(now);
        let m = market.chain.market();
        if anchored_for != Some(period) {
            // Keep the next period enforceable even when no validator is around.
            match market.chain.read("periodSeed", m.periodSeed(U256::from(period + 1))).await {
                Ok(s) if s.anchorBlock == U256::ZERO => {
                    match market.chain.send("anchorPeriods", m.anchorPeriods()).await {
                        Ok(_) => anchored_for = Some(period),
                        Err(e) => debug!(target: LOG, error = %e, "anchoring failed"),
                    }
                }
                Ok(_) => anchored_for = Some(period),
                Err(e) => debug!(target: LOG, error = %e, "seed not read"),
            }
        }
        ahead.retain(|(_, p), _| *p >= period);
        owed.retain(|(_, p)| p.saturating_add(2) >= period);
        for mut sale in sales {
            let rounds = Rounds { checked: &mut checked, ahead: &mut ahead, owed: &mut owed };
            if let Err(e) = step(&market, &mut sale, (period, now), rounds).await {
                debug!(target: LOG, slot = %id_hex(&sale.slot_id), error = %e, "proving round incomplete");
            }
        }
    }
}

/// What the last check of a slot's request found: the period it was made in, and when the
/// request settles (0 while it has not started).
#[derive(Debug, Clone, Copy)]
struct Checked {
    period: u64,
    settles_at: u64,
}

/// What the proving rounds remember between ticks.
struct Rounds<'a> {
    /// The last check of each slot's request.
    checked: &'a mut HashMap<B256, Checked>,
    /// Proofs made ahead for the next period.
    ahead: &'a mut HashMap<(B256, u64), [U256; 8]>,
    /// Periods whose proof the chain required of a slot and that are not yet proven or settled.
    owed: &'a mut HashSet<(B256, u64)>,
}

async fn step(
    market: &Market,
    sale: &mut SaleRecord,
    (period, now): (u64, u64),
    rounds: Rounds<'_>,
) -> Result<(), MarketError> {
    let Rounds { checked, ahead, owed } = rounds;
    let m = market.chain.market();
    if sale.state == SaleState::Payout {
        let state = RequestState::try_from(market.chain.read("requestState", m.requestState(sale.request_id)).await?);
        return market.payout(sale, state == Ok(RequestState::Cancelled)).await;
    }
    // The request is looked at once per period, and again as soon as it settles.
    let due =
        checked.get(&sale.slot_id).is_none_or(|c| c.period != period || (c.settles_at > 0 && now >= c.settles_at));
    if due {
        let state = RequestState::try_from(market.chain.read("requestState", m.requestState(sale.request_id)).await?);
        if state.is_ok_and(RequestState::is_over) {
            sale.state = SaleState::Payout;
            market.save_sale(sale);
            return market.payout(sale, state == Ok(RequestState::Cancelled)).await;
        }
        if market.chain.read("getHost", m.getHost(sale.slot_id)).await? != market.chain.address() {
            warn!(target: LOG, slot = %id_hex(&sale.slot_id), "slot lost");
            sale.state = SaleState::Failed;
            sale.error = Some("the slot was taken from this host after missed proofs".into());
            market.save_sale(sale);
            market.draw_back(sale, 0);
            return Ok(());
        }
        let settles_at = market.chain.read("settlesAt", m.settlesAt(sale.request_id)).await?;
        checked.insert(sale.slot_id, Checked { period, settles_at: settles_at.saturating_to() });
    }
    if let Some(previous) = period.checked_sub(1)
        && owed.contains(&(sale.slot_id, previous))
    {
        if sale.last_proven_period.is_some_and(|p| p >= previous) {
            owed.remove(&(sale.slot_id, previous));
        } else {
            defend(market, sale, previous, now, owed).await?;
        }
    }
    if sale.last_proven_period == Some(period) {
        return Ok(());
    }
    if market.chain.read("isProofRequired", m.isProofRequired(sale.slot_id)).await? {
        owed.insert((sale.slot_id, period));
        let proof = match ahead.remove(&(sale.slot_id, period)) {
            Some(p) => p,
            None => {
                let entropy = market.chain.read("getEntropy", m.getEntropy(sale.slot_id)).await?;
                market.prove_with(sale, entropy).await?
            }
        };
        match market.chain.send("submitProof", m.submitProof(sale.slot_id, proof)).await {
            Ok(_) => {
                sale.proofs_submitted += 1;
                sale.last_proven_period = Some(period);
                market.save_sale(sale);
                market.metrics.proofs_submitted.inc();
                info!(target: LOG, slot = %id_hex(&sale.slot_id), period, proofs = sale.proofs_submitted, "proof accepted");
            }
            Err(e) if e.market_error() == Some(contracts::MarketError::ProofAlreadySubmitted) => {
                sale.last_proven_period = Some(period);
                market.save_sale(sale);
            }
            Err(e) => return Err(e.into()),
        }
    } else if !ahead.contains_key(&(sale.slot_id, period + 1))
        && market.chain.read("willProofBeRequired", m.willProofBeRequired(sale.slot_id)).await?
    {
        let entropy = market.chain.read("entropyAt", m.entropyAt(sale.slot_id, U256::from(period + 1))).await?;
        let proof = market.prove_with(sale, entropy).await?;
        ahead.insert((sale.slot_id, period + 1), proof);
        debug!(target: LOG, slot = %id_hex(&sale.slot_id), period = period + 1, "proof made ahead");
    }
    Ok(())
}

/// Answers an accusation of the slot's missing proof of period `q` with that period's proof, if
/// a validator made one and its response window is still open. Until the period's accusation
/// window closes, an absent accusation is looked for again on the next round.
async fn defend(
    market: &Market,
    sale: &SaleRecord,
    q: u64,
    now: u64,
    owed: &mut HashSet<(B256, u64)>,
) -> Result<(), MarketError> {
    let m = market.chain.market();
    let accusation = market.chain.read("accusation", m.accusation(sale.slot_id, U256::from(q))).await?;
    if accusation.accuser == Address::ZERO {
        let params = market.chain.params();
        let closes = q.saturating_add(1).saturating_mul(params.period_length).saturating_add(params.proof_timeout);
        if now >= closes {
            owed.remove(&(sale.slot_id, q)); // nobody accused it in time
        }
        return Ok(());
    }
    owed.remove(&(sale.slot_id, q)); // one answer, whatever comes of it
    if accusation.deadline < now {
        warn!(target: LOG, slot = %id_hex(&sale.slot_id), period = q, "accused of a missing proof too late to answer");
        return Ok(());
    }
    let entropy = market.chain.read("entropyAt", m.entropyAt(sale.slot_id, U256::from(q))).await?;
    let proof = market.prove_with(sale, entropy).await?;
    market.chain.send("defendProof", m.defendProof(sale.slot_id, U256::from(q), proof)).await?;
    info!(target: LOG, slot = %id_hex(&sale.slot_id), period = q, accuser = %accusation.accuser, "accusation answered with the proof");
    Ok(())
}
