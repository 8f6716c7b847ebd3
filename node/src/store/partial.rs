//! A dataset being received from the network: verified blocks are written at their offsets in a
//! file in `tmp/`; once every block is in, the tree is rebuilt from the verified leaves and the
//! dataset committed. Blocks are verified by the caller (against the manifest's tree root) before
//! they reach this type; it re-checks the root at the end as a last line of defence.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BlockStore, StoreError};
use crate::content::{ContentId, Manifest, MerkleTree};

/// A network download in progress. Dropping it without [`PartialDataset::finish`] discards it.
pub struct PartialDataset {
    store: Arc<BlockStore>,
    path: PathBuf,
    file: Option<File>,
    manifest: Manifest,
    leaves: Vec<Option<[u8; 32]>>,
    missing: u64,
    reserved: u64,
}

impl std::fmt::Debug for PartialDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialDataset").field("path", &self.path).field("missing", &self.missing).finish()
    }
}

impl PartialDataset {
    pub(super) fn new(store: Arc<BlockStore>, manifest: &Manifest) -> Result<Self, StoreError> {
        let blocks = manifest.block_count();
        let reserved = manifest.dataset_size + super::tree_bytes(blocks);
        let leaves = usize::try_from(blocks).map_err(|_| StoreError::Mismatch("too many blocks".into()))?;
        store.reserve(reserved)?;
        let path = store.tmp_path("fetch");
        let file = match File::create(&path).and_then(|f| f.set_len(manifest.dataset_size).map(|()| f)) {
            Ok(f) => f,
            Err(e) => {
                store.release(reserved);
                return Err(e.into());
            }
        };
        Ok(Self {
            store,
            path,
            file: Some(file),
            manifest: manifest.clone(),
            leaves: vec![None; leaves],
            missing: blocks,
            reserved,
        })
    }

    /// The file being written (for streaming the received prefix to a reader).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks still missing.
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Whether block `index` is in.
    pub fn has(&self, index: u64) -> bool {
        self.leaves.get(index as usize).is_some_and(Option::is_some)
    }

    /// Writes a block whose leaf hash the caller has verified against the manifest's root.
    pub fn write_block(&mut self, index: u64, data: &[u8], leaf: [u8; 32]) -> Result<(), StoreError> {
        if data.len() as u64 != self.manifest.block_len(index) {
            return Err(StoreError::Mismatch(format!("block {index} has {} bytes", data.len())));
        }
        let slot = self
            .leaves
            .get_mut(index as usize)
            .ok_or_else(|| StoreError::Mismatch(format!("block {index} out of range")))?;
        if slot.is_some() {
            return Ok(());
        }
        let file = self.file.as_ref().ok_or_else(|| StoreError::Corrupt("fetch already finished".into()))?;
        file.write_all_at(data, index * u64::from(self.manifest.block_size))?;
        *slot = Some(leaf);
        self.missing -= 1;
        Ok(())
    }

    /// Commits the dataset once every block is in.
    pub fn finish(mut self) -> Result<ContentId, StoreError> {
        if self.missing > 0 {
            return Err(StoreError::Mismatch(format!("{} blocks still missing", self.missing)));
        }
        let leaves: Vec<[u8; 32]> = self.leaves.iter().flatten().copied().collect();
        let tree = MerkleTree::from_leaves(leaves);
        let expected = self.manifest.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if ContentId::for_tree(&tree.root()) != expected {
            return Err(StoreError::Mismatch("rebuilt tree root differs from the manifest".into()));
        }
        let file = self.file.take().ok_or_else(|| StoreError::Corrupt("fetch already finished".into()))?;
        file.sync_data()?;
        drop(file);
        let reserved = std::mem::take(&mut self.reserved);
        self.store.commit_dataset(&self.path, &tree, &self.manifest, reserved)
    }
}

impl Drop for PartialDataset {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
        self.store.release(self.reserved);
    }
}
