//! What a sale does with a slot's data, as one trait: [`SlotWork`] fetches and checks a slot
//! (regenerating lost slots for a repair), proves it against an entropy, and deletes it once the
//! sale no longer needs it. [`NodeSlots`] does it with the node's store, block exchange and
//! prover; the engine's unit tests use files in a temporary directory and a stand-in prover.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use circuits::r1cs::{ProofShape, build_inputs, dataset_path};
use prover::{DiskSlot, EvmProof, Prover};
use tracing::{debug, info, warn};

use super::MarketError;
use super::chain::ProofWords;
use super::sale::SaleRecord;
use super::words::{fr_word, id_hex};
use crate::content::ContentId;
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::net::NetworkHandle;
use crate::store::BlockStore;
use contracts::offchain::PublishedProof;

const LOG: &str = "vellum::market::slots";

/// A slot held on disk.
#[derive(Debug, Clone)]
pub(crate) struct SlotFiles {
    /// Its cells.
    pub(crate) cells: PathBuf,
    /// Its tree.
    pub(crate) tree: PathBuf,
    /// The slot dataset's manifest CID.
    pub(crate) cid: String,
}

/// A sale's work on its slot's data.
pub(crate) trait SlotWork: Send + Sync + 'static {
    /// Fetches the sale's slot and checks it against the request (`cid`, `dataset_root`, slot
    /// count and size).
    fn fetch(
        &self,
        sale: &SaleRecord,
        request: &contracts::Marketplace::Request,
    ) -> impl Future<Output = Result<SlotFiles, MarketError>> + Send;
    /// A proof of the sale's slot for `entropy`.
    fn prove(&self, sale: &SaleRecord, entropy: U256) -> impl Future<Output = Result<ProofWords, MarketError>> + Send;
    /// Called once the slot is filled (fault injection hooks in here).
    fn filled(&self, _sale: &SaleRecord) {}
    /// Called once a periodic proof is accepted on chain.
    fn proved(&self, _sale: &SaleRecord) {}
    /// A periodic proof as this host hands it out (fault injection hooks in here).
    fn periodic(&self, _sale: &SaleRecord, proof: ProofWords) -> ProofWords {
        proof
    }
    /// Called once an accusation was answered with the proof on chain.
    fn defended(&self, _sale: &SaleRecord) {}
    /// Publishes a periodic proof to validators (off the chain).
    fn publish(&self, proof: PublishedProof) -> impl Future<Output = ()> + Send;
    /// Deletes the sale's slot data and tree (nothing when it has none).
    fn delete(&self, sale: &SaleRecord) -> impl Future<Output = ()> + Send;
}

/// How long a host repairing a lost slot other than the first waits for the first one's repairer
/// to publish the regenerated slots before it decodes on its own.
const HANDOFF_WAIT: Duration = Duration::from_secs(120);
/// How often it looks for the regenerated slot meanwhile.
const HANDOFF_POLL: Duration = Duration::from_secs(3);

/// The node's slot work.
pub(crate) struct NodeSlots {
    pub(crate) store: Arc<BlockStore>,
    pub(crate) fetcher: Arc<Fetcher>,
    pub(crate) net: NetworkHandle,
    pub(crate) prover: Arc<Prover>,
    pub(crate) shape: ProofShape,
    /// Where slot trees are kept.
    pub(crate) trees: PathBuf,
    pub(crate) metrics: Arc<Metrics>,
    /// One proof at a time (a proof takes both cores and up to a few GB).
    pub(crate) proving: tokio::sync::Mutex<()>,
    /// Fault injection: the percentage of a newly filled slot's cells corrupted on disk.
    pub(crate) fault_corrupt_cells_percent: u8,
    /// Fault injection: publish no periodic proof.
    pub(crate) fault_withhold_proofs: bool,
    /// Fault injection: every periodic proof is wrong.
    pub(crate) fault_wrong_proofs: bool,
}

fn local(e: impl std::fmt::Display) -> MarketError {
    MarketError::Local(e.to_string())
}

fn invalid(text: impl Into<String>) -> MarketError {
    MarketError::Invalid(text.into())
}

