//! The client side: `POST /storage/request/{cid}` checks the request, protects the dataset
//! (K + M slots padded to the proof's slot size, their trees, the dataset root), publishes the
//! slots as datasets of their own, announces them, pays and submits the request; a watcher
//! follows each purchase's state on chain and, when the request has ended, withdraws what the
//! client is owed.

use std::sync::Arc;

use alloy::primitives::{B256, Bytes, U256};
use contracts::Marketplace::{Ask, Content, Request};
use contracts::RequestState;
use tracing::{debug, info, warn};

use super::by_target::{self, TargetContext};
use super::types::{
    Code, DurabilityChoice, Purchase, StorageAsk, StorageContent, StorageRequest, StorageRequestCreation,
};
use super::words::{fr_word, id_hex, parse_amount};
use super::{LOG, Market, MarketError, lock};
use crate::content::ContentId;
use crate::slots::Protection;

/// Contract request states.
pub(super) fn request_state_name(state: u8) -> &'static str {
    match RequestState::try_from(state) {
        Ok(RequestState::New) => "submitted",
        Ok(RequestState::Started) => "started",
        Ok(RequestState::Cancelled) => "cancelled",
        Ok(RequestState::Finished) => "finished",
        Ok(RequestState::Failed) => "failed",
        Ok(RequestState::None) | Err(_) => "unknown",
    }
}

fn invalid(text: impl Into<String>) -> MarketError {
    MarketError::Invalid(text.into())
}

/// The request parameters after checking, and the Ask they make.
struct Checked {
    k: usize,
    m: usize,
    ask: Ask,
    expiry: u64,
}

impl Market {
    fn check_request(
        &self,
        body: &StorageRequestCreation,
        code: Code,
        dataset_size: u64,
    ) -> Result<Checked, MarketError> {
        let (nodes, tolerance) = (code.nodes, code.tolerance);
        if tolerance == 0 {
            return Err(invalid("tolerance must be at least 1"));
        }
        if nodes <= tolerance {
            return Err(invalid(format!(
                "nodes ({nodes}) must be greater than tolerance ({tolerance}): K = nodes - tolerance data slots must be at least 1"
            )));
        }
        let max = self.shape.max_slots().min(u64::from(u16::MAX));
        if nodes > max {
            return Err(invalid(format!(
                "nodes = K + M = {nodes} is beyond the {max} slots a storage proof can address"
            )));
        }
        let (k, m) = ((nodes - tolerance) as usize, tolerance as usize);
        let cell = self.shape.cell_size as u64;
        let protection = Protection { k, m, cell_size: cell as usize, slot_cells: Some(self.shape.slot_cells()) };
        if let Err(e) = protection.layout(0) {
            return Err(invalid(format!("K = {k}, M = {m}: {e}")));
        }
        if dataset_size < k as u64 * cell {
            return Err(invalid(format!(
                "dataset too small: {dataset_size} bytes cannot give each of K = {k} data slots a {cell}-byte cell; at least {} bytes are needed",
                k as u64 * cell
            )));
        }
        let capacity = k as u64 * self.slot_size();
        if dataset_size > capacity {
            return Err(invalid(format!(
                "dataset too large: {dataset_size} bytes exceed K = {k} slots of {} bytes ({capacity} bytes); raise nodes - tolerance",
                self.slot_size()
            )));
        }
        let price = parse_amount(&body.price_per_byte_per_second).filter(|p| *p > 0).ok_or_else(|| {
            invalid("pricePerBytePerSecond must be a positive whole number of tokens (decimal string)")
        })?;
        let collateral = parse_amount(&body.collateral_per_byte)
            .ok_or_else(|| invalid("collateralPerByte must be a whole number of tokens (decimal string)"))?;
        let probability = parse_amount(&body.proof_probability)
            .filter(|p| (1..=u128::from(u32::MAX)).contains(p))
            .ok_or_else(|| invalid("proofProbability must be a whole number from 1 (a proof every period)"))?;
        if body.duration == 0 {
            return Err(invalid("duration must be positive"));
        }
        if body.expiry == 0 || body.expiry >= body.duration {
            return Err(invalid(format!(
                "expiry ({}) must be positive and less than duration ({})",
                body.expiry, body.duration
            )));
        }
        let max_expiry = self.chain()?.params().max_request_expiry;
        if body.expiry > max_expiry {
            return Err(invalid(format!(
                "expiry ({}) exceeds the marketplace's limit of {max_expiry} seconds",
                body.expiry
            )));
        }
        if code.repair_threshold == 0 || code.repair_threshold > tolerance {
            return Err(invalid(format!(
                "repairThreshold ({}) must be between 1 and tolerance ({tolerance})",
                code.repair_threshold
            )));
        }
        let ask = Ask {
            slots: nodes as u16,
            slotSize: self.slot_size(),
            duration: body.duration,
            proofProbability: probability as u32,
            maxSlotLoss: tolerance as u16,
            repairThreshold: code.repair_threshold as u16,
            pricePerBytePerSecond: price,
            collateralPerByte: collateral,
        };
        Ok(Checked { k, m, ask, expiry: body.expiry })
    }

