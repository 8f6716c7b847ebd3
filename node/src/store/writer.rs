//! Streaming upload of a new dataset: bytes in, blocks hashed and written sequentially to a file
//! in `tmp/`, the content tree built at the end. Memory stays at one block plus 32 bytes per block.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::{BlockStore, StoreError};
use crate::content::manifest::MAX_BLOCK_SIZE;
use crate::content::{ContentId, Manifest, MerkleTree, leaf_hash};

/// Bytes claimed from the quota at a time while an upload grows.
const RESERVE_STEP: u64 = 64 * 1024 * 1024;

/// An upload in progress. Dropping it without [`DatasetWriter::finish`] discards everything.
pub struct DatasetWriter {
    store: Arc<BlockStore>,
    pub(super) path: PathBuf,
    file: Option<BufWriter<File>>,
    block_size: usize,
    block: Vec<u8>,
    leaves: Vec<[u8; 32]>,
    size: u64,
    reserved: u64,
}

impl std::fmt::Debug for DatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetWriter").field("path", &self.path).field("size", &self.size).finish()
    }
}

impl DatasetWriter {
    pub(super) fn new(store: Arc<BlockStore>, block_size: u32) -> Result<Self, StoreError> {
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return Err(StoreError::Mismatch(format!("block size {block_size}")));
        }
        let path = store.tmp_path("data");
        let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        Ok(Self {
            store,
            path,
            file: Some(file),
            block_size: block_size as usize,
            block: Vec::with_capacity(block_size as usize),
            leaves: Vec::new(),
            size: 0,
            reserved: 0,
        })
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends bytes to the dataset.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        let needed = self.size + data.len() as u64 + super::tree_bytes(self.leaves.len() as u64 + 2);
        if needed > self.reserved {
            // Claim in large steps to touch the shared counter rarely; near the quota, claim
            // exactly what is needed.
            let want = needed - self.reserved;
            let step = want.max(RESERVE_STEP);
            if self.store.reserve(step).is_ok() {
                self.reserved += step;
            } else {
                self.store.reserve(want)?;
                self.reserved += want;
            }
        }
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (self.block_size - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == self.block_size {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), StoreError> {
        self.leaves.push(leaf_hash(&self.block));
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.block)?;
        }
        self.block.clear();
        Ok(())
    }

    /// Completes the upload: syncs the data, builds the tree and commits the dataset and its
    /// manifest. Returns the manifest's CID.
    pub fn finish(
        mut self,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Result<(ContentId, Manifest), StoreError> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let file = self.file.take().ok_or_else(|| StoreError::Corrupt("upload already finished".into()))?;
        let file = file.into_inner().map_err(|e| StoreError::Io(e.into_error()))?;
        file.sync_data()?;
        drop(file);
        let tree = MerkleTree::from_leaves(std::mem::take(&mut self.leaves));
        let mut manifest = Manifest::new(ContentId::for_tree(&tree.root()), self.block_size as u32, self.size);
        manifest.filename = filename;
        manifest.mimetype = mimetype;
        let reserved = std::mem::take(&mut self.reserved);
        let cid = self.store.commit_dataset(&self.path, &tree, &manifest, reserved)?;
        Ok((cid, manifest))
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
        self.store.release(self.reserved);
    }
}