impl SlotWork for NodeSlots {
    async fn fetch(
        &self,
        sale: &SaleRecord,
        request: &contracts::Marketplace::Request,
    ) -> Result<SlotFiles, MarketError> {
        let cid_text =
            String::from_utf8(request.content.cid.to_vec()).map_err(|_| invalid("request CID is not text"))?;
        let cid: ContentId = cid_text.parse().map_err(|e| invalid(format!("request CID {cid_text}: {e}")))?;
        let protected = self.fetcher.manifest(&cid).await.map_err(local)?;
        let (layout, verification) = crate::slots::layout_of(&protected)?;
        if layout.slot_count() as u64 != u64::from(request.ask.slots) || layout.slot_size() != request.ask.slotSize {
            return Err(invalid("the manifest's slots do not match the request"));
        }
        let root = <&[u8; 32]>::try_from(verification.verify_root.as_slice())
            .ok()
            .and_then(circuits::fr_from_bytes)
            .ok_or_else(|| invalid("the manifest's dataset root is not a field element"))?;
        if fr_word(&root) != request.content.merkleRoot {
            return Err(invalid("the manifest's dataset root is not the request's"));
        }
        let index = sale.slot_index as usize;
        let slot_cid = crate::slots::slot_cid(&protected, index)?;
        let mut fetched = self.fetcher.fetch_dataset(slot_cid).await;
        let first_lost = sale.repair_of.iter().min().copied();
        if fetched.is_err() && first_lost.is_some_and(|first| first != sale.slot_index) {
            // The host repairing the first lost slot regenerates them all: wait for it to publish
            // this one rather than decode a second time (and fetch K slots again). The wait
            // runs in this sale's task; the log follower and other sales go on meanwhile.
            info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, "waiting for the first lost slot's repairer");
            let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
            while fetched.is_err() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(HANDOFF_POLL).await;
                fetched = self.fetcher.fetch_dataset(slot_cid).await;
            }
        }
        let bytes = *fetched.as_ref().unwrap_or(&0);
        if let Err(e) = fetched {
            if sale.repair_of.is_empty() {
                return Err(local(e));
            }
            // Nobody serves the lost slot: rebuild all the lost slots from K others, once.
            info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, error = %e, "slot unavailable; regenerating the lost slots");
            self.regenerate_lost(&protected, &sale.repair_of).await?;
        }
        let tree = self.trees.join(format!("{:x}.tree", sale.slot_id));
        let store = Arc::clone(&self.store);
        let held = tokio::task::spawn_blocking(move || crate::slots::accept(&store, &protected, index, &tree, 2))
            .await
            .map_err(local)??;
        let _ = self.net.provide(&slot_cid).await;
        self.metrics.sale_bytes_fetched.inc_by(bytes);
        if !sale.repair_of.is_empty() {
            self.metrics.repair_bytes_fetched.inc_by(bytes);
        }
        info!(target: LOG, request = %id_hex(&sale.request_id), slot = index, bytes, "slot fetched and checked");
        Ok(SlotFiles { cells: held.cells, tree: held.tree, cid: slot_cid.to_string() })
    }

    async fn prove(&self, sale: &SaleRecord, entropy: U256) -> Result<ProofWords, MarketError> {
        let (cells, tree) = match (&sale.cells, &sale.tree) {
            (Some(c), Some(t)) => (c.clone(), t.clone()),
            _ => return Err(MarketError::Local("the sale has no slot files".into())),
        };
        let cid: ContentId = sale.request.content.cid.parse().map_err(local)?;
        let manifest = self.fetcher.manifest(&cid).await.map_err(local)?;
        let roots = crate::slots::slot_roots(&manifest)?;
        let prover = Arc::clone(&self.prover);
        let shape = self.shape;
        let index = sale.slot_index;
        let _turn = self.proving.lock().await;
        let started = std::time::Instant::now();
        let proof = tokio::task::spawn_blocking(move || -> Result<ProofWords, String> {
            let slot = DiskSlot::open(&cells, &tree, shape.cell_size, shape.slot_cells()).map_err(|e| e.to_string())?;
            let entropy = prover::entropy_from_block_hash(&entropy.to_be_bytes::<32>());
            let root = circuits::dataset_root(&roots);
            let inputs = build_inputs(&shape, &slot, dataset_path(&roots, index), root, entropy, index)
                .map_err(|e| e.to_string())?;
            let proof = prover.prove(&inputs).map_err(|e| e.to_string())?;
            Ok(contracts::proof_words(&EvmProof::new(&proof).words()))
        })
        .await
        .map_err(local)?
        .map_err(MarketError::Local)?;
        info!(target: LOG, slot = %id_hex(&sale.slot_id), ms = started.elapsed().as_millis() as u64, "proof made");
        Ok(proof)
    }

    fn periodic(&self, sale: &SaleRecord, proof: ProofWords) -> ProofWords {
        if !self.fault_wrong_proofs {
            return proof;
        }
        warn!(target: LOG, slot = %id_hex(&sale.slot_id), "fault injection: the periodic proof is made wrong");
        [proof[6], proof[7], proof[2], proof[3], proof[4], proof[5], proof[0], proof[1]]
    }

    fn defended(&self, _sale: &SaleRecord) {
        self.metrics.accusations_defended.inc();
    }

    async fn publish(&self, proof: PublishedProof) {
        if self.fault_withhold_proofs {
            return;
        }
        match self.net.publish_proof(proof).await {
            Ok(()) => {
                self.metrics.proofs_published.inc();
            }
            // Nobody on the topic yet: validators ask for it instead.
            Err(e) => {
                debug!(target: LOG, slot = %id_hex(&proof.slot_id), period = proof.period, error = %e, "proof not broadcast")
            }
        }
    }

    fn filled(&self, sale: &SaleRecord) {
        self.metrics.slots_filled.inc();
        if self.fault_corrupt_cells_percent > 0
            && let Some(cells) = &sale.cells
        {
            let percent = self.fault_corrupt_cells_percent;
            match corrupt_cells(cells, self.shape.cell_size, percent) {
                Ok(n) => {
                    warn!(target: LOG, slot = sale.slot_index, cells = n, percent, "fault injection: slot cells corrupted")
                }
                Err(e) => warn!(target: LOG, error = %e, "fault injection failed"),
            }
        }
    }

    fn proved(&self, _sale: &SaleRecord) {
        self.metrics.proofs_submitted.inc();
    }

    async fn delete(&self, sale: &SaleRecord) {
        let store = Arc::clone(&self.store);
        let cid = sale.slot_cid.as_ref().and_then(|c| c.parse::<ContentId>().ok());
        let tree = sale.tree.clone();
        let slot = id_hex(&sale.slot_id);
        let done = tokio::task::spawn_blocking(move || {
            if let Some(cid) = cid
                && let Err(e) = store.delete(&cid)
            {
                debug!(target: LOG, %cid, error = %e, "slot data not deleted");
            }
            if let Some(tree) = tree
                && let Err(e) = std::fs::remove_file(&tree)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                debug!(target: LOG, tree = %tree.display(), error = %e, "slot tree not deleted");
            }
        })
        .await;
        match done {
            Ok(()) => info!(target: LOG, %slot, "slot data deleted"),
            Err(e) => warn!(target: LOG, %slot, error = %e, "deleting slot data failed"),
        }
    }
}

