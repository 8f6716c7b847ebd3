//! The block store: datasets on disk under the node's data dir, with crash-safe metadata.
//!
//! Layout (see `docs/design.md`, "Block store"):
//! - `meta.redb` — manifests and the index of complete datasets (redb, ACID, fsync on commit);
//! - `datasets/<tree-cid>.data` — a dataset's blocks back to back, so uploads and downloads are
//!   sequential file I/O rather than one database row per block;
//! - `datasets/<tree-cid>.tree` — every level of its content tree, so a block's proof is read,
//!   never recomputed;
//! - `tmp/` — uploads and network fetches in progress.
//!
//! A dataset becomes visible only when its files are synced, renamed into `datasets/` and its
//! record committed in one redb transaction. A crash at any point leaves either nothing or the
//! whole dataset; start-up removes what a crash left in `tmp/` and any file without a record.
//!
//! Disk errors: a full disk (ENOSPC or EDQUOT from any write, sync or rename, inside redb too)
//! is [`StoreError::NoSpace`], and so is a transfer the file system has no room for on top of
//! [`StoreOptions::min_free_bytes`] (uploads ask at each [`CLAIM_STEP`] of quota they claim,
//! fetches and slot claims for their whole size). A failed commit leaves nothing behind: its
//! transfer's quota claim goes back whole, its temporary files and any file it renamed into
//! `datasets/` are removed (never those of a dataset committed before). redb refuses every
//! write after an I/O error until it is reopened; `meta.rs` reopens it, so the store works again
//! as soon as there is space, without a restart. Everything the store creates is private to the
//! node's user (files 0600, directories 0700).
//!
//! This module never talks to the network and never trusts a block it did not check.

mod disk;
#[cfg(test)]
mod faults;
mod meta;
mod partial;
mod tree_file;
mod writer;

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableTable, TableDefinition};
use tracing::{info, warn};

use self::meta::MetaDb;
pub use self::partial::PartialDataset;
pub use self::writer::{CLAIM_STEP, DatasetWriter};
use crate::content::{BlockProof, ContentId, ContentKind, Hash, Manifest, TreeError};

const LOG: &str = "vellum::store";

/// manifest CID bytes → manifest protobuf.
const MANIFESTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("manifests");
/// tree CID bytes → [`DatasetRecord`] encoding.
const DATASETS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("datasets");

/// Errors of the block store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File-system error.
    #[error("block store I/O: {0}")]
    Io(std::io::Error),
    /// Metadata database error.
    #[error("block store database: {0}")]
    Db(String),
    /// The node's storage quota would be exceeded.
    #[error("storage quota exceeded: {needed} more bytes needed, {available} available")]
    QuotaExceeded {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes left under the quota.
        available: u64,
    },
    /// The disk holding the store is full (ENOSPC or EDQUOT from a write, a sync, a rename or the
    /// metadata database), or has less free space than an operation needs on top of the reserve
    /// the store keeps ([`StoreOptions::min_free_bytes`]).
    #[error("not enough disk space: {needed} bytes needed (free-space reserve included), {available} available")]
    NoSpace {
        /// Bytes the operation needed, the reserve included (as far as known).
        needed: u64,
        /// Bytes the file system reported free for the node.
        available: u64,
    },
    /// A stored tree or manifest is damaged.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The dataset or block is not stored here.
    #[error("not found")]
    NotFound,
    /// A received dataset does not match its manifest.
    #[error("dataset does not match its manifest: {0}")]
    Mismatch(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if disk::is_no_space(&e) {
            // The figures are filled in where the store knows them (`BlockStore::explain`).
            Self::NoSpace { needed: 0, available: 0 }
        } else {
            Self::Io(e)
        }
    }
}

impl From<TreeError> for StoreError {
    fn from(e: TreeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::Io(io) if disk::is_no_space(&io) => io.into(),
            other => Self::Db(other.to_string()),
        }
    }
}

