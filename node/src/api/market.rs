//! Marketplace endpoints (persistence mode): storage requests and purchases for clients,
//! availabilities and slots for hosts. Without persistence mode every one answers 503.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{ApiError, AppState, ErrorBody};
use crate::market::types::{
    Availability, AvailabilityInput, Purchase, Reservation, SlotAgent, SlotInfo, StorageRequestByTarget,
    StorageRequestCreation,
};
use crate::market::{Market, MarketError};

fn market(state: &AppState) -> Result<Arc<Market>, ApiError> {
    state.market.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "persistence is not enabled: start the node with --eth-provider, --eth-private-key-file, --marketplace-address and --prover-key",
        )
    })
}

impl From<MarketError> for ApiError {
    fn from(e: MarketError) -> Self {
        match e {
            MarketError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            MarketError::NotFound(m) => ApiError::not_found(m),
            MarketError::Chain(c) if c.is_unreachable() => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, c.to_string())
            }
            MarketError::Chain(c) => ApiError::new(StatusCode::BAD_GATEWAY, c.to_string()),
            MarketError::Local(m) => ApiError::internal(m),
        }
    }
}

/// Parses a JSON body with a message that names the problem.
fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Create a storage request for a dataset held here: it is erasure-coded into `nodes` slots
/// (`tolerance` of them parity), published, and offered on the marketplace with its payment.
/// Given `durability` (a loss probability per year) instead, the node picks `nodes`,
/// `tolerance` and `repairThreshold` by its durability model.
#[utoipa::path(post, path = "/storage/request/{cid}", tag = "Marketplace", operation_id = "createStorageRequest",
    params(("cid" = String, Path, description = "Manifest CID of a dataset uploaded to this node")),
    request_body = StorageRequestCreation,
    responses((status = 200, description = "The request id (0x hex) as text; for a request by `durability`, JSON with the id, the code chosen and the loss predicted",
               content((String = "text/plain"), (StorageRequestByTarget = "application/json"))),
              (status = 400, description = "Malformed body", body = ErrorBody),
              (status = 404, description = "Dataset not held here", body = ErrorBody),
              (status = 415, description = "The body is not application/json", body = ErrorBody),
              (status = 422, description = "Parameters not valid, or a durability target no code within the bounds meets (the best one is named)", body = ErrorBody),
              (status = 500, description = "Local failure (disk, erasure coding)", body = ErrorBody),
              (status = 502, description = "The chain refused the request", body = ErrorBody),
              (status = 503, description = "Persistence not enabled, or the chain unreachable", body = ErrorBody)))]
pub(super) async fn request_storage(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let market = market(&state)?;
    let body: StorageRequestCreation = json_body(&body)?;
    match market.request_storage(&cid, body).await? {
        (id, None) => Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/plain")], id).into_response()),
        (request_id, Some(durability)) => {
            Ok((StatusCode::OK, Json(StorageRequestByTarget { request_id, durability })).into_response())
        }
    }
}

/// Ids of this node's purchases.
#[utoipa::path(get, path = "/storage/purchases", tag = "Marketplace", operation_id = "getPurchases",
    responses((status = 200, description = "Purchase ids", body = Vec<String>),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn purchases(State(state): State<AppState>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(market(&state)?.purchase_ids()))
}