    /// The code a request asks for: given explicitly, or chosen by the durability model for its
    /// target (off the async threads), with what was chosen.
    async fn code_for(
        &self,
        body: &StorageRequestCreation,
        dataset_size: u64,
    ) -> Result<(Code, Option<DurabilityChoice>), MarketError> {
        let params = self.chain()?.params();
        let cx = TargetContext {
            assumptions: self.config.durability,
            slot_size: self.slot_size(),
            max_slots: self.shape.max_slots(),
            period_seconds: params.period_length,
            max_missed_proofs: params.max_missed_proofs,
        };
        let Some(target) = by_target::check(body, dataset_size, &cx)? else {
            return Ok((body.explicit_code(), None));
        };
        let (code, choice) = tokio::task::spawn_blocking(move || by_target::choose(&target))
            .await
            .map_err(|e| MarketError::Local(e.to_string()))??;
        info!(target: LOG, nodes = code.nodes, tolerance = code.tolerance, repair_threshold = code.repair_threshold,
            predicted_loss = choice.predicted_loss, target = choice.target, "code chosen for a durability target");
        Ok((code, Some(choice)))
    }

    /// Checks, protects, publishes, pays for and submits a storage request for the local dataset
    /// `cid`; returns the request id, and for a request by target what was chosen.
    pub async fn request_storage(
        &self,
        cid: &str,
        body: StorageRequestCreation,
    ) -> Result<(String, Option<DurabilityChoice>), MarketError> {
        let cid: ContentId = cid.parse().map_err(|e| invalid(format!("invalid CID: {e}")))?;
        let manifest = self
            .store
            .manifest(&cid)?
            .ok_or_else(|| MarketError::NotFound(format!("{cid} is not a dataset held by this node")))?;
        if manifest.is_protected() {
            return Err(invalid("the CID names a protected dataset; request storage for the original upload's CID"));
        }
        if !self.store.has_complete(&cid)? {
            return Err(invalid(format!("{cid} is not complete on this node; download it first")));
        }
        let (code, durability) = self.code_for(&body, manifest.dataset_size).await?;
        let checked = self.check_request(&body, code, manifest.dataset_size)?;
        let payment = U256::from(checked.ask.slots)
            * U256::from(checked.ask.slotSize)
            * U256::from(checked.ask.duration)
            * U256::from(checked.ask.pricePerBytePerSecond);
        let token = self.chain()?.token();
        let balance = self.chain()?.read("balanceOf", token.balanceOf(self.chain()?.address())).await?;
        if balance < payment {
            return Err(invalid(format!("the request costs {payment} tokens; this node's wallet holds {balance}")));
        }

        // Protect and publish (disk and CPU work on the blocking pool).
        let store = Arc::clone(&self.store);
        let protection = Protection {
            k: checked.k,
            m: checked.m,
            cell_size: self.shape.cell_size,
            slot_cells: Some(self.shape.slot_cells()),
        };
        let (protected_cid, protected) = tokio::task::spawn_blocking(move || {
            let (_, protected) = crate::slots::protect(&store, &manifest, protection, 2)?;
            crate::slots::publish(&store, &protected)
        })
        .await
        .map_err(|e| MarketError::Local(e.to_string()))??;
        let (_, verification) = crate::slots::layout_of(&protected)?;
        let verify_root = circuits::fr_from_bytes(
            verification.verify_root.as_slice().try_into().map_err(|_| MarketError::Local("verify root".into()))?,
        )
        .ok_or_else(|| MarketError::Local("verify root is not a field element".into()))?;
        for announced in std::iter::once(protected_cid)
            .chain((0..verification.slot_cids.len()).filter_map(|i| crate::slots::slot_cid(&protected, i).ok()))
        {
            if let Err(e) = self.net.provide(&announced).await {
                warn!(target: LOG, cid = %announced, error = %e, "could not announce");
            }
            if let Ok(Some(m)) = self.store.manifest(&announced)
                && let Ok(tree) = m.tree()
            {
                let _ = self.net.provide(&tree).await;
            }
        }

        let request = Request {
            client: self.chain()?.address(),
            expiry: checked.expiry,
            ask: checked.ask.clone(),
            content: Content {
                cid: Bytes::from(protected_cid.to_string().into_bytes()),
                merkleRoot: fr_word(&verify_root),
            },
            nonce: B256::from(rand::random::<[u8; 32]>()),
        };
        let market = self.chain()?.market();
        self.chain()?.send("approve", token.approve(self.chain()?.marketplace_address(), payment)).await?;
        let id = self.chain()?.read("requestStorage (dry run)", market.requestStorage(request.clone())).await?;
        let purchase = Purchase {
            state: "submitted".into(),
            error: None,
            request: Some(request_json(&id, &request)),
            request_id: id_hex(&id),
            refunded: None,
            durability: durability.clone(),
        };
        self.save_purchase(&purchase)?;
        if let Err(e) = self.chain()?.send("requestStorage", market.requestStorage(request)).await {
            let mut failed = purchase;
            failed.state = "errored".into();
            failed.error = Some(e.to_string());
            self.save_purchase(&failed)?;
            return Err(e.into());
        }
        info!(target: LOG, request = %id_hex(&id), cid = %protected_cid, slots = checked.ask.slots, "storage requested");
        Ok((id_hex(&id), durability))
    }