macro_rules! db_err {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for StoreError {
            fn from(e: redb::$t) -> Self {
                match e {
                    redb::$t::Storage(s) => s.into(),
                    other => Self::Db(other.to_string()),
                }
            }
        }
    )*};
}
db_err!(DatabaseError, TransactionError, TableError, CommitError);

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(io) if disk::is_no_space(&io) => io.into(),
            other => Self::Db(other.to_string()),
        }
    }
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes the store may use: complete datasets, slots and transfers in progress.
    pub quota: u64,
    /// Bytes the store leaves free on its file system, whatever the quota says: a transfer that
    /// would eat into them is refused with [`StoreError::NoSpace`]. They keep room for the
    /// metadata database's commits and for the rest of the machine.
    pub min_free_bytes: u64,
}

impl StoreOptions {
    /// The free-space reserve [`BlockStore::open`] keeps: 1 MiB, room for the metadata
    /// database's commits once transfers have filled the disk up to it. Small, so that a small
    /// disk stays usable; operators who share the disk with other programs set more.
    pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 20;

    /// `quota` with the default free-space reserve.
    pub fn new(quota: u64) -> Self {
        Self { quota, min_free_bytes: Self::DEFAULT_MIN_FREE_BYTES }
    }
}

/// What the index keeps of a complete dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetRecord {
    /// Bytes in the dataset.
    pub dataset_size: u64,
    /// Block size.
    pub block_size: u32,
}

impl DatasetRecord {
    fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.dataset_size.to_le_bytes());
        out[8..].copy_from_slice(&self.block_size.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (size, bs) = bytes
            .split_first_chunk::<8>()
            .and_then(|(s, rest)| Some((s, rest.first_chunk::<4>()?)))
            .ok_or_else(|| StoreError::Corrupt("short dataset record".into()))?;
        Ok(Self { dataset_size: u64::from_le_bytes(*size), block_size: u32::from_le_bytes(*bs) })
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.dataset_size.div_ceil(u64::from(self.block_size.max(1)))
    }

    /// Bytes on disk, tree included.
    fn disk_bytes(&self) -> u64 {
        self.dataset_size + tree_bytes(self.block_count())
    }
}

fn tree_bytes(leaves: u64) -> u64 {
    // Every level halves: fewer than 2 · leaves nodes of 32 bytes.
    leaves * 64
}

/// A summary of the space the store uses, as `GET /space` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceSummary {
    /// Blocks stored.
    pub total_blocks: u64,
    /// The quota.
    pub quota_max_bytes: u64,
    /// Bytes used by complete datasets and transfers in progress.
    pub quota_used_bytes: u64,
    /// Bytes promised to future storage contracts.
    pub quota_reserved_bytes: u64,
}

/// Part of the quota held for work in progress; given back on drop unless
/// [`QuotaClaim::keep_only`] turns it into space in use.
#[derive(Debug)]
pub(crate) struct QuotaClaim<'a> {
    store: &'a BlockStore,
    bytes: u64,
}

impl QuotaClaim<'_> {
    /// Keeps `bytes` of the claim as used (what the work really wrote) and gives the rest back.
    pub(crate) fn keep_only(mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

impl Drop for QuotaClaim<'_> {
    fn drop(&mut self) {
        self.store.release(self.bytes);
    }
}

/// The node's block store. Cheap to share behind an `Arc`; all methods block on disk I/O, so
/// async callers run them on the blocking pool.
pub struct BlockStore {
    root: PathBuf,
    meta: MetaDb,
    quota: u64,
    min_free_bytes: u64,
    used: AtomicU64,
    #[cfg(test)]
    faults: Arc<faults::Faults>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("root", &self.root)
            .field("quota", &self.quota)
            .field("min_free_bytes", &self.min_free_bytes)
            .finish()
    }
}

