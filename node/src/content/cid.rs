//! Content identifiers: CIDv1 printed in base58btc, as in the whitepaper's tutorial.
//!
//! A manifest is named by the SHA-256 of its protobuf encoding (codec `codex-manifest`); a
//! dataset's content tree by its BLAKE3 Merkle root (codec `codex-root`). Parsing accepts any
//! multibase but only these two codecs, so a malformed or foreign CID is rejected up front.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use cid::multibase::Base;
use multihash::Multihash;
use sha2::{Digest, Sha256};

/// Multicodec of a manifest (`codex-manifest`).
pub const MANIFEST_CODEC: u64 = 0xcd01;
/// Multicodec of a dataset's content-tree root (`codex-root`).
pub const TREE_CODEC: u64 = 0xcd03;
/// Multihash code of SHA2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of BLAKE3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;

/// What a [`ContentId`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    /// A dataset manifest.
    Manifest,
    /// The root of a dataset's content tree.
    Tree,
}

/// Why a string or byte string is not a Vellum CID.
#[derive(Debug, thiserror::Error)]
pub enum CidError {
    /// Not a CID at all.
    #[error("malformed CID: {0}")]
    Malformed(String),
    /// A CID, but of a version, codec or hash Vellum does not use.
    #[error("unsupported CID: {0}")]
    Unsupported(String),
}

/// A validated CIDv1 naming a manifest or a content tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(Cid);

impl ContentId {
    /// The CID of a manifest whose protobuf encoding is `encoded`.
    pub fn for_manifest(encoded: &[u8]) -> Self {
        let digest = Sha256::digest(encoded);
        Self::from_parts(MANIFEST_CODEC, SHA2_256, &digest)
    }

    /// The CID of a content tree with the given BLAKE3 root.
    pub fn for_tree(root: &[u8; 32]) -> Self {
        Self::from_parts(TREE_CODEC, BLAKE3, root)
    }

    fn from_parts(codec: u64, hash_code: u64, digest: &[u8]) -> Self {
        // Both digests are 32 bytes, within the 64-byte multihash capacity.
        let hash = Multihash::<64>::wrap(hash_code, digest).unwrap_or_default();
        Self(Cid::new_v1(codec, hash))
    }

    /// Parses the binary form (as carried in manifests and protocol messages).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidError> {
        let cid = Cid::try_from(bytes).map_err(|e| CidError::Malformed(e.to_string()))?;
        Self::validate(cid)
    }

    fn validate(cid: Cid) -> Result<Self, CidError> {
        if cid.version() != cid::Version::V1 {
            return Err(CidError::Unsupported("only CIDv1 is used".into()));
        }
        let expected_hash = match cid.codec() {
            MANIFEST_CODEC => SHA2_256,
            TREE_CODEC => BLAKE3,
            other => return Err(CidError::Unsupported(format!("codec {other:#x}"))),
        };
        if cid.hash().code() != expected_hash || cid.hash().size() != 32 {
            return Err(CidError::Unsupported(format!("hash {:#x} of {} bytes", cid.hash().code(), cid.hash().size())));
        }
        Ok(Self(cid))
    }

    /// What this CID names.
    pub fn kind(&self) -> ContentKind {
        if self.0.codec() == MANIFEST_CODEC { ContentKind::Manifest } else { ContentKind::Tree }
    }

    /// The 32-byte digest (the manifest's SHA-256 or the tree's root).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.hash().digest());
        out
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Whether `encoded` is the manifest this CID names.
    pub fn matches_manifest(&self, encoded: &[u8]) -> bool {
        self.kind() == ContentKind::Manifest && Sha256::digest(encoded).as_slice() == self.0.hash().digest()
    }
}

impl FromStr for ContentId {
    type Err = CidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 256 {
            return Err(CidError::Malformed(format!("length {}", s.len())));
        }
        let cid = Cid::try_from(s).map_err(|e| CidError::Malformed(e.to_string()))?;
        Self::validate(cid)
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.to_string_of_base(Base::Base58Btc) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_cid_round_trips_in_base58btc() {
        let cid = ContentId::for_manifest(b"hello");
        let text = cid.to_string();
        assert!(text.starts_with('z'), "base58btc text starts with z: {text}");
        let parsed: ContentId = text.parse().expect("parses");
        assert_eq!(parsed, cid);
        assert_eq!(parsed.kind(), ContentKind::Manifest);
        assert!(parsed.matches_manifest(b"hello"));
        assert!(!parsed.matches_manifest(b"hellO"));
        assert_eq!(ContentId::from_bytes(&cid.to_bytes()).expect("binary"), cid);
    }

    #[test]
    fn tree_cid_keeps_its_root() {
        let root = [7u8; 32];
        let cid = ContentId::for_tree(&root);
        assert_eq!(cid.kind(), ContentKind::Tree);
        assert_eq!(cid.digest(), root);
    }

    #[test]
    fn rejects_garbage_and_foreign_cids() {
        for bad in ["", "not-a-cid", "zzzzzz", "z", &"z".repeat(300)] {
            assert!(matches!(bad.parse::<ContentId>(), Err(CidError::Malformed(_))), "{bad}");
        }
        // A valid CIDv0 (IPFS), well formed but not ours.
        let v0 = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
        assert!(matches!(v0.parse::<ContentId>(), Err(CidError::Unsupported(_))));
        // A CIDv1 with the raw codec.
        let raw = Cid::new_v1(0x55, Multihash::<64>::wrap(SHA2_256, &[1u8; 32]).expect("mh"));
        let text = raw.to_string_of_base(Base::Base58Btc).expect("encode");
        assert!(matches!(text.parse::<ContentId>(), Err(CidError::Unsupported(_))));
    }
}
