//! Proving what this node sells. Once per period (by the chain's clock) the node anchors the
//! next period's seed if nobody has (see the contract's ProofPeriods), checks each filled slot's
//! request (ended: collect the payout; slot lost: stop), and proves every slot whose proof the
//! period requires. When the next period's challenge is already known and will require a proof,
//! the proof is made ahead and sent as soon as that period begins.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::{B256, U256};
use circuits::r1cs::{build_inputs, dataset_path};
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
            Ok(contracts::proof_words(&EvmProof::new(&proof)))
        })
        .await
        .map_err(|e| MarketError::Local(e.to_string()))?
        .map_err(MarketError::Local)?;
        info!(target: LOG, slot = %id_hex(&sale.slot_id), ms = started.elapsed().as_millis() as u64, "proof made");
        Ok(proof)
    }

    /// A proof against the current period's challenge (anchoring the period if needed).
    pub(super) async fn prove_now(&self, sale: &SaleRecord) -> Result<(u64, [U256; 8]), MarketError> {
        let period = self.ensure_seed().await?;
        let entropy = self.chain.read("getEntropy", self.chain.market().getEntropy(sale.slot_id)).await?;
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
            Err(e) if e.revert_reason() == Some("AlreadyPaid") => {}
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
    let mut checked: HashMap<B256, u64> = HashMap::new();
    let mut ahead: HashMap<(B256, u64), [U256; 8]> = HashMap::new();
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
        for mut sale in sales {
            if let Err(e) = step(&market, &mut sale, period, &mut checked, &mut ahead).await {
                debug!(target: LOG, slot = %id_hex(&sale.slot_id), error = %e, "proving round incomplete");
            }
        }
    }
}

async fn step(
    market: &Market,
    sale: &mut SaleRecord,
    period: u64,
    checked: &mut HashMap<B256, u64>,
    ahead: &mut HashMap<(B256, u64), [U256; 8]>,
) -> Result<(), MarketError> {
    let m = market.chain.market();
    if sale.state == SaleState::Payout {
        let state = market.chain.read("requestState", m.requestState(sale.request_id)).await?;
        return market.payout(sale, state == 3).await;
    }
    if checked.get(&sale.slot_id) != Some(&period) {
        let state = market.chain.read("requestState", m.requestState(sale.request_id)).await?;
        if matches!(state, 3..=5) {
            sale.state = SaleState::Payout;
            market.save_sale(sale);
            return market.payout(sale, state == 3).await;
        }
        if market.chain.read("getHost", m.getHost(sale.slot_id)).await? != market.chain.address() {
            warn!(target: LOG, slot = %id_hex(&sale.slot_id), "slot lost");
            sale.state = SaleState::Failed;
            sale.error = Some("the slot was taken from this host after missed proofs".into());
            market.save_sale(sale);
            market.draw_back(sale, 0);
            return Ok(());
        }
        checked.insert(sale.slot_id, period);
    }
    if sale.last_proven_period == Some(period) {
        return Ok(());
    }
    if market.chain.read("isProofRequired", m.isProofRequired(sale.slot_id)).await? {
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
            Err(e) if e.revert_reason() == Some("ProofAlreadySubmitted") => {
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