impl BlockStore {
    /// Opens (or creates) the store in `root`, recovering from any crash; keeps the default
    /// free-space reserve ([`StoreOptions::DEFAULT_MIN_FREE_BYTES`]).
    pub fn open(root: &Path, quota: u64) -> Result<Arc<Self>, StoreError> {
        Self::open_with(root, StoreOptions::new(quota))
    }

    /// Opens (or creates) the store in `root` with `options`, recovering from any crash.
    pub fn open_with(root: &Path, options: StoreOptions) -> Result<Arc<Self>, StoreError> {
        Self::open_inner(root, options, Box::new(meta::open_file)).map(Arc::new)
    }

    /// Opens a store whose metadata database and free-space figure obey `store.faults`.
    #[cfg(test)]
    fn open_faulty(root: &Path, options: StoreOptions) -> Result<Arc<Self>, StoreError> {
        let faults = Arc::new(faults::Faults::default());
        let mut store = Self::open_inner(root, options, faults::opener(Arc::clone(&faults)))?;
        store.faults = faults;
        Ok(Arc::new(store))
    }

    fn open_inner(root: &Path, options: StoreOptions, opener: meta::Opener) -> Result<Self, StoreError> {
        disk::private_dir(root)?;
        disk::private_dir(&root.join("datasets"))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        disk::private_dir(&tmp)?;
        let meta = MetaDb::open(root.join("meta.redb"), opener)?;
        meta.write(|tx| {
            tx.open_table(MANIFESTS)?;
            tx.open_table(DATASETS)?;
            Ok(())
        })?;
        let store = Self {
            root: root.to_path_buf(),
            meta,
            quota: options.quota,
            min_free_bytes: options.min_free_bytes,
            used: AtomicU64::new(0),
            #[cfg(test)]
            faults: Arc::default(),
        };
        store.recover()?;
        Ok(store)
    }

