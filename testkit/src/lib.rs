//! The kit Vellum's end-to-end scenarios, the devnet and the benchmarks share to run a network
//! on this machine:
//! - [`process`]: `vellum node` and `vellum validator` child processes on loopback with free
//!   ports, and the lines they print that say they are ready;
//! - [`test_node`]: a node driven through its REST API as a user with curl would;
//! - [`chain`]: a local chain with the contracts deployed, funded wallets and their key files,
//!   and the flags that put a node or a validator on it;
//! - [`proxy`]: a TCP proxy that cuts a node off its chain endpoint and restores it;
//! - [`logs`]: reading logs and metrics, and waiting for them to say something;
//! - test data ([`test_bytes`], [`write_test_file`]).
//!
//! The node library does not depend on this crate; the `vellum` binary does (its devnet and
//! `bench transfer` start their processes with it), and so do the scenarios in `tests/`.

pub mod chain;
pub mod logs;
pub mod process;
pub mod proxy;
pub mod test_node;

use std::path::{Path, PathBuf};

pub use self::chain::{MarketNet, PERIOD, SHAPE, anvil_address, write_key_file};
pub use self::logs::{file_contains, wait_for};
pub use self::process::{NodeProcess, ValidatorProcess};
pub use self::proxy::Proxy;
pub use self::test_node::TestNode;

/// The `vellum` binary built beside the running test executable (`target/<profile>/vellum`), or
/// `VELLUM_BIN` when set. Tools that are the binary themselves use `std::env::current_exe`.
pub fn vellum_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VELLUM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/it-<hash> → target/<profile>/vellum
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    profile_dir.join("vellum")
}

/// Deterministic, incompressible test bytes.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` test bytes to `path` in pieces of 1 MiB; returns their BLAKE3 hash.
pub fn write_test_file(path: &Path, len: u64, seed: u64) -> anyhow::Result<blake3::Hash> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let piece = 1 << 20;
    let mut done = 0u64;
    let mut i = 0u64;
    while done < len {
        let n = (len - done).min(piece) as usize;
        let bytes = test_bytes(n, seed.wrapping_add(i));
        f.write_all(&bytes)?;
        hasher.update(&bytes);
        done += n as u64;
        i += 1;
    }
    f.flush()?;
    Ok(hasher.finalize())
}

/// Reads a JSON body or fails with the status and text.
pub async fn json(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// The flags as `&str`s.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Checks that `dir` is 0700 and that every file and directory under it has no group or other
/// permission bits; returns how many entries were checked.
pub fn check_private(dir: &Path) -> anyhow::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    anyhow::ensure!(mode == 0o700, "{} has mode {mode:o}", dir.display());
    let mut seen = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode() & 0o777;
            anyhow::ensure!(mode & 0o077 == 0, "{} has mode {mode:o}", path.display());
            if meta.is_dir() {
                stack.push(path);
            }
            seen += 1;
        }
    }
    Ok(seen)
}
