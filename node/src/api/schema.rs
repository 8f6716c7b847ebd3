//! The JSON shapes of the REST API, with the reference implementation's field names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::content::{ContentId, Manifest};

/// `GET /info`: who this node is and how to reach it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Peer id.
    pub id: String,
    /// Addresses the node listens on.
    pub addrs: Vec<String>,
    /// The data directory.
    pub repo: String,
    /// Signed peer record, `spr:…`.
    pub spr: String,
}

/// A manifest as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestItem {
    /// CID of the content tree.
    pub tree_cid: String,
    /// Bytes in the dataset.
    pub dataset_size: u64,
    /// Block size.
    pub block_size: u32,
    /// Whether the dataset is erasure-coded.
    pub protected: bool,
    /// Original file name.
    pub filename: Option<String>,
    /// Original media type.
    pub mimetype: Option<String>,
    /// Manifest CIDs of the published slots of a protected dataset (Vellum extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slot_cids: Vec<String>,
    /// How an encrypted dataset was sealed (Vellum extension; absent for plain datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub encryption: Option<EncryptionItem>,
}

/// The encryption record of a dataset's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionItem {
    /// The scheme, e.g. `aes256gcm-stream-v1`.
    pub scheme: String,
    /// Bytes of plaintext (`datasetSize` counts the ciphertext).
    pub plaintext_size: u64,
}

impl ManifestItem {
    /// The API view of a manifest.
    pub fn from_manifest(m: &Manifest) -> Self {
        Self {
            tree_cid: m.tree().map(|t| t.to_string()).unwrap_or_default(),
            dataset_size: m.dataset_size,
            block_size: m.block_size,
            protected: m.is_protected(),
            filename: m.filename.clone(),
            mimetype: m.mimetype.clone(),
            slot_cids: m
                .erasure
                .as_ref()
                .and_then(|e| e.verification.as_ref())
                .map(|v| {
                    v.slot_cids.iter().filter_map(|c| ContentId::from_bytes(c).ok()).map(|c| c.to_string()).collect()
                })
                .unwrap_or_default(),
            encryption: m
                .encryption
                .as_ref()
                .map(|e| EncryptionItem { scheme: e.scheme.clone(), plaintext_size: e.plaintext_size }),
        }
    }
}

/// A dataset and its manifest.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DataItem {
    /// Manifest CID.
    pub cid: String,
    /// The manifest.
    pub manifest: ManifestItem,
}

impl DataItem {
    /// The API view of a stored dataset.
    pub fn new(cid: &ContentId, m: &Manifest) -> Self {
        Self { cid: cid.to_string(), manifest: ManifestItem::from_manifest(m) }
    }
}

/// `GET /data`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DataList {
    /// Datasets held completely by this node.
    pub content: Vec<DataItem>,
}

/// `GET /data/{cid}/exists` (inline in the document, as in the reference's).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Exists {
    /// Whether the node holds it (always given; optional in the reference's document).
    #[schema(required = false)]
    pub has: bool,
}

/// `GET /space`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    /// Blocks stored.
    pub total_blocks: u64,
    /// The quota in bytes.
    pub quota_max_bytes: u64,
    /// Bytes in use.
    pub quota_used_bytes: u64,
    /// Bytes reserved for storage contracts.
    pub quota_reserved_bytes: u64,
}

/// `GET /spr` as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = SPRRead)]
pub struct SprRead {
    /// The SPR.
    pub spr: String,
}

/// `GET /peerid` as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeerIdRead {
    /// The peer id (always given; optional in the reference's document, and so in this one).
    #[schema(required = false)]
    pub id: String,
}

/// A routing-table entry in `/debug/info` (the reference's `Node`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Node)]
pub struct TableNode {
    /// DHT node id (the peer id here).
    pub node_id: String,
    /// Peer id.
    pub peer_id: String,
    /// A record of the node (its first address).
    pub record: String,
    /// Its address.
    pub address: String,
    /// Whether it is connected now.
    pub seen: bool,
}

/// The routing table in `/debug/info`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeersTable {
    /// This node.
    pub local_node: TableNode,
    /// Known peers.
    pub nodes: Vec<TableNode>,
}

/// Version information (the reference's `CodexVersion`; both fields are always given, and
/// optional in the reference's document).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CodexVersion)]
pub struct Version {
    /// Vellum's version.
    #[schema(required = false)]
    pub version: String,
    /// Source revision, if known at build time.
    #[schema(required = false)]
    pub revision: String,
}

/// Block-exchange counters (a Vellum extension of `/debug/info`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeStats {
    /// Blocks sent to peers.
    pub blocks_served: u64,
    /// Verified blocks received.
    pub blocks_fetched: u64,
    /// Blocks refused because their proof failed.
    pub blocks_rejected: u64,
}

/// `GET /debug/info`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DebugInfo {
    /// Peer id.
    pub id: String,
    /// Listen addresses.
    pub addrs: Vec<String>,
    /// Data directory.
    pub repo: String,
    /// Signed peer record.
    pub spr: String,
    /// Addresses announced to others.
    pub announce_addresses: Vec<String>,
    /// The DHT routing table.
    pub table: PeersTable,
    /// Version (the reference calls this field `codex`).
    pub codex: Version,
    /// Block-exchange counters.
    pub exchange: ExchangeStats,
}

/// A file's bytes in a request or response body, as the reference documents them:
/// `type: string, format: binary` (used inline, as `inline(Binary)`).
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// The state of a purchase, as `Purchase.state` is documented: the reference's values (Vellum
/// answers `submitted`, `started`, `finished`, `cancelled`, `failed`, `errored` or `unknown`).
pub fn purchase_state() -> utoipa::openapi::Object {
    state_enum(
        "Description of the Request's state",
        &["cancelled", "errored", "failed", "finished", "pending", "started", "submitted", "unknown"],
    )
}

/// The state of a sale, as `SlotAgent.state` is documented: the reference's values (Vellum
/// answers `SalePreparing` while it reserves the slot, then `SaleDownloading`, `SaleFilling`,
/// `SaleProving`, `SalePayout`, and at the end `SaleFinished`, `SaleCancelled`, `SaleFailed` or
/// `SaleErrored`).
pub fn sale_state() -> utoipa::openapi::Object {
    state_enum(
        "Description of the slot's state",
        &[
            "SaleCancelled",
            "SaleDownloading",
            "SaleErrored",
            "SaleFailed",
            "SaleFilled",
            "SaleFilling",
            "SaleFinished",
            "SaleIgnored",
            "SaleInitialProving",
            "SalePayout",
            "SalePreparing",
            "SaleProving",
            "SaleUnknown",
        ],
    )
}

fn state_enum(description: &str, values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .build()
}
