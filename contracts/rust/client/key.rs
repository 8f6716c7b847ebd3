//! The node's Ethereum key: read from a file only the node's user may read, never logged.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;

use alloy::signers::local::PrivateKeySigner;

use super::ChainError;

/// Reads a hex private key (with or without `0x`, surrounding whitespace ignored). Refuses a
/// file that its group or others may read or write: the key controls the node's funds.
pub fn read_key_file(path: &Path) -> Result<PrivateKeySigner, ChainError> {
    let err = |reason: String| ChainError::Key { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(format!("its permissions {mode:03o} let others read it; run `chmod 600` on it")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("expected 32 bytes as 64 hex digits".into()));
    }
    // The parser's own error text could quote its input: it is not passed on.
    PrivateKeySigner::from_str(hex).map_err(|_| err("not a valid secp256k1 private key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("key");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn reads_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = read_key_file(&write(dir.path(), &format!("{KEY}\n"), 0o600)).expect("key");
        let again = read_key_file(&write(dir.path(), KEY.trim_start_matches("0x"), 0o400)).expect("key");
        assert_eq!(signer.address(), again.address());
    }

    #[test]
    fn refuses_keys_others_can_read_and_never_echoes_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = read_key_file(&write(dir.path(), KEY, 0o644)).expect_err("world-readable");
        let text = e.to_string();
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains(&KEY[2..20]), "the key leaked into an error: {text}");
        for bad in ["0x1234", "zz", &KEY.replace('5', "g")] {
            let e = read_key_file(&write(dir.path(), bad, 0o600)).expect_err("malformed");
            assert!(!e.to_string().contains(&KEY[2..20]), "{e}");
        }
        assert!(read_key_file(&dir.path().join("missing")).is_err());
    }
}
