//! A dataset being received from the network: verified blocks are written at their offsets in a
//! data file in `tmp/`, their leaf hashes at theirs in a tree file; once every block is in, the
//! levels above are built from the file and the root must equal the manifest's before the
//! dataset is committed. Blocks are verified by the caller against the manifest's root before
//! they reach this type; the final root check is a last line of defence. Memory: one bit per block.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BlockStore, StoreError, disk, tree_file};
use crate::content::{ContentId, Manifest};

/// A network download in progress. Dropping it without [`PartialDataset::finish`] discards it.
pub struct PartialDataset {
    store: Arc<BlockStore>,
    path: PathBuf,
    tree_path: PathBuf,
    files: Option<(File, File)>,
    manifest: Manifest,
    received: Vec<u64>,
    blocks: u64,
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
        let words = usize::try_from(blocks.div_ceil(64)).map_err(|_| StoreError::Mismatch("too many blocks".into()))?;
        // The data file is sparse: claim the whole dataset and check the disk has room for it
        // now, rather than fail at some block far into the transfer.
        let reserved = store.claim_step(manifest.dataset_size + super::tree_bytes(blocks), 0)?;
        let path = store.tmp_path("fetch");
        let tree_path = path.with_extension("tree");
        let open = || -> std::io::Result<(File, File)> {
            let data = disk::create_private(&path)?;
            data.set_len(manifest.dataset_size)?;
            Ok((data, disk::create_private(&tree_path)?))
        };
        let files = match open() {
            Ok(f) => f,
            Err(e) => {
                store.release(reserved);
                let _ = disk::remove_if_present(&path);
                let _ = disk::remove_if_present(&tree_path);
                return Err(store.explain(e.into(), reserved));
            }
        };
        Ok(Self {
            store,
            path,
            tree_path,
            files: Some(files),
            manifest: manifest.clone(),
            received: vec![0; words],
            blocks,
            missing: blocks,
            reserved,
        })
    }

    /// The data file being written (for streaming the received prefix to a reader).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks still missing.
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Whether block `index` is in.
    pub fn has(&self, index: u64) -> bool {
        index < self.blocks && self.received[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    /// Writes a block whose leaf hash the caller has verified against the manifest's root.
    pub fn write_block(&mut self, index: u64, data: &[u8], leaf: [u8; 32]) -> Result<(), StoreError> {
        if index >= self.blocks {
            return Err(StoreError::Mismatch(format!("block {index} out of range")));
        }
        if data.len() as u64 != self.manifest.block_len(index) {
            return Err(StoreError::Mismatch(format!("block {index} has {} bytes", data.len())));
        }
        if self.has(index) {
            return Ok(());
        }
        let (file, tree) = self.files.as_ref().ok_or_else(|| StoreError::Corrupt("fetch already finished".into()))?;
        let written = file
            .write_all_at(data, index * u64::from(self.manifest.block_size))
            .and_then(|()| tree.write_all_at(&leaf, index * 32));
        written.map_err(|e| self.store.explain(e.into(), data.len() as u64))?;
        self.received[(index / 64) as usize] |= 1 << (index % 64);
        self.missing -= 1;
        Ok(())
    }

    /// Commits the dataset once every block is in. On any error nothing of the fetch remains:
    /// its files are removed and its quota claim is given back.
    pub fn finish(mut self) -> Result<ContentId, StoreError> {
        if self.missing > 0 {
            return Err(StoreError::Mismatch(format!("{} blocks still missing", self.missing)));
        }
        let (data, tree) = self.files.take().ok_or_else(|| StoreError::Corrupt("fetch already finished".into()))?;
        drop(data);
        let root = tree_file::build_levels(&tree, self.blocks).map_err(|e| self.store.explain(e.into(), 0))?;
        drop(tree);
        let expected = self.manifest.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if ContentId::for_tree(&root) != expected {
            return Err(StoreError::Mismatch("rebuilt tree root differs from the manifest".into()));
        }
        let cid = self.store.commit_dataset(&self.path, &self.tree_path, root, &self.manifest, self.reserved)?;
        // The commit swapped the claim for the dataset's footprint.
        self.reserved = 0;
        Ok(cid)
    }
}

impl Drop for PartialDataset {
    fn drop(&mut self) {
        // After a successful commit the files are in `datasets/` and these paths are free.
        self.files = None;
        let _ = disk::remove_if_present(&self.path);
        let _ = disk::remove_if_present(&self.tree_path);
        self.store.release(self.reserved);
    }
}
