//! The store's dealings with the file system it lives on: how much room is left, which errors
//! mean "the disk is full", and files and directories that only the node's user may read.
//! Nothing here knows about datasets.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::io::Errno;

/// Mode of every file the store creates.
pub(super) const FILE_MODE: u32 = 0o600;
/// Mode of every directory the store creates.
pub(super) const DIR_MODE: u32 = 0o700;

/// Whether `e` says the file system (or the user's disk quota) is full.
pub(super) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || e.raw_os_error().is_some_and(|c| c == Errno::NOSPC.raw_os_error() || c == Errno::DQUOT.raw_os_error())
}

/// Bytes an unprivileged writer may still put on the file system holding `path`.
pub(super) fn available_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Creates `dir` and its missing parents, and makes `dir` itself private (0700) whatever the
/// umask, also when it existed already.
pub(super) fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Options that create a file readable and writable by its owner only (0600, which no umask
/// widens).
pub(super) fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Creates a new private file for reading and writing; fails if it exists.
pub(super) fn create_private(path: &Path) -> io::Result<File> {
    private_file().read(true).write(true).create_new(true).open(path)
}

/// Removes `path`, treating "already gone" as done.
pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