/// One purchase and its state.
#[utoipa::path(get, path = "/storage/purchases/{id}", tag = "Marketplace", operation_id = "getPurchase",
    params(("id" = String, Path, description = "Purchase (request) id, 0x hex")),
    responses((status = 200, description = "The purchase", body = Purchase),
              (status = 400, description = "Invalid id", body = ErrorBody),
              (status = 404, description = "No such purchase", body = ErrorBody),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn purchase(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Purchase>, ApiError> {
    let market = market(&state)?;
    if crate::market::types::is_id(&id) {
        market.purchase(&id).map(Json).ok_or_else(|| ApiError::not_found(format!("no purchase {id}")))
    } else {
        Err(ApiError::bad_request(format!("invalid purchase id {id:?}: expected 0x and 64 hex digits")))
    }
}

/// Storage this node offers for sale.
#[utoipa::path(get, path = "/sales/availability", tag = "Marketplace", operation_id = "getAvailabilities",
    responses((status = 200, description = "Availabilities", body = Vec<Availability>),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn availabilities(State(state): State<AppState>) -> Result<Json<Vec<Availability>>, ApiError> {
    Ok(Json(market(&state)?.availabilities()))
}

/// Offer storage for sale.
#[utoipa::path(post, path = "/sales/availability", tag = "Marketplace", operation_id = "offerStorage",
    request_body = AvailabilityInput,
    responses((status = 201, description = "Created", body = Availability),
              (status = 400, description = "Malformed body", body = ErrorBody),
              (status = 415, description = "The body is not application/json", body = ErrorBody),
              (status = 422, description = "Not valid, or not enough quota", body = ErrorBody),
              (status = 500, description = "The availability could not be recorded", body = ErrorBody),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn add_availability(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let market = market(&state)?;
    let input: AvailabilityInput = json_body(&body)?;
    let created = market.add_availability(input)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Change an availability.
#[utoipa::path(patch, path = "/sales/availability/{id}", tag = "Marketplace", operation_id = "updateOfferedStorage",
    params(("id" = String, Path, description = "Availability id, 0x hex")),
    request_body = AvailabilityInput,
    responses((status = 204, description = "Updated"),
              (status = 400, description = "Malformed body or id", body = ErrorBody),
              (status = 404, description = "No such availability", body = ErrorBody),
              (status = 415, description = "The body is not application/json", body = ErrorBody),
              (status = 422, description = "Not valid", body = ErrorBody),
              (status = 500, description = "The change could not be recorded", body = ErrorBody),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn update_availability(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let market = market(&state)?;
    if !crate::market::types::is_id(&id) {
        return Err(ApiError::bad_request(format!("invalid availability id {id:?}")));
    }
    let input: AvailabilityInput = json_body(&body)?;
    market.update_availability(&id, input)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Slots this node hosts.
#[utoipa::path(get, path = "/sales/slots", tag = "Marketplace", operation_id = "getActiveSlots",
    responses((status = 200, description = "Active slots", body = Vec<SlotInfo>),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn slots(State(state): State<AppState>) -> Result<Json<Vec<SlotInfo>>, ApiError> {
    Ok(Json(market(&state)?.active_slots()))
}

/// One sale by its slot id.
#[utoipa::path(get, path = "/sales/slots/{slotId}", tag = "Marketplace", operation_id = "getActiveSlotById",
    params(("slotId" = String, Path, description = "Slot id, 0x hex")),
    responses((status = 200, description = "The sale", body = SlotAgent),
              (status = 400, description = "Invalid slot id", body = ErrorBody),
              (status = 404, description = "No sale for this slot", body = ErrorBody),
              (status = 503, description = "Persistence not enabled", body = ErrorBody)))]
pub(super) async fn slot(
    State(state): State<AppState>,
    Path(slot_id): Path<String>,
) -> Result<Json<SlotAgent>, ApiError> {
    let market = market(&state)?;
    if !crate::market::types::is_id(&slot_id) {
        return Err(ApiError::bad_request(format!("invalid slot id {slot_id:?}")));
    }
    let mut agent = market.slot_agent(&slot_id)?;
    // The reference calls the step of a sale that reserves its slot `SalePreparing`.
    if agent.state == "SaleReserving" {
        agent.state = "SalePreparing".into();
    }
    Ok(Json(agent))
}

/// The reservations of an availability: a slot's size held for each sale it serves.
#[utoipa::path(get, path = "/sales/availability/{id}/reservations", tag = "Marketplace",
    operation_id = "getReservations",
    params(("id" = String, Path, description = "Availability id, 0x hex")),
    responses((status = 200, description = "Its reservations", body = Vec<Reservation>),
              (status = 400, description = "Invalid id", body = ErrorBody),
              (status = 404, description = "No such availability", body = ErrorBody),
              (status = 502, description = "The chain answered with an error", body = ErrorBody),
              (status = 503, description = "Persistence not enabled, or the chain unreachable", body = ErrorBody)))]
pub(super) async fn reservations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Reservation>>, ApiError> {
    let market = market(&state)?;
    if !crate::market::types::is_id(&id) {
        return Err(ApiError::bad_request(format!("invalid availability id {id:?}")));
    }
    Ok(Json(market.reservations(&id).await?))
}
