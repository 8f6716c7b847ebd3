//! The dataset manifest, in protobuf, with the fields of the erasure-coding spec.
//!
//! A manifest names a dataset's content tree and says how to read it (block size, dataset size).
//! The erasure and verification parts are filled in once a dataset is protected; the optional
//! filename and mimetype come from the upload's headers. The manifest's CID is the SHA-256 of
//! its encoding, so a manifest received from a peer is checked simply by re-hashing it.

use prost::Message;

use super::cid::{BLAKE3, CidError, ContentId, ContentKind, MANIFEST_CODEC};

/// The default block size: the unit of storage, transfer and proof in the content tree.
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;
/// The largest block size a manifest may declare.
pub const MAX_BLOCK_SIZE: u32 = 1024 * 1024;
/// The largest manifest accepted from a peer or the disk.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Why bytes are not a usable manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not protobuf of the manifest's shape.
    #[error("manifest does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Decodes, but its fields are inconsistent.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// Its tree CID is malformed.
    #[error("invalid tree CID in manifest: {0}")]
    TreeCid(#[from] CidError),
}

/// Verification information of a protected dataset (filled in by the slot layer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VerificationInfo {
    /// Root of the dataset tree over the slot roots.
    #[prost(bytes = "vec", tag = "1")]
    pub verify_root: Vec<u8>,
    /// Each slot's root.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub slot_roots: Vec<Vec<u8>>,
    /// Size of a proof cell in bytes.
    #[prost(uint32, tag = "3")]
    pub cell_size: u32,
    /// How cells are laid out in slots.
    #[prost(string, tag = "4")]
    pub verifiable_strategy: String,
    /// Manifest CIDs of the slots published as datasets of their own (cells back to back), so
    /// that hosts fetch them over block exchange; empty until the slots are published.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub slot_cids: Vec<Vec<u8>>,
}

/// Erasure-coding information of a protected dataset.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErasureInfo {
    /// Data slots (K).
    #[prost(uint32, tag = "1")]
    pub ec_k: u32,
    /// Parity slots (M).
    #[prost(uint32, tag = "2")]
    pub ec_m: u32,
    /// Tree CID of the unprotected dataset.
    #[prost(bytes = "vec", tag = "3")]
    pub original_tree_cid: Vec<u8>,
    /// Size of the unprotected dataset in bytes.
    #[prost(uint64, tag = "4")]
    pub original_dataset_size: u64,
    /// Layout strategy of the coded cells.
    #[prost(string, tag = "5")]
    pub protected_strategy: String,
    /// Slot roots and cell size.
    #[prost(message, optional, tag = "6")]
    pub verification: Option<VerificationInfo>,
    /// Rows (cells) per slot when the slots are padded beyond the data's rows (0: not padded).
    #[prost(uint64, tag = "7")]
    pub slot_rows: u64,
}

/// How an encrypted dataset was sealed (see [`super::encryption`]): the dataset's blocks are
/// ciphertext, and the plaintext needs the key kept by whoever uploaded it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptionInfo {
    /// The scheme, e.g. `aes256gcm-stream-v1`.
    #[prost(string, tag = "1")]
    pub scheme: String,
    /// Size of the plaintext in bytes.
    #[prost(uint64, tag = "2")]
    pub plaintext_size: u64,
    /// 16 bytes derived from the key, to tell a wrong key from damaged data.
    #[prost(bytes = "vec", tag = "3")]
    pub key_check: Vec<u8>,
}

/// A dataset manifest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Manifest {
    /// CID of the content tree's root.
    #[prost(bytes = "vec", tag = "1")]
    pub tree_cid: Vec<u8>,
    /// Size of every block but the last, in bytes.
    #[prost(uint32, tag = "2")]
    pub block_size: u32,
    /// Size of the dataset in bytes.
    #[prost(uint64, tag = "3")]
    pub dataset_size: u64,
    /// Multicodec of the dataset's manifest.
    #[prost(uint64, tag = "4")]
    pub codec: u64,
    /// Multihash code of the content tree.
    #[prost(uint64, tag = "5")]
    pub hcodec: u64,
    /// CID version.
    #[prost(uint32, tag = "6")]
    pub version: u32,
    /// Present once the dataset is erasure-coded.
    #[prost(message, optional, tag = "7")]
    pub erasure: Option<ErasureInfo>,
    /// Original file name, if the upload gave one.
    #[prost(string, optional, tag = "8")]
    pub filename: Option<String>,
    /// Original media type, if the upload gave one.
    #[prost(string, optional, tag = "9")]
    pub mimetype: Option<String>,
    /// Present when the dataset's blocks are ciphertext; absent (and not encoded) otherwise.
    #[prost(message, optional, tag = "10")]
    pub encryption: Option<EncryptionInfo>,
}

