//! The JSON shapes of the marketplace endpoints (the reference OpenAPI document's `Purchase`,
//! `StorageRequest`, `StorageAsk`, `SalesAvailability`, `Slot`, `SlotAgent`, `Reservation`),
//! which are also what the node persists.

use serde::{Deserialize, Serialize};

/// `StorageAsk`: what a request asks for. Amounts are decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageAsk {
    /// Slots (hosts) the content is spread over.
    pub slots: u64,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Seconds the content is kept.
    pub duration: u64,
    /// A proof is required once per this many periods on average (decimal string).
    pub proof_probability: String,
    /// Tokens per byte per second per slot (decimal string).
    pub price_per_byte_per_second: String,
    /// Collateral per byte a host puts up (decimal string).
    pub collateral_per_byte: String,
    /// Slots that may be lost at once without the data being lost.
    pub max_slot_loss: u64,
    /// Lost slots that accumulate before repair opens for all of them.
    pub repair_threshold: u64,
}

/// `Content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Content)]
pub struct StorageContent {
    /// The protected dataset's manifest CID.
    pub cid: String,
    /// The dataset root the proofs are checked against (0x hex).
    pub merkle_root: String,
}

/// `StorageRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageRequest {
    /// Request id (0x hex).
    pub id: String,
    /// The client's address.
    pub client: String,
    /// What is asked.
    pub ask: StorageAsk,
    /// What is stored.
    pub content: StorageContent,
    /// Seconds after the request within which all slots must be filled.
    pub expiry: u64,
    /// Random data (0x hex).
    pub nonce: String,
}

/// `Purchase`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    /// `submitted`, `started`, `finished`, `cancelled`, `failed` or `errored`.
    #[schema(schema_with = crate::api::schema::purchase_state)]
    pub state: String,
    /// Why it errored or failed.
    pub error: Option<String>,
    /// The request.
    pub request: Option<StorageRequest>,
    /// Request id (0x hex).
    pub request_id: String,
    /// Tokens returned to the client when the request ended (decimal string), once withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<String>,
    /// For a request by target: the code chosen and the loss probability predicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub durability: Option<DurabilityChoice>,
}

/// `StorageRequestCreation`: the body of `POST /storage/request/{cid}`. The code is given
/// either explicitly (`nodes`, `tolerance`, `repairThreshold`, as the reference has it) or by a
/// loss target (`durability`), never both.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageRequestCreation {
    /// Seconds the content is kept.
    pub duration: u64,
    /// Tokens per byte per second per slot (decimal string).
    pub price_per_byte_per_second: String,
    /// One proof per this many periods on average (decimal string, ≥ 1).
    pub proof_probability: String,
    /// Collateral per byte asked from hosts (decimal string).
    pub collateral_per_byte: String,
    /// Seconds from submission within which every slot must be filled (< duration).
    pub expiry: u64,
    /// Slots the dataset is spread over (K + M); 3 unless given.
    #[schema(nullable = false, default = 3)]
    pub nodes: Option<u64>,
    /// Slots that may be lost (M); 1 unless given.
    #[schema(nullable = false, default = 1)]
    pub tolerance: Option<u64>,
    /// Lost slots that accumulate before repair opens (1 ≤ threshold ≤ tolerance); 1 unless given.
    #[schema(nullable = false, default = 1)]
    pub repair_threshold: Option<u64>,
    /// Instead of `nodes`, `tolerance` and `repairThreshold`: the largest acceptable probability
    /// of losing the dataset within a year, in (0, 1), e.g. 1e-9. The node picks the fewest
    /// slots, then the laziest repair, that its durability model says meet it.
    #[schema(nullable = false)]
    pub durability: Option<f64>,
    /// With `durability`: the most slots the node may choose (at most what the proof
    /// addresses), e.g. the number of hosts known to be offering storage.
    #[schema(nullable = false)]
    pub max_nodes: Option<u64>,
}

/// The erasure code and repair threshold of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// K + M.
    pub nodes: u64,
    /// M.
    pub tolerance: u64,
    /// Lost slots before repair opens.
    pub repair_threshold: u64,
}

impl StorageRequestCreation {
    /// The explicit code, with the reference's defaults for what is not given.
    pub fn explicit_code(&self) -> Code {
        Code {
            nodes: self.nodes.unwrap_or(3),
            tolerance: self.tolerance.unwrap_or(1),
            repair_threshold: self.repair_threshold.unwrap_or(1),
        }
    }
}

