//! Lazy repair's one decode: from any K slots of a protected dataset (fetched slot datasets,
//! already checked block by block against their content trees), decode the dataset once,
//! encode it again, and publish every lost slot as the dataset the protected manifest names.
//! Encoding is deterministic, so a regenerated slot has exactly its original CID; one that does
//! not is refused.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::info;

use super::publish::store_slot;
use super::{SlotError, layout_of, slot_cid};
use crate::content::{ContentId, Manifest};
use crate::erasure;
use crate::store::BlockStore;

const LOG: &str = "vellum::slots";

/// Regenerates the slots `lost` of `protected` from the slot data files in `present` (slot
/// index, path of its cells), which must name at least K slots. Returns the published CIDs.
pub fn regenerate(
    store: &Arc<BlockStore>,
    protected: &Manifest,
    present: &[(usize, PathBuf)],
    lost: &[usize],
) -> Result<Vec<ContentId>, SlotError> {
    let (layout, _) = layout_of(protected)?;
    let mut slots: Vec<Option<File>> = (0..layout.slot_count()).map(|_| None).collect();
    for (index, path) in present {
        if let Some(slot) = slots.get_mut(*index) {
            *slot = Some(File::open(path)?);
        }
    }
    let tmp = store.root().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let stem = format!("regenerate-{:016x}", rand::random::<u64>());
    let original = tmp.join(format!("{stem}.data"));
    let result = (|| -> Result<Vec<ContentId>, SlotError> {
        // One decode of the whole dataset (the fetched slots were checked on arrival) ...
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&original)?);
        erasure::decode(&layout, &slots, &mut out, &erasure::trust_all)?;
        out.flush()?;
        drop(out);
        // ... and one encode, keeping only the lost slots.
        let paths: Vec<Option<PathBuf>> = (0..layout.slot_count())
            .map(|i| lost.contains(&i).then(|| tmp.join(format!("{stem}.{i}.cells"))))
            .collect();
        let mut writers: Vec<Box<dyn Write + Send>> = paths
            .iter()
            .map(|p| -> std::io::Result<Box<dyn Write + Send>> {
                Ok(match p {
                    Some(path) => Box::new(BufWriter::with_capacity(256 << 10, File::create(path)?)),
                    None => Box::new(std::io::sink()),
                })
            })
            .collect::<Result<_, _>>()?;
        erasure::encode(&layout, BufReader::with_capacity(4 << 20, File::open(&original)?), &mut writers)?;
        for w in &mut writers {
            w.flush()?;
        }
        drop(writers);
        let mut cids = Vec::with_capacity(lost.len());
        for &i in lost {
            let path = paths.get(i).cloned().flatten().ok_or_else(|| SlotError::Manifest(format!("no slot {i}")))?;
            let cid = store_slot(store, &path, i, layout.slot_size())?;
            if cid != slot_cid(protected, i)? {
                let _ = store.delete(&cid);
                return Err(SlotError::Manifest(format!("regenerated slot {i} is not the slot the manifest names")));
            }
            cids.push(cid);
        }
        Ok(cids)
    })();
    let _ = std::fs::remove_file(&original);
    for i in lost {
        let _ = std::fs::remove_file(tmp.join(format!("{stem}.{i}.cells")));
    }
    if let Ok(cids) = &result {
        info!(target: LOG, slots = cids.len(), from = present.len(), "lost slots regenerated");
    }
    result
}
