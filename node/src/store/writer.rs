//! Streaming upload of a new dataset: bytes in, blocks hashed and written sequentially to a data
//! file in `tmp/`, their leaf hashes appended to a tree file beside it; the levels above are
//! built from the file at the end. Memory stays at one block and two write buffers, whatever the
//! dataset's size. Quota is claimed a step ahead of the bytes written, each step checked against
//! the disk's free space, so an idle upload holds at most one step.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::{BlockStore, StoreError, disk, tree_file};
use crate::content::manifest::MAX_BLOCK_SIZE;
use crate::content::{ContentId, Manifest, leaf_hash};

/// Bytes an upload claims from the quota at a time as it grows (less near the quota or when
/// the disk is nearly full): the most an idle upload holds beyond what it wrote.
pub const CLAIM_STEP: u64 = 1 << 20;

/// An upload in progress. Dropping it without [`DatasetWriter::finish`] discards everything.
pub struct DatasetWriter {
    store: Arc<BlockStore>,
    pub(super) path: PathBuf,
    tree_path: PathBuf,
    files: Option<(BufWriter<File>, BufWriter<File>)>,
    block_size: usize,
    block: Vec<u8>,
    leaves: u64,
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
        let tree_path = path.with_extension("tree");
        let files = disk::create_private(&path).and_then(|data| Ok((data, disk::create_private(&tree_path)?)));
        let (data, tree) = match files {
            Ok(files) => files,
            Err(e) => {
                let _ = disk::remove_if_present(&path);
                return Err(store.explain(e.into(), 0));
            }
        };
        let (data, tree) = (BufWriter::with_capacity(1 << 20, data), BufWriter::with_capacity(64 << 10, tree));
        Ok(Self {
            store,
            path,
            tree_path,
            files: Some((data, tree)),
            block_size: block_size as usize,
            block: Vec::with_capacity(block_size as usize),
            leaves: 0,
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
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.append(data).map_err(|e| self.store.explain(e, data.len() as u64))
    }

    fn append(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        let needed = self.size + data.len() as u64 + super::tree_bytes(self.leaves + 2);
        if needed > self.reserved {
            self.reserved += self.store.claim_step(needed - self.reserved, CLAIM_STEP)?;
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
        let (data, tree) = self.files.as_mut().ok_or_else(|| StoreError::Corrupt("upload already finished".into()))?;
        tree.write_all(&leaf_hash(&self.block))?;
        data.write_all(&self.block)?;
        self.leaves += 1;
        self.block.clear();
        Ok(())
    }

    /// Completes the upload: builds the tree, syncs both files and commits the dataset and its
    /// manifest. Returns the manifest's CID. On any error nothing of the upload remains: its
    /// files are removed and its whole quota claim is given back.
    pub fn finish(
        self,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Result<(ContentId, Manifest), StoreError> {
        self.finish_with(|m| {
            m.filename = filename;
            m.mimetype = mimetype;
        })
    }

    /// Like [`DatasetWriter::finish`], with the manifest's optional fields set by `describe`
    /// (name, media type, encryption record) before it is committed.
    pub fn finish_with(mut self, describe: impl FnOnce(&mut Manifest)) -> Result<(ContentId, Manifest), StoreError> {
        let bytes = self.size + super::tree_bytes(self.leaves + 1);
        self.complete(describe).map_err(|e| self.store.explain(e, bytes))
    }

    fn complete(&mut self, describe: impl FnOnce(&mut Manifest)) -> Result<(ContentId, Manifest), StoreError> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let (data, tree) = self.files.take().ok_or_else(|| StoreError::Corrupt("upload already finished".into()))?;
        drop(data.into_inner().map_err(|e| StoreError::from(e.into_error()))?);
        drop(tree.into_inner().map_err(|e| StoreError::from(e.into_error()))?);
        // Reopened for reading as well: the levels are built from the leaves just written.
        let tree = File::options().read(true).write(true).open(&self.tree_path)?;
        let root = tree_file::build_levels(&tree, self.leaves)?;
        drop(tree);
        let mut manifest = Manifest::new(ContentId::for_tree(&root), self.block_size as u32, self.size);
        describe(&mut manifest);
        let cid = self.store.commit_dataset(&self.path, &self.tree_path, root, &manifest, self.reserved)?;
        // The commit swapped the claim for the dataset's footprint.
        self.reserved = 0;
        Ok((cid, manifest))
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        // After a successful commit the files are in `datasets/` and these paths are free.
        drop(self.files.take());
        let _ = disk::remove_if_present(&self.path);
        let _ = disk::remove_if_present(&self.tree_path);
        self.store.release(self.reserved);
    }
}
