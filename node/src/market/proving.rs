//! Proving what this node sells. Once per period (by the chain's clock) the node anchors the
//! next period's seed if nobody has (see the contract's ProofPeriods), checks each filled slot's
//! request (settled: collect the payout; slot lost: stop), and proves every slot whose proof the
//! period requires. When the next period's challenge is already known and will require a proof,
//! the proof is made ahead and sent as soon as that period begins.
//!
//! By default a proof goes off the chain (issue 15): it is kept in the outbox, broadcast to
//! validators, and served to any validator that asks; the chain sees it only if a validator
//! accuses the slot of missing it, and then the host answers with it (`defendProof`). With
//! [`ProofMode::OnChain`] every proof is submitted as before.
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
use std::sync::{Arc, PoisonError};

use alloy::primitives::{Address, B256};
use contracts::RequestState;
use tracing::{debug, info, warn};

use super::chain::{MarketChain, ProofWords};
use super::host::Host;
use super::outbox::Windows;
use super::sale::{SaleEvent, SaleRecord, SaleState};
use super::slot_work::SlotWork;
use super::words::{id_hex, parse_id};
use super::{MarketError, ProofMode};
use contracts::offchain::PublishedProof;

const LOG: &str = "vellum::market::proving";

/// What the last check of a slot's request found: the period it was made in, and when the
/// request settles (0 while it has not started).
#[derive(Debug, Clone, Copy)]
struct Checked {
    period: u64,
    settles_at: u64,
}

/// What the proving rounds remember between ticks.
#[derive(Default)]
struct Rounds {
    /// The period whose next seed was last anchored (or seen anchored).
    anchored_for: Option<u64>,
    /// The last check of each slot's request.
    checked: HashMap<B256, Checked>,
    /// Proofs made ahead for the next period.
    ahead: HashMap<(B256, u64), ProofWords>,
    /// Periods whose proof the chain required of a slot and that are not yet proven or settled.
    owed: HashSet<(B256, u64)>,
    /// When (chain time) each owed period's accusation was last looked for.
    polled: HashMap<(B256, u64), u64>,
}

/// How far into a period a host anchors the next one if nobody has: after a third of it (a
/// validator anchors at its start), plus a share of the next third that differs from host to
/// host, so that hosts without a validator rarely anchor the same period twice.
fn anchor_delay(host: Address, period_length: u64) -> u64 {
    let third = period_length / 3;
    let spread = u64::from(u16::from_be_bytes([host.0[18], host.0[19]]));
    third.saturating_add(spread % third.max(1))
}

impl<C: MarketChain, W: SlotWork> Host<C, W> {
    /// Per-period checks and proofs for every filled slot; runs until the host stops.
    pub(crate) async fn prove_forever(self: Arc<Self>) {
        let mut rounds = Rounds::default();
        loop {
            tokio::time::sleep(self.config.tick).await;
            self.proving_round(&mut rounds).await;
        }
    }

