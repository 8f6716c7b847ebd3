//! Protected datasets: erasure-coded slots with their Poseidon2 slot trees, and the verifiable
//! manifest that names them.
//!
//! Protecting a dataset held here cuts it into cells, codes it into K data and M parity slots
//! (see [`crate::erasure`]), hashes every slot's cells into its slot tree, builds the dataset
//! tree over the slot roots, and records K, M, the roots and the cell size in a new manifest.
//! Layout on disk: `slots/<verify root>/<i>.cells` (cell `r` of slot `i` at `r · cellSize`) and
//! `slots/<verify root>/<i>.tree` beside it. Reading a protected dataset back checks every cell
//! against its leaf and rebuilds what is missing or damaged, as long as K slots survive.

mod publish;
mod regenerate;
mod tree;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use circuits::{Fr, fr_from_bytes, fr_to_bytes, hash_cells};
use tracing::info;

use crate::content::manifest::{ErasureInfo, VerificationInfo};
use crate::content::{ContentId, Manifest};
use crate::erasure::{self, DecodeStats, ErasureError, SlotLayout};
use crate::store::{BlockStore, StoreError};

pub use self::publish::{HeldSlot, accept, discard, publish, slot_cid, slot_roots};
pub use self::regenerate::regenerate;

const LOG: &str = "vellum::slots";
/// How cells are laid out in slots (`ErasureInfo.protectedStrategy`).
pub const PROTECTED_STRATEGY: &str = "interleaved-cells/v1";
/// How slot trees are built (`VerificationInfo.verifiableStrategy`).
pub const VERIFIABLE_STRATEGY: &str = "poseidon2-bn254/v1";

/// Why protecting or reading a protected dataset failed.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Coding failed (including too few intact slots).
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// Slot files could not be read or written.
    #[error("slot files: {0}")]
    Io(#[from] std::io::Error),
    /// The manifest is not that of a protected dataset, or is inconsistent.
    #[error("not a usable protected manifest: {0}")]
    Manifest(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory of a protected dataset's slots.
fn slot_dir(store: &BlockStore, verify_root: &[u8]) -> PathBuf {
    store.root().join("slots").join(hex(verify_root))
}

fn cells_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("{slot}.cells"))
}

fn tree_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("{slot}.tree"))
}

/// The layout and verification information of a protected manifest.
pub fn layout_of(manifest: &Manifest) -> Result<(SlotLayout, &VerificationInfo), SlotError> {
    let erasure = manifest.erasure.as_ref().ok_or_else(|| SlotError::Manifest("no erasure information".into()))?;
    let verification =
        erasure.verification.as_ref().ok_or_else(|| SlotError::Manifest("no verification information".into()))?;
    let mut layout = SlotLayout::new(
        erasure.ec_k as usize,
        erasure.ec_m as usize,
        verification.cell_size as usize,
        erasure.original_dataset_size,
    )?;
    if erasure.slot_rows != 0 {
        layout = layout.with_rows(erasure.slot_rows)?;
    }
    if verification.slot_roots.len() != layout.slot_count() {
        return Err(SlotError::Manifest(format!(
            "{} slot roots for {} slots",
            verification.slot_roots.len(),
            layout.slot_count()
        )));
    }
    Ok((layout, verification))
}

/// How to cut a dataset into slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// Data slots.
    pub k: usize,
    /// Parity slots.
    pub m: usize,
    /// Bytes per cell.
    pub cell_size: usize,
    /// Pad every slot to this many cells (a storage proof needs 2^depth); `None`: no padding.
    pub slot_cells: Option<u64>,
}

impl Protection {
    /// K data and M parity slots of `cell_size`-byte cells, not padded.
    pub fn new(k: usize, m: usize, cell_size: usize) -> Self {
        Self { k, m, cell_size, slot_cells: None }
    }

    /// The slot layout of a dataset of `size` bytes.
    pub fn layout(&self, size: u64) -> Result<SlotLayout, ErasureError> {
        let layout = SlotLayout::new(self.k, self.m, self.cell_size, size)?;
        match self.slot_cells {
            Some(rows) => layout.with_rows(rows),
            None => Ok(layout),
        }
    }
}

