//! Test-only fault injection: a redb backend that answers "no space left on device" on demand,
//! and a stand-in for the file system's free space.

use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::backends::FileBackend;
use redb::{BackendError, Database, StorageBackend};
use rustix::io::Errno;

use super::{StoreError, meta};

/// The faults a test has switched on.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Writes, syncs and resizes of `meta.redb` still to fail.
    db_failures: AtomicU64,
    available: Mutex<Option<u64>>,
}

impl Faults {
    /// While on, every write, sync and resize of `meta.redb` fails with ENOSPC (a disk that
    /// stays full; redb cannot even be reopened).
    pub(crate) fn fill_db_disk(&self, on: bool) {
        self.db_failures.store(if on { u64::MAX } else { 0 }, Ordering::SeqCst);
    }

    /// The next write, sync or resize of `meta.redb` fails with ENOSPC, later ones succeed (a
    /// disk that was full for a moment: space freed by the failed transfer itself, say).
    pub(crate) fn fail_next_db_write(&self) {
        self.db_failures.store(1, Ordering::SeqCst);
    }

    /// Makes the store see `bytes` free on its file system (`None`: the real figure).
    pub(crate) fn set_available(&self, bytes: Option<u64>) {
        *self.available.lock().unwrap_or_else(PoisonError::into_inner) = bytes;
    }

    pub(super) fn available(&self) -> Option<u64> {
        *self.available.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self) -> io::Result<()> {
        match self.db_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(Errno::NOSPC.into()),
            Err(_) => Ok(()),
        }
    }
}

/// Opens `meta.redb` on a backend that obeys `faults`.
pub(super) fn opener(faults: Arc<Faults>) -> meta::Opener {
    Box::new(move |path: &Path| -> Result<Database, StoreError> {
        let inner = FileBackend::new(meta::db_file(path)?)?;
        Ok(Database::builder().create_with_backend(FaultyBackend { inner, faults: Arc::clone(&faults) })?)
    })
}

#[derive(Debug)]
struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<Faults>,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.faults.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.faults.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.faults.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