impl NodeSlots {
    /// Lazy repair: fetches any K surviving slots, decodes once, regenerates every slot in
    /// `lost` and announces them, so that this host and the others repairing fetch them from here.
    async fn regenerate_lost(&self, protected: &crate::content::Manifest, lost: &[u64]) -> Result<(), MarketError> {
        let lost: Vec<usize> = lost.iter().map(|i| *i as usize).collect();
        let fetched =
            crate::repair::fetch_k_slots(&self.fetcher, &self.store, protected, &lost).await.map_err(local)?;
        info!(target: LOG, slots = fetched.slots.len(), bytes = fetched.bytes_fetched, "repair: surviving slots fetched");
        self.metrics.sale_bytes_fetched.inc_by(fetched.bytes_fetched);
        self.metrics.repair_bytes_fetched.inc_by(fetched.bytes_fetched);
        let present = fetched.slots;
        let store = Arc::clone(&self.store);
        let manifest = protected.clone();
        let cids = tokio::task::spawn_blocking(move || crate::slots::regenerate(&store, &manifest, &present, &lost))
            .await
            .map_err(local)??;
        for cid in cids {
            let _ = self.net.provide(&cid).await;
            if let Ok(Some(m)) = self.store.manifest(&cid)
                && let Ok(tree) = m.tree()
            {
                let _ = self.net.provide(&tree).await;
            }
        }
        Ok(())
    }
}

/// Fault injection: flips one byte in `percent` % of the cells of a slot's cells file (cells
/// spread evenly over the slot, at least one); returns how many were corrupted.
fn corrupt_cells(path: &std::path::Path, cell_size: usize, percent: u8) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let cells = file.metadata()?.len() / cell_size.max(1) as u64;
    let count = (cells * u64::from(percent.min(100))).div_ceil(100).max(1).min(cells);
    for k in 0..count {
        let cell = k * cells / count;
        let offset = cell * cell_size as u64 + (cell % cell_size as u64);
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut byte)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&[byte[0] ^ 0xff])?;
    }
    file.sync_all()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_cells_flips_one_byte_in_the_given_share_of_cells() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cells");
        let original: Vec<u8> = (0..256 * 64).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original)?;
        assert_eq!(corrupt_cells(&path, 64, 5)?, 13); // 5 % of 256 cells, rounded up
        let damaged = std::fs::read(&path)?;
        assert_eq!(damaged.len(), original.len());
        let changed: Vec<usize> =
            (0..256).filter(|c| damaged[c * 64..(c + 1) * 64] != original[c * 64..(c + 1) * 64]).collect();
        assert_eq!(changed.len(), 13);
        for c in changed {
            let bytes = (0..64).filter(|b| damaged[c * 64 + b] != original[c * 64 + b]).count();
            assert_eq!(bytes, 1, "cell {c}");
        }
        Ok(())
    }
}