    /// Removes dataset files without a committed record, and records whose files are gone (a
    /// commit that reported an error yet took effect, after its files were removed); totals the
    /// space in use.
    fn recover(&self) -> Result<(), StoreError> {
        let mut records = self.datasets()?;
        let dangling: Vec<ContentId> = records
            .iter()
            .filter(|(cid, _)| !self.data_path(cid).exists() || !self.tree_path(cid).exists())
            .map(|(cid, _)| *cid)
            .collect();
        if !dangling.is_empty() {
            self.meta.write(|tx| {
                let mut table = tx.open_table(DATASETS)?;
                for cid in &dangling {
                    warn!(target: LOG, tree = %cid, "removing a dataset record whose files are missing");
                    table.remove(cid.to_bytes().as_slice())?;
                }
                Ok(())
            })?;
            records.retain(|(cid, _)| !dangling.contains(cid));
        }
        let known: HashMap<String, DatasetRecord> = records.iter().map(|(c, r)| (c.to_string(), *r)).collect();
        for entry in fs::read_dir(self.root.join("datasets"))? {
            let path = entry?.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if !known.contains_key(stem) {
                warn!(target: LOG, path = %path.display(), "removing file left by an interrupted write");
                fs::remove_file(&path)?;
            }
        }
        let used = records.iter().map(|(_, r)| r.disk_bytes()).sum::<u64>() + dir_bytes(&self.root.join("slots"))?;
        self.used.store(used, Ordering::Relaxed);
        info!(target: LOG, datasets = records.len(), used_bytes = used, "block store open");
        Ok(())
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data file of a complete dataset (its blocks back to back), for readers that need a
    /// path (the prover's slot reader).
    pub fn complete_data_path(&self, tree: &ContentId) -> Result<PathBuf, StoreError> {
        self.dataset(tree)?.ok_or(StoreError::NotFound)?;
        Ok(self.data_path(tree))
    }

    fn data_path(&self, tree: &ContentId) -> PathBuf {
        self.root.join("datasets").join(format!("{tree}.data"))
    }

    fn tree_path(&self, tree: &ContentId) -> PathBuf {
        self.root.join("datasets").join(format!("{tree}.tree"))
    }

    fn tmp_path(&self, suffix: &str) -> PathBuf {
        self.root.join("tmp").join(format!("{:016x}.{suffix}", rand::random::<u64>()))
    }

    /// Bytes free for the node on the store's file system (statvfs of the root).
    fn available_bytes(&self) -> Result<u64, StoreError> {
        #[cfg(test)]
        if let Some(bytes) = self.faults.available() {
            return Ok(bytes);
        }
        Ok(disk::available_bytes(&self.root)?)
    }

    /// Answers [`StoreError::NoSpace`] unless the file system holding the store has room for
    /// `declared` more bytes (none when `None`) on top of the free-space reserve. For requests
    /// that announce their size (an upload's `Content-Length`), so they are refused before a
    /// byte is written.
    pub fn check_free_space(&self, declared: Option<u64>) -> Result<(), StoreError> {
        let needed = declared.unwrap_or(0).saturating_add(self.min_free_bytes);
        let available = self.available_bytes()?;
        if available < needed {
            return Err(StoreError::NoSpace { needed, available });
        }
        Ok(())
    }

    /// Gives a [`StoreError::NoSpace`] raised by the file system or the database its figures:
    /// `bytes` the operation wanted (the reserve added) and what the file system has free.
    fn explain(&self, e: StoreError, bytes: u64) -> StoreError {
        match e {
            StoreError::NoSpace { needed, .. } => StoreError::NoSpace {
                needed: needed.max(bytes.saturating_add(self.min_free_bytes)),
                available: self.available_bytes().unwrap_or(0),
            },
            other => other,
        }
    }

    /// Claims `bytes` of the quota for a transfer in progress.
    fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let available = self.quota.saturating_sub(current);
            if bytes > available {
                return Err(StoreError::QuotaExceeded { needed: bytes, available });
            }
            match self.used.compare_exchange_weak(current, current + bytes, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims at least `want` bytes of the quota for a transfer about to write them, up to
    /// `step` when the quota and the disk allow (so that the shared counter and the file system
    /// are asked once per step, not once per write). Checks the file system's free space once.
    /// Returns the bytes claimed.
    fn claim_step(&self, want: u64, step: u64) -> Result<u64, StoreError> {
        let available = self.available_bytes()?;
        let room = available.saturating_sub(self.min_free_bytes);
        if want > room {
            return Err(StoreError::NoSpace { needed: want.saturating_add(self.min_free_bytes), available });
        }
        let step = step.min(room).max(want);
        if step > want && self.reserve(step).is_ok() {
            return Ok(step);
        }
        self.reserve(want)?;
        Ok(want)
    }

    fn release(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    /// Removes a directory of slot files under the store's root and gives its bytes back to the
    /// quota; returns them (0 when it is gone already).
    pub(crate) fn remove_slot_files(&self, dir: &Path) -> Result<u64, StoreError> {
        let bytes = dir_bytes(dir)?;
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        self.release(bytes);
        Ok(bytes)
    }

    /// Claims `bytes` of the quota, and checks that the disk has them free; the claim is
    /// returned on drop unless kept.
    pub(crate) fn claim(&self, bytes: u64) -> Result<QuotaClaim<'_>, StoreError> {
        let bytes = self.claim_step(bytes, bytes)?;
        Ok(QuotaClaim { store: self, bytes })
    }

    /// Starts an upload of a new dataset with the given block size.
    pub fn begin_upload(self: &Arc<Self>, block_size: u32) -> Result<DatasetWriter, StoreError> {
        DatasetWriter::new(Arc::clone(self), block_size)
    }

    /// Starts receiving the blocks of a dataset described by `manifest` from the network.
    pub fn begin_fetch(self: &Arc<Self>, manifest: &Manifest) -> Result<PartialDataset, StoreError> {
        PartialDataset::new(Arc::clone(self), manifest)
    }

    /// Makes a fully written dataset visible: syncs its data and tree files, then, in one
    /// metadata transaction, renames them into place and commits its record and manifest.
    /// `reserved` is what the transfer claimed of the quota: on success it is swapped for the
    /// dataset's footprint; on failure the caller still holds it (and gives it back whole),
    /// and neither the temporary files nor any file this call put into `datasets/` remain.
    fn commit_dataset(
        &self,
        data_tmp: &Path,
        tree_tmp: &Path,
        root: Hash,
        manifest: &Manifest,
        reserved: u64,
    ) -> Result<ContentId, StoreError> {
        let tree_cid = ContentId::for_tree(&root);
        let record = DatasetRecord { dataset_size: manifest.dataset_size, block_size: manifest.block_size };
        let encoded = manifest.to_bytes();
        let manifest_cid = ContentId::for_manifest(&encoded);
        let result = self.place_and_record(data_tmp, tree_tmp, &tree_cid, record, &manifest_cid, &encoded);
        for path in [data_tmp, tree_tmp] {
            if let Err(e) = disk::remove_if_present(path) {
                warn!(target: LOG, path = %path.display(), error = %e, "could not remove a temporary file");
            }
        }
        let fresh = result.map_err(|e| self.explain(e, encoded.len() as u64))?;
        // Swap the transfer's claim for the dataset's real footprint.
        self.release(reserved);
        if fresh {
            self.used.fetch_add(record.disk_bytes(), Ordering::AcqRel);
        }
        info!(target: LOG, manifest = %manifest_cid, tree = %tree_cid, bytes = manifest.dataset_size, "dataset stored");
        Ok(manifest_cid)
    }

    /// The steps of [`Self::commit_dataset`] that can fail; returns whether the dataset is new
    /// here. Its files are renamed into `datasets/` inside the write transaction, so a
    /// concurrent commit of the same tree sees either no record and no files of ours, or both.
    fn place_and_record(
        &self,
        data_tmp: &Path,
        tree_tmp: &Path,
        tree_cid: &ContentId,
        record: DatasetRecord,
        manifest_cid: &ContentId,
        encoded: &[u8],
    ) -> Result<bool, StoreError> {
        File::open(data_tmp)?.sync_data()?;
        File::open(tree_tmp)?.sync_data()?;
        let (data_path, tree_path) = (self.data_path(tree_cid), self.tree_path(tree_cid));
        let mut placed: Vec<&Path> = Vec::new();
        let result = self.meta.write(|tx| {
            let mut datasets = tx.open_table(DATASETS)?;
            // A record whose files are gone (see `recover`) counts as none.
            let fresh =
                datasets.get(tree_cid.to_bytes().as_slice())?.is_none() || !data_path.exists() || !tree_path.exists();
            if fresh {
                placed.push(&tree_path);
                fs::rename(tree_tmp, &tree_path)?;
                placed.push(&data_path);
                fs::rename(data_tmp, &data_path)?;
                File::open(self.root.join("datasets"))?.sync_all()?;
                datasets.insert(tree_cid.to_bytes().as_slice(), record.encode().as_slice())?;
            }
            drop(datasets);
            tx.open_table(MANIFESTS)?.insert(manifest_cid.to_bytes().as_slice(), encoded)?;
            Ok(fresh)
        });
        let Err(e) = result else { return result };
        if placed.is_empty() {
            return Err(e);
        }
        // The files are ours: no record named them when we renamed them in. Unless the commit
        // took effect after all (an error at its last sync), they go.
        match self.meta.read(|tx| Ok(tx.open_table(MANIFESTS)?.get(manifest_cid.to_bytes().as_slice())?.is_some())) {
            Ok(true) if self.dataset(tree_cid).is_ok_and(|r| r.is_some()) => {
                warn!(target: LOG, tree = %tree_cid, error = %e, "the dataset's commit reported an error but took effect");
                return Ok(true);
            }
            Ok(_) => {}
            Err(check) => {
                // In doubt the files still go: a record left without them is ignored by the
                // next commit of the same tree and removed at the next start.
                warn!(target: LOG, tree = %tree_cid, error = %check, "could not check whether a failed commit took effect");
            }
        }
        for path in placed {
            if let Err(e) = disk::remove_if_present(path) {
                warn!(target: LOG, path = %path.display(), error = %e, "could not remove the file of a failed commit");
            }
        }
        Err(e)
    }

    /// Stores a manifest received from a peer (after its CID was checked).
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<ContentId, StoreError> {
        let encoded = manifest.to_bytes();
        let cid = ContentId::for_manifest(&encoded);
        self.meta
            .write(|tx| {
                tx.open_table(MANIFESTS)?.insert(cid.to_bytes().as_slice(), encoded.as_slice())?;
                Ok(())
            })
            .map_err(|e| self.explain(e, encoded.len() as u64))?;
        Ok(cid)
    }

    /// The manifest named `cid`, if known here.
    pub fn manifest(&self, cid: &ContentId) -> Result<Option<Manifest>, StoreError> {
        self.meta.read(|tx| {
            let table = tx.open_table(MANIFESTS)?;
            let Some(bytes) = table.get(cid.to_bytes().as_slice())? else { return Ok(None) };
            Manifest::decode_checked(bytes.value()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }

    /// The record of the complete dataset with tree `tree`, if stored here.
    pub fn dataset(&self, tree: &ContentId) -> Result<Option<DatasetRecord>, StoreError> {
        self.meta.read(|tx| {
            let table = tx.open_table(DATASETS)?;
            let value = table.get(tree.to_bytes().as_slice())?;
            value.map(|v| DatasetRecord::decode(v.value())).transpose()
        })
    }

    fn datasets(&self) -> Result<Vec<(ContentId, DatasetRecord)>, StoreError> {
        self.meta.read(|tx| {
            let table = tx.open_table(DATASETS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let cid = ContentId::from_bytes(k.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((cid, DatasetRecord::decode(v.value())?));
            }
            Ok(out)
        })
    }

    /// Every manifest whose dataset is complete here, and every protected manifest (its data
    /// lives in slots).
    pub fn list(&self) -> Result<Vec<(ContentId, Manifest)>, StoreError> {
        self.meta.read(|tx| {
            let manifests = tx.open_table(MANIFESTS)?;
            let datasets = tx.open_table(DATASETS)?;
            let mut out = Vec::new();
            for row in manifests.iter()? {
                let (k, v) = row?;
                let cid = ContentId::from_bytes(k.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let manifest = Manifest::decode_checked(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if manifest.is_protected() || datasets.get(manifest.tree_cid.as_slice())?.is_some() {
                    out.push((cid, manifest));
                }
            }
            Ok(out)
        })
    }

    /// Whether the manifest or tree `cid` is held here with all of its data.
    pub fn has_complete(&self, cid: &ContentId) -> Result<bool, StoreError> {
        match cid.kind() {
            ContentKind::Tree => Ok(self.dataset(cid)?.is_some()),
            ContentKind::Manifest => match self.manifest(cid)? {
                Some(m) => Ok(self.dataset(&m.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?)?.is_some()),
                None => Ok(false),
            },
        }
    }

    /// Opens a complete dataset's data file for reading.
    pub fn open_data(&self, tree: &ContentId) -> Result<(File, DatasetRecord), StoreError> {
        let record = self.dataset(tree)?.ok_or(StoreError::NotFound)?;
        Ok((File::open(self.data_path(tree))?, record))
    }

    /// Reads blocks `start..start+count` of a complete dataset, each with its proof.
    pub fn blocks_with_proofs(
        &self,
        tree: &ContentId,
        start: u64,
        count: u64,
    ) -> Result<Vec<(u64, bytes::Bytes, BlockProof)>, StoreError> {
        let (file, record) = self.open_data(tree)?;
        let end = start.saturating_add(count).min(record.block_count());
        if start >= end {
            return Ok(Vec::new());
        }
        let bs = u64::from(record.block_size);
        // One read for the whole run; the blocks are slices of it.
        let from = start * bs;
        let to = (end * bs).min(record.dataset_size);
        let mut run = vec![0u8; (to - from) as usize];
        file.read_exact_at(&mut run, from)?;
        let run = bytes::Bytes::from(run);
        let proofs = tree_file::read_proofs(&File::open(self.tree_path(tree))?, record.block_count(), start, end)?;
        let mut out = Vec::with_capacity((end - start) as usize);
        for (index, proof) in (start..end).zip(proofs) {
            let at = ((index - start) * bs) as usize;
            let len = record.dataset_size.saturating_sub(index * bs).min(bs) as usize;
            out.push((index, run.slice(at..at + len), proof));
        }
        Ok(out)
    }

    /// Deletes a dataset (by tree CID) or a manifest (by manifest CID; its data goes too unless
    /// another manifest still names it). Returns whether anything was removed.
    pub fn delete(&self, cid: &ContentId) -> Result<bool, StoreError> {
        let (mut removed, freed) = self.meta.write(|tx| {
            let mut removed = false;
            let mut doomed_tree: Option<Vec<u8>> = None;
            {
                let mut manifests = tx.open_table(MANIFESTS)?;
                let tree = match cid.kind() {
                    ContentKind::Tree => Some(cid.to_bytes()),
                    ContentKind::Manifest => {
                        let old = manifests.remove(cid.to_bytes().as_slice())?;
                        removed |= old.is_some();
                        old.and_then(|v| Manifest::decode_checked(v.value()).ok()).map(|m| m.tree_cid)
                    }
                };
                if let Some(t) = tree {
                    let mut naming = Vec::new();
                    for row in manifests.iter()? {
                        let (k, v) = row?;
                        // A protected manifest lives on from its slots; only plain ones go with the data.
                        if Manifest::decode_checked(v.value()).is_ok_and(|m| m.tree_cid == t && !m.is_protected()) {
                            naming.push(k.value().to_vec());
                        }
                    }
                    if cid.kind() == ContentKind::Tree {
                        for k in naming {
                            manifests.remove(k.as_slice())?;
                            removed = true;
                        }
                        doomed_tree = Some(t);
                    } else if naming.is_empty() {
                        doomed_tree = Some(t);
                    }
                }
            }
            let mut freed = None;
            if let Some(t) = doomed_tree
                && let Some(v) = tx.open_table(DATASETS)?.remove(t.as_slice())?
            {
                freed = Some((DatasetRecord::decode(v.value())?, t));
            }
            Ok((removed, freed))
        })?;
        if let Some((record, t)) = freed {
            removed = true;
            let tree_cid = ContentId::from_bytes(&t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            for path in [self.data_path(&tree_cid), self.tree_path(&tree_cid)] {
                if let Err(e) = fs::remove_file(&path) {
                    warn!(target: LOG, path = %path.display(), error = %e, "could not remove dataset file");
                }
            }
            self.release(record.disk_bytes());
            info!(target: LOG, tree = %tree_cid, "dataset deleted");
        }
        Ok(removed)
    }

    /// Space used, for `GET /space`.
    pub fn space(&self) -> Result<SpaceSummary, StoreError> {
        let total_blocks = self.datasets()?.iter().map(|(_, r)| r.block_count()).sum();
        Ok(SpaceSummary {
            total_blocks,
            quota_max_bytes: self.quota,
            quota_used_bytes: self.used.load(Ordering::Relaxed),
            quota_reserved_bytes: 0,
        })
    }
}

/// Bytes in the files of a directory and its subdirectories (the slots of protected datasets).
pub(crate) fn dir_bytes(dir: &Path) -> Result<u64, StoreError> {
    if !dir.exists() {
        return Ok(0);
    }
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