/// What a request by target chose and why: the code, the model's prediction and what it
/// assumed. Answered with the request id and kept in the purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DurabilityChoice {
    /// The loss probability per year asked for.
    pub target: f64,
    /// The model's loss probability per year for the chosen code (an upper bound: detection is
    /// modelled no faster than `detectionHours`).
    pub predicted_loss: f64,
    /// Slots chosen (K + M).
    pub nodes: u64,
    /// Parity slots chosen (M).
    pub tolerance: u64,
    /// Lost slots that accumulate before repair opens.
    pub repair_threshold: u64,
    /// Assumed mean time to failure of a host, hours.
    pub mttf_hours: f64,
    /// Assumed mean time to repair a dataset once repair opens, hours.
    pub mttr_hours: f64,
    /// Mean time between required proofs of a slot (period × proofProbability), hours.
    pub proof_interval_hours: f64,
    /// Consecutive missed proofs after which the marketplace frees a slot.
    pub max_missed_proofs: u64,
    /// Mean delay from a slot's loss to its detection as the model used it, hours.
    pub detection_hours: f64,
}

/// The answer to a storage request by target: the request id and what was chosen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageRequestByTarget {
    /// Request id (0x hex).
    pub request_id: String,
    /// What was chosen.
    pub durability: DurabilityChoice,
}

/// `SalesAvailability`: storage offered for sale (body of POST and PATCH; all fields optional in
/// a PATCH).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SalesAvailability)]
pub struct AvailabilityInput {
    /// Bytes offered.
    pub total_size: Option<u64>,
    /// Longest request duration accepted (seconds).
    pub duration: Option<u64>,
    /// Lowest price accepted per byte per second (decimal string).
    pub min_price_per_byte_per_second: Option<String>,
    /// Collateral this availability may put up in total (decimal string).
    pub total_collateral: Option<String>,
    /// Whether new sales may use it.
    pub enabled: Option<bool>,
    /// Latest end of a hosted request (unix seconds, 0: no limit).
    pub until: Option<u64>,
}

/// `SalesAvailabilityREAD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SalesAvailabilityREAD)]
pub struct Availability {
    /// Id (0x hex).
    pub id: String,
    /// Bytes offered.
    pub total_size: u64,
    /// Bytes not taken by sales.
    pub free_size: u64,
    /// Longest request duration accepted (seconds).
    pub duration: u64,
    /// Lowest price accepted per byte per second (decimal string).
    pub min_price_per_byte_per_second: String,
    /// Collateral it may put up in total (decimal string).
    pub total_collateral: String,
    /// Collateral not taken by sales (decimal string).
    pub total_remaining_collateral: String,
    /// Whether new sales may use it (always given; optional in the reference's document).
    #[schema(required = false)]
    pub enabled: bool,
    /// Latest end of a hosted request (unix seconds, 0: no limit; always given, optional in the
    /// reference's document).
    #[schema(required = false)]
    pub until: u64,
}

/// `Slot`: a slot this node hosts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Slot)]
pub struct SlotInfo {
    /// Slot id (0x hex).
    pub id: String,
    /// Its request.
    pub request: StorageRequest,
    /// Its index.
    pub slot_index: u64,
}

/// `SlotAgent`: a sale and its state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotAgent {
    /// Its index.
    pub slot_index: u64,
    /// Request id (0x hex).
    pub request_id: String,
    /// The request (always given; optional in the reference's document).
    #[schema(required = false)]
    pub request: StorageRequest,
    /// `SaleReserving` (`SalePreparing` in the API), `SaleDownloading`, `SaleFilling`,
    /// `SaleProving`, `SalePayout`, `SaleFinished`, `SaleFailed`, `SaleCancelled`, `SaleErrored`.
    #[schema(schema_with = crate::api::schema::sale_state)]
    pub state: String,
    /// Accepted periodic proofs so far.
    pub proofs_submitted: u64,
    /// Why it failed or errored.
    pub error: Option<String>,
}

/// `Reservation`: a slot's worth of an availability (its size and collateral) held by a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// Id (0x hex): the id of the slot it is for (a host holds one reservation per slot).
    pub id: String,
    /// The availability it is drawn from (0x hex).
    pub availability_id: String,
    /// Bytes held: the slot's size.
    pub size: u64,
    /// Request id (0x hex).
    pub request_id: String,
    /// The slot's index.
    pub slot_index: u64,
    /// Unix seconds after which it no longer holds: when the slot's reservation on chain lapses
    /// while the sale has not filled the slot, else when the request ends (or expires, if it has
    /// not started).
    pub valid_until: u64,
}

/// Whether text is an id as the API writes them (0x optional, 64 hex digits).
pub fn is_id(text: &str) -> bool {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}