    /// Deletes the slot copies a purchase published (its request is over and its funds are
    /// withdrawn), unless another purchase still running stores the same protected dataset.
    /// Runs before the purchase is recorded as refunded, so a crash between the two only
    /// deletes again (nothing is left behind).
    async fn discard_slot_copies(&self, p: &Purchase) {
        let Some(cid) = p.request.as_ref().map(|r| r.content.cid.clone()) else { return };
        let shared = lock(&self.purchases).values().any(|o| {
            o.request_id != p.request_id
                && !terminal(&o.state)
                && o.request.as_ref().is_some_and(|r| r.content.cid == cid)
        });
        if shared {
            return;
        }
        let Ok(protected_cid) = cid.parse::<ContentId>() else { return };
        let store = Arc::clone(&self.store);
        let done = tokio::task::spawn_blocking(move || -> Result<u64, MarketError> {
            let Some(protected) = store.manifest(&protected_cid)? else { return Ok(0) };
            Ok(crate::slots::discard(&store, &protected_cid, &protected)?)
        })
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(target: LOG, request = %p.request_id, error = %e, "slot copies not deleted"),
            Err(e) => warn!(target: LOG, request = %p.request_id, error = %e, "slot copies not deleted"),
        }
    }

    fn save_purchase(&self, p: &Purchase) -> Result<(), MarketError> {
        self.purchase_records.save(p.request_id.trim_start_matches("0x"), p)?;
        lock(&self.purchases).insert(p.request_id.clone(), p.clone());
        Ok(())
    }

    /// Every purchase's id.
    pub fn purchase_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.purchases).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// One purchase.
    pub fn purchase(&self, id: &str) -> Option<Purchase> {
        let id = super::words::parse_id(id).map(|b| id_hex(&b))?;
        lock(&self.purchases).get(&id).cloned()
    }
}