/// Erasure-codes the complete local dataset of `manifest` into K + M slots with their trees and
/// stores the protected manifest; returns its CID and the manifest.
pub fn protect(
    store: &Arc<BlockStore>,
    manifest: &Manifest,
    protection: Protection,
    threads: usize,
) -> Result<(ContentId, Manifest), SlotError> {
    if manifest.is_protected() {
        return Err(SlotError::Manifest("the dataset is already protected".into()));
    }
    let tree_cid = manifest.tree().map_err(|e| SlotError::Manifest(e.to_string()))?;
    let layout = protection.layout(manifest.dataset_size)?;
    let (k, m, cell_size) = (layout.k, layout.m, layout.cell_size);
    let (data, _) = store.open_data(&tree_cid)?;
    let footprint = layout.slot_count() as u64 * (layout.slot_size() + layout.rows() * 64);
    let claim = store.claim(footprint)?;

    let work = store.root().join("tmp").join(format!("protect-{:016x}", rand::random::<u64>()));
    fs::create_dir_all(&work)?;
    let result = (|| -> Result<(ContentId, Manifest, bool), SlotError> {
        let mut writers = (0..layout.slot_count())
            .map(|i| File::create(cells_path(&work, i)).map(|f| BufWriter::with_capacity(256 << 10, f)))
            .collect::<Result<Vec<_>, _>>()?;
        erasure::encode(&layout, std::io::BufReader::with_capacity(4 << 20, data), &mut writers)?;
        for w in &mut writers {
            w.flush()?;
        }
        drop(writers);
        let mut slot_roots = Vec::with_capacity(layout.slot_count());
        for i in 0..layout.slot_count() {
            let cells = File::open(cells_path(&work, i))?;
            let tree = File::options().read(true).write(true).create(true).truncate(true).open(tree_path(&work, i))?;
            slot_roots.push(tree::build(&cells, layout.rows(), cell_size, &tree, threads)?);
            cells.sync_data()?;
            tree.sync_data()?;
        }
        let verify_root = circuits::dataset_root(&slot_roots);
        let mut protected = manifest.clone();
        protected.erasure = Some(ErasureInfo {
            ec_k: k as u32,
            ec_m: m as u32,
            slot_rows: layout.padded_rows,
            original_tree_cid: manifest.tree_cid.clone(),
            original_dataset_size: manifest.dataset_size,
            protected_strategy: PROTECTED_STRATEGY.into(),
            verification: Some(VerificationInfo {
                verify_root: fr_to_bytes(&verify_root).to_vec(),
                slot_roots: slot_roots.iter().map(|r| fr_to_bytes(r).to_vec()).collect(),
                cell_size: cell_size as u32,
                verifiable_strategy: VERIFIABLE_STRATEGY.into(),
                slot_cids: Vec::new(),
            }),
        });
        let dir = slot_dir(store, &fr_to_bytes(&verify_root));
        fs::create_dir_all(store.root().join("slots"))?;
        let fresh = !dir.exists();
        if fresh {
            fs::rename(&work, &dir)?;
            File::open(store.root().join("slots"))?.sync_all()?;
        } else {
            fs::remove_dir_all(&work)?; // the same protection already exists
        }
        let cid = store.put_manifest(&protected)?;
        info!(target: LOG, %cid, k, m, rows = layout.rows(), "dataset protected");
        Ok((cid, protected, fresh))
    })();
    match result {
        Ok((cid, protected, fresh)) => {
            if fresh {
                // The estimate is an upper bound: what is used is what was written (the same
                // figure a restart counts, and what deleting the slots gives back).
                let (_, verification) = layout_of(&protected)?;
                claim.keep_only(crate::store::dir_bytes(&slot_dir(store, &verification.verify_root))?);
            }
            Ok((cid, protected))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

/// How many of a protected dataset's slots have their files here.
pub fn slots_present(store: &BlockStore, manifest: &Manifest) -> Result<usize, SlotError> {
    let (layout, verification) = layout_of(manifest)?;
    let dir = slot_dir(store, &verification.verify_root);
    Ok((0..layout.slot_count()).filter(|&i| cells_path(&dir, i).exists() && tree_path(&dir, i).exists()).count())
}

/// Writes the original bytes of a protected dataset to `output`, from whichever slots are
/// present; cells that do not match their leaf count as erased.
pub fn rebuild<W: Write>(store: &BlockStore, manifest: &Manifest, output: W) -> Result<DecodeStats, SlotError> {
    let (layout, verification) = layout_of(manifest)?;
    let dir = slot_dir(store, &verification.verify_root);
    let mut slots = Vec::with_capacity(layout.slot_count());
    let mut trees = Vec::with_capacity(layout.slot_count());
    for i in 0..layout.slot_count() {
        // A slot counts only if its cells and its tree are there and the tree has the root the
        // manifest names.
        let root = verification.slot_roots[i].as_slice().try_into().ok().and_then(fr_from_bytes);
        let pair = File::open(cells_path(&dir, i)).ok().zip(File::open(tree_path(&dir, i)).ok());
        let usable = pair.filter(|(_, t)| root.is_some() && tree_root(t, layout.rows()).ok() == root);
        let (cells, tree) = usable.map_or((None, None), |(c, t)| (Some(c), Some(t)));
        slots.push(cells);
        trees.push(tree);
    }
    // A batch of a slot's cells at a time: their hashes on both cores (eight cells per pass
    // where the CPU has AVX-512 IFMA), their leaves in one read.
    let cs = layout.cell_size;
    let intact = |slot: usize, first_row: u64, cells: &[u8]| -> Vec<bool> {
        let n = cells.len() / cs;
        let leaves = trees[slot].as_ref().and_then(|t| tree::leaves(t, first_row, n).ok()).unwrap_or_default();
        let hashes = hash_cells(&cells[..n * cs], cs, 2);
        (0..n).map(|r| leaves.get(r).is_some_and(|leaf| *leaf == hashes[r])).collect()
    };
    Ok(erasure::decode(&layout, &slots, output, &intact)?)
}

/// The root stored at the top of a slot tree file.
fn tree_root(tree_file: &File, leaves: u64) -> std::io::Result<Fr> {
    let sizes = tree::level_sizes(leaves);
    let top: u64 = sizes[..sizes.len() - 1].iter().sum();
    if leaves == 0 {
        return Ok(circuits::merkle_root(&[]));
    }
    tree::leaves(tree_file, top, 1)?.first().copied().ok_or_else(|| std::io::Error::other("empty tree file"))
}

#[cfg(test)]
mod tests;
