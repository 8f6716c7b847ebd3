//! The handle on `meta.redb` that outlives an I/O error.
//!
//! redb latches the first I/O error it meets (a full disk during a commit, say): from then on
//! every write transaction, and every read that misses its cache, answers "previous I/O error"
//! until the database is opened again. [`MetaDb`] runs each transaction under the read side of a
//! lock; when one fails and the database turns out to be in that state, it takes the write side
//! (so no transaction is in flight), drops the handle and opens the file again, which replays
//! redb's crash recovery. When that fails too (the disk is still full), the next transaction
//! tries again. This module decides nothing about what is stored.

use std::fs::{File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use redb::backends::FileBackend;
use redb::{Database, ReadTransaction, ReadableDatabase, StorageError, TransactionError, WriteTransaction};
use tracing::warn;

use super::{LOG, StoreError, disk};

/// Opens the database file; a test swaps in a backend that fails on demand.
pub(super) type Opener = Box<dyn Fn(&Path) -> Result<Database, StoreError> + Send + Sync>;

/// Opens (or creates) the database file, private to the node's user.
pub(super) fn open_file(path: &Path) -> Result<Database, StoreError> {
    let file = db_file(path)?;
    Ok(Database::builder().create_with_backend(FileBackend::new(file)?)?)
}

/// The database file, created 0600 and made so if it existed with a wider mode.
pub(super) fn db_file(path: &Path) -> Result<File, StoreError> {
    let file = disk::private_file().read(true).write(true).create(true).truncate(false).open(path)?;
    file.set_permissions(Permissions::from_mode(disk::FILE_MODE))?;
    Ok(file)
}

struct State {
    /// `None` after a reopen failed.
    db: Option<Database>,
    /// Counts reopens, so that threads which saw the same failure reopen once.
    generation: u64,
}

/// The metadata database, reopened after an I/O error.
pub(super) struct MetaDb {
    path: PathBuf,
    opener: Opener,
    state: RwLock<State>,
}

impl MetaDb {
    pub(super) fn open(path: PathBuf, opener: Opener) -> Result<Self, StoreError> {
        let db = opener(&path)?;
        Ok(Self { path, opener, state: RwLock::new(State { db: Some(db), generation: 0 }) })
    }

    /// Runs `f` in a read transaction.
    pub(super) fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_db(|db| f(&db.begin_read()?))
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds.
    pub(super) fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let (result, poisoned_at) = {
            let state = self.ready()?;
            let Some(db) = state.db.as_ref() else {
                return Err(StoreError::Db("metadata database unavailable".into()));
            };
            let result = f(db);
            let poisoned = result.is_err() && is_poisoned(db);
            (result, poisoned.then_some(state.generation))
        };
        // Every transaction of the failed handle has ended by now: each runs under the read
        // lock, and `reopen` takes the write lock.
        if let Some(generation) = poisoned_at {
            let _ = self.reopen(generation);
        }
        result
    }

    /// The read side of the lock, with a database in it (reopening it first if a reopen failed).
    fn ready(&self) -> Result<RwLockReadGuard<'_, State>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if state.db.is_some() {
            return Ok(state);
        }
        let generation = state.generation;
        drop(state);
        self.reopen(generation)?;
        Ok(self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Drops the handle and opens the file again, unless another thread did since `seen`.
    fn reopen(&self, seen: u64) -> Result<(), StoreError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.generation != seen {
            return Ok(());
        }
        state.generation += 1;
        // Closing a handle with a latched error writes nothing; the next open recovers the file.
        drop(state.db.take());
        match (self.opener)(&self.path) {
            Ok(db) => {
                state.db = Some(db);
                warn!(target: LOG, path = %self.path.display(), "metadata database reopened after an I/O error");
                Ok(())
            }
            Err(e) => {
                warn!(target: LOG, path = %self.path.display(), error = %e, "metadata database could not be reopened; the next operation tries again");
                Err(e)
            }
        }
    }
}

/// Whether `db` latched an I/O error and must be reopened. Never waits: a write transaction of
/// another thread makes the probe say no, and that thread's own failure reopens.
fn is_poisoned(db: &Database) -> bool {
    match db.try_begin_write() {
        Ok(tx) => {
            let _ = tx.abort();
            false
        }
        Err(TransactionError::Storage(StorageError::PreviousIo | StorageError::Io(_))) => true,
        Err(_) => false,
    }
}