/// The REST shape of a request.
pub(super) fn request_json(id: &B256, r: &Request) -> StorageRequest {
    StorageRequest {
        id: id_hex(id),
        client: format!("{:#x}", r.client),
        ask: StorageAsk {
            slots: u64::from(r.ask.slots),
            slot_size: r.ask.slotSize,
            duration: r.ask.duration,
            proof_probability: r.ask.proofProbability.to_string(),
            price_per_byte_per_second: r.ask.pricePerBytePerSecond.to_string(),
            collateral_per_byte: r.ask.collateralPerByte.to_string(),
            max_slot_loss: u64::from(r.ask.maxSlotLoss),
            repair_threshold: u64::from(r.ask.repairThreshold),
        },
        content: StorageContent {
            cid: String::from_utf8_lossy(&r.content.cid).into_owned(),
            merkle_root: id_hex(&r.content.merkleRoot),
        },
        expiry: r.expiry,
        nonce: id_hex(&r.nonce),
    }
}

fn terminal(state: &str) -> bool {
    matches!(state, "cancelled" | "finished" | "failed" | "errored")
}

/// Follows every purchase that has not ended; withdraws the client's funds once it has.
pub(super) async fn watch(market: Arc<Market>) {
    loop {
        tokio::time::sleep(super::TICK).await;
        let open: Vec<Purchase> = lock(&market.purchases)
            .values()
            .filter(|p| !terminal(&p.state) || p.refunded.is_none() && p.state != "errored")
            .cloned()
            .collect();
        let Ok(chain) = market.chain() else { continue };
        for mut p in open {
            let Some(id) = super::words::parse_id(&p.request_id) else { continue };
            let m = chain.market();
            let state = match chain.read("requestState", m.requestState(id)).await {
                Ok(s) => request_state_name(s),
                Err(e) => {
                    debug!(target: LOG, request = %p.request_id, error = %e, "purchase state not read");
                    continue;
                }
            };
            if state == "unknown" {
                continue;
            }
            if state != p.state {
                info!(target: LOG, request = %p.request_id, from = %p.state, to = state, "purchase state");
                p.state = state.into();
                if state == "failed" {
                    p.error = Some("more slots were lost at once than the request tolerates".into());
                }
                let _ = market.save_purchase(&p);
            }
            if terminal(state) && p.refunded.is_none() {
                let amount = chain.read("withdrawableFunds", m.withdrawableFunds(id)).await.unwrap_or_default();
                match chain.send("withdrawFunds", m.withdrawFunds(id)).await {
                    Ok(_) => {
                        info!(target: LOG, request = %p.request_id, %amount, "client funds withdrawn");
                        market.discard_slot_copies(&p).await;
                        p.refunded = Some(amount.to_string());
                        let _ = market.save_purchase(&p);
                    }
                    Err(e) if e.market_error() == Some(contracts::MarketError::AlreadyWithdrawn) => {
                        market.discard_slot_copies(&p).await;
                        p.refunded = Some(p.refunded.clone().unwrap_or_else(|| "0".into()));
                        let _ = market.save_purchase(&p);
                    }
                    Err(e) => debug!(target: LOG, request = %p.request_id, error = %e, "withdrawal not done yet"),
                }
            }
        }
    }
}