    /// One round over the filled slots.
    async fn proving_round(&self, rounds: &mut Rounds) {
        let sales: Vec<SaleRecord> = self
            .sales
            .all()
            .into_iter()
            .filter(|s| matches!(s.state, SaleState::Proving | SaleState::Payout))
            .collect();
        if sales.is_empty() {
            return;
        }
        let Ok((_, now)) = self.chain.head().await else { return };
        let length = self.chain.params().period_length.max(1);
        let period = now / length;
        if rounds.anchored_for != Some(period)
            && now >= period.saturating_mul(length).saturating_add(anchor_delay(self.chain.address(), length))
        {
            // Keep the next period enforceable even when no validator is around; validators
            // anchor at the period's start, so in a network with one this costs a read.
            match self.chain.anchor_next(period).await {
                Ok(()) => rounds.anchored_for = Some(period),
                Err(e) => debug!(target: LOG, error = %e, "anchoring failed"),
            }
        }
        rounds.ahead.retain(|(_, p), _| *p >= period);
        let params = self.chain.params();
        let windows = Windows {
            period_length: params.period_length,
            proof_timeout: params.proof_timeout,
            response_window: params.response_window,
        };
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner).prune(now, &windows);
        rounds.owed.retain(|(_, p)| p.saturating_add(2) >= period);
        let owed = &rounds.owed;
        rounds.polled.retain(|k, _| owed.contains(k));
        for mut sale in sales {
            if let Err(e) = self.prove_step(&mut sale, (period, now), rounds).await {
                debug!(target: LOG, slot = %id_hex(&sale.slot_id), error = %e, "proving round incomplete");
            }
        }
    }

    /// Keeps a periodic proof for validators and for an accusation of its period.
    fn keep_proof(
        &self,
        sale: &SaleRecord,
        period: u64,
        entropy: alloy::primitives::U256,
        proof: ProofWords,
    ) -> PublishedProof {
        let published = PublishedProof {
            slot_id: sale.slot_id,
            period,
            slot_index: sale.slot_index,
            dataset_root: parse_id(&sale.request.content.merkle_root).unwrap_or_default(),
            entropy,
            proof,
        };
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner).keep(published);
        published
    }

    /// Collects the payout of a slot whose request is over.
    async fn payout(&self, sale: &mut SaleRecord) -> Result<(), MarketError> {
        let state = self.chain.request_state(sale.request_id).await?;
        let amount = self.chain.free_slot(sale.slot_id).await?;
        info!(target: LOG, slot = %id_hex(&sale.slot_id), %amount, proofs = sale.proofs_submitted, "slot freed and paid");
        self.apply(sale, SaleEvent::PaidOut { cancelled: state == RequestState::Cancelled }).await
    }

    async fn prove_step(
        &self,
        sale: &mut SaleRecord,
        (period, now): (u64, u64),
        rounds: &mut Rounds,
    ) -> Result<(), MarketError> {
        if sale.state == SaleState::Payout {
            return self.payout(sale).await;
        }
        // The request is looked at once per period, and again as soon as it settles.
        let due = rounds
            .checked
            .get(&sale.slot_id)
            .is_none_or(|c| c.period != period || (c.settles_at > 0 && now >= c.settles_at));
        if due {
            // First look since the host started: a proof published before a restart may be
            // accused now, so the period before is watched too.
            if !rounds.checked.contains_key(&sale.slot_id)
                && self.config.proofs == ProofMode::OffChain
                && let Some(previous) = period.checked_sub(1)
                && sale.last_proven_period == Some(previous)
            {
                rounds.owed.insert((sale.slot_id, previous));
            }
            let state = self.chain.request_state(sale.request_id).await?;
            if state.is_over() {
                self.apply(sale, SaleEvent::RequestOver).await?;
                return self.payout(sale).await;
            }
            if self.chain.slot_host(sale.slot_id).await? != self.chain.address() {
                warn!(target: LOG, slot = %id_hex(&sale.slot_id), "slot lost");
                sale.error = Some("the slot was taken from this host after missed proofs".into());
                return self.apply(sale, SaleEvent::SlotTaken).await;
            }
            let settles_at = self.chain.settles_at(sale.request_id).await?;
            rounds.checked.insert(sale.slot_id, Checked { period, settles_at });
        }
        if let Some(previous) = period.checked_sub(1)
            && rounds.owed.contains(&(sale.slot_id, previous))
        {
            let on_chain = self.config.proofs == ProofMode::OnChain;
            // Accusations are looked for a few times per response window, not every round.
            let interval = (self.chain.params().response_window / 3).max(1);
            let poll_due =
                rounds.polled.get(&(sale.slot_id, previous)).is_none_or(|t| now >= t.saturating_add(interval));
            if on_chain && sale.last_proven_period.is_some_and(|p| p >= previous) {
                rounds.owed.remove(&(sale.slot_id, previous));
            } else if poll_due {
                rounds.polled.insert((sale.slot_id, previous), now);
                self.defend(sale, previous, now, &mut rounds.owed).await?;
            }
        }
        if sale.last_proven_period == Some(period) {
            return Ok(());
        }
        if self.chain.proof_required(sale.slot_id).await? {
            rounds.owed.insert((sale.slot_id, period));
            let entropy = self.chain.entropy_at(sale.slot_id, period).await?;
            let proof = match rounds.ahead.remove(&(sale.slot_id, period)) {
                Some(p) => p,
                None => self.work.prove(sale, entropy).await?,
            };
            let proof = self.work.periodic(sale, proof);
            let published = self.keep_proof(sale, period, entropy, proof);
            if self.config.proofs == ProofMode::OffChain {
                self.work.publish(published).await;
                sale.proofs_submitted += 1;
                sale.last_proven_period = Some(period);
                self.sales.save(sale)?;
                info!(target: LOG, slot = %id_hex(&sale.slot_id), period, proofs = sale.proofs_submitted, "proof published off the chain");
                return Ok(());
            }
            match self.chain.submit_proof(sale.slot_id, proof).await {
                Ok(()) => {
                    sale.proofs_submitted += 1;
                    sale.last_proven_period = Some(period);
                    self.sales.save(sale)?;
                    self.work.proved(sale);
                    info!(target: LOG, slot = %id_hex(&sale.slot_id), period, proofs = sale.proofs_submitted, "proof accepted");
                }
                Err(e) if e.market_error() == Some(contracts::MarketError::ProofAlreadySubmitted) => {
                    sale.last_proven_period = Some(period);
                    self.sales.save(sale)?;
                }
                Err(e) => return Err(e.into()),
            }
        } else if !rounds.ahead.contains_key(&(sale.slot_id, period + 1))
            && self.chain.proof_will_be_required(sale.slot_id).await?
        {
            let entropy = self.chain.entropy_at(sale.slot_id, period + 1).await?;
            let proof = self.work.prove(sale, entropy).await?;
            rounds.ahead.insert((sale.slot_id, period + 1), proof);
            debug!(target: LOG, slot = %id_hex(&sale.slot_id), period = period + 1, "proof made ahead");
        }
        Ok(())
    }

    /// Answers an accusation of the slot's missing proof of period `q` with that period's
    /// proof, if a validator made one and its response window is still open. Until the period's
    /// accusation window closes, an absent accusation is looked for again on the next round.
    async fn defend(
        &self,
        sale: &SaleRecord,
        q: u64,
        now: u64,
        owed: &mut HashSet<(B256, u64)>,
    ) -> Result<(), MarketError> {
        let accusation = self.chain.accusation(sale.slot_id, q).await?;
        if accusation.accuser == Address::ZERO {
            let params = self.chain.params();
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
        // The proof made in its period answers; a host that kept none proves again.
        let kept = self.outbox.lock().unwrap_or_else(PoisonError::into_inner).get(sale.slot_id, q).map(|p| p.proof);
        let proof = match kept {
            Some(proof) => proof,
            None => {
                let entropy = self.chain.entropy_at(sale.slot_id, q).await?;
                let proof = self.work.prove(sale, entropy).await?;
                self.work.periodic(sale, proof)
            }
        };
        self.chain.defend(sale.slot_id, q, proof).await?;
        self.work.defended(sale);
        info!(target: LOG, slot = %id_hex(&sale.slot_id), period = q, accuser = %accusation.accuser, "accusation answered with the proof");
        Ok(())
    }
}
