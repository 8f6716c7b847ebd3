//! Reading a protected dataset back from the network when its original blocks are gone: any K
//! of its published slots are fetched (each block checked against the slot's content tree on
//! arrival) and decoded. Lazy repair uses the same fetch before regenerating lost slots
//! ([`crate::slots::regenerate`]); a download of a published protected CID that is not held
//! locally decodes from slots too (hosts keep slots, not the original blocks). Bytes fetched are
//! counted, so a repair can report what it moved.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::debug;

use crate::content::Manifest;
use crate::fetch::{FetchError, Fetcher};
use crate::slots::{SlotError, layout_of, slot_cid};
use crate::store::{BlockStore, StoreError};

const LOG: &str = "vellum::repair";

/// Why K slots could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The manifest does not describe published slots.
    #[error(transparent)]
    Slots(#[from] SlotError),
    /// Local storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A slot could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Too few slots could be fetched.
    #[error("only {got} of the K = {k} slots needed could be fetched")]
    TooFew {
        /// Slots fetched.
        got: usize,
        /// Slots needed.
        k: usize,
    },
}

/// K slots of a protected dataset, here: (slot index, data file), and the bytes fetched for them.
#[derive(Debug, Clone, Default)]
pub struct FetchedSlots {
    /// Slot index and the path of its cells.
    pub slots: Vec<(usize, PathBuf)>,
    /// Bytes that came over the network (slots already held count nothing).
    pub bytes_fetched: u64,
}

/// Gets K slots of `protected` other than those in `skip`: as many at once as are still needed,
/// in index order, so that a slow provider delays the others no longer than itself and no more
/// than K slots travel when all goes well.
pub async fn fetch_k_slots(
    fetcher: &Arc<Fetcher>,
    store: &Arc<BlockStore>,
    protected: &Manifest,
    skip: &[usize],
) -> Result<FetchedSlots, RepairError> {
    let (layout, _) = layout_of(protected)?;
    let mut out = FetchedSlots::default();
    let mut candidates: std::collections::VecDeque<usize> =
        (0..layout.slot_count()).filter(|i| !skip.contains(i)).collect();
    while out.slots.len() < layout.k && !candidates.is_empty() {
        let wave: Vec<usize> = (out.slots.len()..layout.k).filter_map(|_| candidates.pop_front()).collect();
        let fetches = wave.iter().map(|&i| async move {
            let cid = slot_cid(protected, i)?;
            let bytes = fetcher.fetch_dataset(cid).await?;
            let m = store.manifest(&cid)?.ok_or(StoreError::NotFound)?;
            let tree = m.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok::<_, RepairError>((store.complete_data_path(&tree)?, bytes))
        });
        for (i, fetched) in wave.iter().zip(futures::future::join_all(fetches).await) {
            match fetched {
                Ok((path, bytes)) => {
                    out.slots.push((*i, path));
                    out.bytes_fetched += bytes;
                }
                Err(e) => debug!(target: LOG, slot = i, error = %e, "slot not fetched"),
            }
        }
    }
    if out.slots.len() < layout.k {
        return Err(RepairError::TooFew { got: out.slots.len(), k: layout.k });
    }
    out.slots.sort_unstable_by_key(|(i, _)| *i);
    Ok(out)
}

/// Writes the original bytes of `protected` to `output`, decoded from the slot files `present`
/// (at least K; they were checked block by block when fetched).
pub fn decode_slots<W: std::io::Write>(
    protected: &Manifest,
    present: &[(usize, PathBuf)],
    output: W,
) -> Result<crate::erasure::DecodeStats, SlotError> {
    let (layout, _) = layout_of(protected)?;
    let mut slots: Vec<Option<std::fs::File>> = (0..layout.slot_count()).map(|_| None).collect();
    for (index, path) in present {
        if let Some(slot) = slots.get_mut(*index) {
            *slot = Some(std::fs::File::open(path)?);
        }
    }
    Ok(crate::erasure::decode(&layout, &slots, output, &crate::erasure::trust_all)?)
}
