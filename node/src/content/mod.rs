//! Content addressing: CIDs, manifests and the content Merkle tree over a dataset's blocks.
//!
//! Everything here is pure computation over bytes; nothing in this module touches the disk or
//! the network.

pub mod cid;
pub mod encryption;
pub mod manifest;
pub mod tree;

pub use self::cid::{CidError, ContentId, ContentKind};
pub use self::manifest::{DEFAULT_BLOCK_SIZE, Manifest, ManifestError};
pub use self::tree::{BlockProof, Hash, MerkleTree, TreeError, leaf_hash};