impl Manifest {
    /// A manifest for an unprotected dataset.
    pub fn new(tree: ContentId, block_size: u32, dataset_size: u64) -> Self {
        Self {
            tree_cid: tree.to_bytes(),
            block_size,
            dataset_size,
            codec: MANIFEST_CODEC,
            hcodec: BLAKE3,
            version: 1,
            erasure: None,
            filename: None,
            mimetype: None,
            encryption: None,
        }
    }

    /// Decodes and checks a manifest.
    pub fn decode_checked(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Invalid(format!("{} bytes is too large", bytes.len())));
        }
        let m = Self::decode(bytes)?;
        let tree = ContentId::from_bytes(&m.tree_cid)?;
        if tree.kind() != ContentKind::Tree {
            return Err(ManifestError::Invalid("tree CID does not name a tree".into()));
        }
        if m.block_size == 0 || m.block_size > MAX_BLOCK_SIZE {
            return Err(ManifestError::Invalid(format!("block size {}", m.block_size)));
        }
        if m.filename.as_ref().is_some_and(|f| f.len() > 1024) || m.mimetype.as_ref().is_some_and(|f| f.len() > 256) {
            return Err(ManifestError::Invalid("filename or mimetype too long".into()));
        }
        if let Some(e) = &m.encryption {
            let size = super::encryption::plaintext_size(m.dataset_size, m.block_size);
            if e.scheme.len() > 64 || e.key_check.len() != 16 || size != Some(e.plaintext_size) {
                return Err(ManifestError::Invalid(format!(
                    "encryption record does not fit the dataset ({} bytes in {}-byte blocks)",
                    m.dataset_size, m.block_size
                )));
            }
        }
        Ok(m)
    }

    /// The protobuf encoding, whose SHA-256 is the manifest's CID.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// The manifest's CID.
    pub fn cid(&self) -> ContentId {
        ContentId::for_manifest(&self.to_bytes())
    }

    /// The content tree's CID (checked by [`Manifest::decode_checked`]).
    pub fn tree(&self) -> Result<ContentId, CidError> {
        ContentId::from_bytes(&self.tree_cid)
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.dataset_size.div_ceil(u64::from(self.block_size.max(1)))
    }

    /// Length of block `index` (the last may be short).
    pub fn block_len(&self, index: u64) -> u64 {
        let bs = u64::from(self.block_size);
        self.dataset_size.saturating_sub(index * bs).min(bs)
    }

    /// Whether the dataset's blocks are ciphertext.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// Whether the dataset is erasure-coded.
    pub fn is_protected(&self) -> bool {
        self.erasure.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_itself() {
        let mut m = Manifest::new(ContentId::for_tree(&[1; 32]), DEFAULT_BLOCK_SIZE, 200_000);
        m.filename = Some("a.png".into());
        let bytes = m.to_bytes();
        let back = Manifest::decode_checked(&bytes).expect("decodes");
        assert_eq!(back, m);
        assert!(m.cid().matches_manifest(&bytes));
        assert_eq!(m.block_count(), 4);
        assert_eq!(m.block_len(3), 200_000 - 3 * 65_536);
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(Manifest::decode_checked(&[0xff, 0xff, 0xff]).is_err());
        let mut m = Manifest::new(ContentId::for_tree(&[1; 32]), 0, 1);
        assert!(Manifest::decode_checked(&m.to_bytes()).is_err());
        m.block_size = DEFAULT_BLOCK_SIZE;
        m.tree_cid = ContentId::for_manifest(b"x").to_bytes();
        assert!(Manifest::decode_checked(&m.to_bytes()).is_err());
        assert!(Manifest::decode_checked(&vec![0u8; MAX_MANIFEST_BYTES + 1]).is_err());
    }

    #[test]
    fn encryption_is_recorded_only_when_there_and_checked() {
        let plain = Manifest::new(ContentId::for_tree(&[1; 32]), DEFAULT_BLOCK_SIZE, 100);
        let mut sealed = plain.clone();
        sealed.dataset_size = 116;
        sealed.encryption =
            Some(EncryptionInfo { scheme: "aes256gcm-stream-v1".into(), plaintext_size: 100, key_check: vec![7; 16] });
        // An unencrypted manifest encodes as before: field 10 is left out, so its CID is
        // unchanged. The encrypted one carries the field (2 bytes) holding the scheme (2 + 19),
        // the plaintext size (2) and the key check (2 + 16).
        assert_eq!(sealed.to_bytes().len() - plain.to_bytes().len(), 2 + 21 + 2 + 18);
        assert_eq!(Manifest::decode_checked(&sealed.to_bytes()).expect("decodes"), sealed);
        for broken in [
            EncryptionInfo { plaintext_size: 99, ..sealed.encryption.clone().expect("set") },
            EncryptionInfo { key_check: vec![7; 15], ..sealed.encryption.clone().expect("set") },
        ] {
            let mut m = sealed.clone();
            m.encryption = Some(broken);
            assert!(Manifest::decode_checked(&m.to_bytes()).is_err());
        }
    }
}
