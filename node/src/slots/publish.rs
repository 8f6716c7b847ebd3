//! Slots as datasets of their own. The client publishes each slot's cells (back to back, padding
//! included) as an ordinary dataset and names the slot manifests in the protected manifest, so a
//! host fetches its slot over block exchange with every block checked against the slot's content
//! tree. The host then builds the slot's Poseidon2 tree from what it received and accepts the
//! slot only if the root is the one the protected manifest names: that root is what its proofs
//! will be checked against on chain.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use circuits::{Fr, fr_from_bytes};
use tracing::info;

use super::{SlotError, cells_path, layout_of, slot_dir, tree};
use crate::content::{ContentId, DEFAULT_BLOCK_SIZE, Manifest};
use crate::erasure::SlotLayout;
use crate::store::BlockStore;

const LOG: &str = "vellum::slots";

/// Publishes every slot of a protected dataset held here as a dataset and stores the protected
/// manifest naming them; returns its CID and the manifest. A manifest whose slots are already
/// published is returned as it is.
pub fn publish(store: &Arc<BlockStore>, protected: &Manifest) -> Result<(ContentId, Manifest), SlotError> {
    let (layout, verification) = layout_of(protected)?;
    if verification.slot_cids.len() == layout.slot_count() {
        return Ok((protected.cid(), protected.clone()));
    }
    let dir = slot_dir(store, &verification.verify_root);
    let mut cids = Vec::with_capacity(layout.slot_count());
    for i in 0..layout.slot_count() {
        let cid = store_slot(store, &cells_path(&dir, i), i, layout.slot_size())?;
        cids.push(cid.to_bytes());
    }
    let mut published = protected.clone();
    if let Some(v) = published.erasure.as_mut().and_then(|e| e.verification.as_mut()) {
        v.slot_cids = cids;
    }
    let cid = store.put_manifest(&published)?;
    info!(target: LOG, %cid, slots = layout.slot_count(), "slots published");
    Ok((cid, published))
}

/// Stores a slot's cells file as a dataset of its own (named `slot-<index>`), refusing one whose
/// size is not `size`; returns its manifest CID.
pub(super) fn store_slot(
    store: &Arc<BlockStore>,
    cells: &Path,
    index: usize,
    size: u64,
) -> Result<ContentId, SlotError> {
    let mut file = File::open(cells)?;
    let mut writer = store.begin_upload(DEFAULT_BLOCK_SIZE)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
    }
    if writer.len() != size {
        return Err(SlotError::Manifest(format!("slot {index} holds {} bytes, expected {size}", writer.len())));
    }
    let (cid, _) = writer.finish(Some(format!("slot-{index}")), Some("application/octet-stream".into()))?;
    Ok(cid)
}

/// Deletes what a client kept of a protected dataset for its storage request once the request
/// is over: every slot's dataset, the slots' cells and trees, and the protected manifest (the
/// original upload stays). Returns the bytes freed; deleting again frees nothing and is no error.
pub fn discard(store: &BlockStore, protected_cid: &ContentId, protected: &Manifest) -> Result<u64, SlotError> {
    let (layout, verification) = layout_of(protected)?;
    let mut freed = 0;
    for i in 0..layout.slot_count() {
        if let Ok(cid) = slot_cid(protected, i) {
            let before = store.space()?.quota_used_bytes;
            store.delete(&cid)?;
            freed += before.saturating_sub(store.space()?.quota_used_bytes);
        }
    }
    freed += store.remove_slot_files(&slot_dir(store, &verification.verify_root))?;
    store.delete(protected_cid)?;
    info!(target: LOG, cid = %protected_cid, freed, "the request's slot copies deleted");
    Ok(freed)
}

/// The manifest CID of slot `index` of a published protected dataset.
pub fn slot_cid(protected: &Manifest, index: usize) -> Result<ContentId, SlotError> {
    let (_, verification) = layout_of(protected)?;
    let bytes = verification
        .slot_cids
        .get(index)
        .ok_or_else(|| SlotError::Manifest(format!("slot {index} is not published")))?;
    ContentId::from_bytes(bytes).map_err(|e| SlotError::Manifest(format!("slot {index}: {e}")))
}

/// A slot this node holds, checked against the protected manifest: where its cells and its tree
/// are, and what a proof needs besides.
#[derive(Debug, Clone)]
pub struct HeldSlot {
    /// The slot's cells (a complete dataset's data file).
    pub cells: PathBuf,
    /// The slot's Poseidon2 tree.
    pub tree: PathBuf,
    /// The slot's root.
    pub root: Fr,
    /// Every slot root of the dataset, in order (for the dataset path).
    pub slot_roots: Vec<Fr>,
    /// The layout.
    pub layout: SlotLayout,
}

/// Decodes the slot roots of a protected manifest.
pub fn slot_roots(protected: &Manifest) -> Result<Vec<Fr>, SlotError> {
    let (_, verification) = layout_of(protected)?;
    verification
        .slot_roots
        .iter()
        .enumerate()
        .map(|(i, r)| {
            <&[u8; 32]>::try_from(r.as_slice())
                .ok()
                .and_then(fr_from_bytes)
                .ok_or_else(|| SlotError::Manifest(format!("slot root {i} is not a field element")))
        })
        .collect()
}

/// Checks slot `index` of `protected`, whose slot dataset is complete in the store: builds its
/// tree into `tree_path` and compares the root with the manifest's. A slot that does not match
/// is refused (and its tree file removed).
pub fn accept(
    store: &BlockStore,
    protected: &Manifest,
    index: usize,
    tree_path: &Path,
    threads: usize,
) -> Result<HeldSlot, SlotError> {
    let (layout, _) = layout_of(protected)?;
    let roots = slot_roots(protected)?;
    let expected = *roots.get(index).ok_or_else(|| SlotError::Manifest(format!("no slot {index}")))?;
    let slot_manifest = store
        .manifest(&slot_cid(protected, index)?)?
        .ok_or_else(|| SlotError::Manifest("slot manifest missing".into()))?;
    let tree_cid = slot_manifest.tree().map_err(|e| SlotError::Manifest(e.to_string()))?;
    let cells = store.complete_data_path(&tree_cid)?;
    if slot_manifest.dataset_size != layout.slot_size() {
        return Err(SlotError::Manifest(format!(
            "slot {index} holds {} bytes, the layout says {}",
            slot_manifest.dataset_size,
            layout.slot_size()
        )));
    }
    if let Some(parent) = tree_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = File::open(&cells)?;
    let tree_file = File::options().read(true).write(true).create(true).truncate(true).open(tree_path)?;
    let root = tree::build(&file, layout.rows(), layout.cell_size, &tree_file, threads)?;
    tree_file.sync_data()?;
    if root != expected {
        drop(tree_file);
        let _ = std::fs::remove_file(tree_path);
        return Err(SlotError::Manifest(format!("slot {index}: its cells do not hash to the manifest's slot root")));
    }
    Ok(HeldSlot { cells, tree: tree_path.to_path_buf(), root, slot_roots: roots, layout })
}
