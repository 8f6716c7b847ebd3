//! What the marketplace side of a node remembers across restarts: purchases, availabilities and
//! sales, one small JSON file each under `<data dir>/market/`, written to a temporary file,
//! synced and renamed into place, so a crash leaves the old version or the new one, never half.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

const LOG: &str = "vellum::market";

/// A directory of JSON records keyed by a file-safe name.
#[derive(Debug, Clone)]
pub(crate) struct RecordDir {
    dir: PathBuf,
}

impl RecordDir {
    /// Opens (creating) `dir`, and removes temporary files a crash left behind.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Writes a record durably.
    pub(crate) fn save<T: Serialize>(&self, key: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!("{key}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, self.path(key))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes a record durably (absent already is fine).
    pub(super) fn remove(&self, key: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => fs::File::open(&self.dir)?.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every readable record; unreadable ones are reported and skipped.
    pub(super) fn load_all<T: DeserializeOwned>(&self) -> std::io::Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path)
                .map_err(std::io::Error::other)
                .and_then(|b| serde_json::from_slice::<T>(&b).map_err(std::io::Error::other))
            {
                Ok(v) => out.push(v),
                Err(e) => warn!(target: LOG, path = %path.display(), error = %e, "skipping unreadable record"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_junk_is_skipped() {
        let dir = tempfile::tempdir().expect("tmp");
        let records = RecordDir::open(dir.path()).expect("open");
        records.save("a", &vec![1u32, 2]).expect("save");
        records.save("b", &vec![3u32]).expect("save");
        records.save("a", &vec![4u32]).expect("overwrite");
        std::fs::write(dir.path().join("junk.json"), b"{not json").expect("junk");
        std::fs::write(dir.path().join("c.tmp"), b"half").expect("tmp");
        let again = RecordDir::open(dir.path()).expect("reopen");
        assert!(!dir.path().join("c.tmp").exists());
        let mut all: Vec<Vec<u32>> = again.load_all().expect("all");
        all.sort();
        assert_eq!(all, vec![vec![3], vec![4]]);
    }
}
