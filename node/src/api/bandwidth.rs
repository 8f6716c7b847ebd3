//! Paid bandwidth endpoints (Vellum extension): what the node served and was paid, what it
//! paid, and closing and reclaiming its channels. Without paid bandwidth each answers 503.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody};
use crate::bandwidth::{Bandwidth, Payments};

fn bandwidth(state: &AppState) -> Result<&Bandwidth, ApiError> {
    state.bandwidth.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "paid bandwidth is not enabled: start the node with --eth-provider, --eth-private-key-file, \
             --deployment (or --bandwidth-channels-address) and --bandwidth-price or --max-price",
        )
    })
}

fn payments(state: &AppState) -> Result<Arc<Payments>, ApiError> {
    bandwidth(state)?.payments.clone().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "this node pays for no bandwidth (start it with --max-price)")
    })
}

/// `GET /bandwidth`: paid bandwidth on this node. Token amounts are decimal strings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthReport {
    /// The bandwidth channels contract.
    pub contract: String,
    /// This node's wallet.
    pub wallet: String,
    /// What it serves for pay, if it charges.
    pub serving: Option<ServingReport>,
    /// What it pays, if it does.
    pub paying: Option<PayingReport>,
}

/// A provider's account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingReport {
    /// Tokens per byte beyond the allowance.
    pub price_per_byte: String,
    /// Bytes served free to each peer.
    pub free_bytes: u64,
    /// Bytes served to peers in all.
    pub bytes_served: u64,
    /// Bytes served beyond peers' allowances (charged for).
    pub bytes_charged: u64,
    /// Tokens held in vouchers (redeemed or not).
    pub tokens_earned: String,
    /// Tokens redeemed on chain.
    pub tokens_redeemed: String,
    /// Vouchers accepted.
    pub vouchers_accepted: u64,
    /// Vouchers refused (forged, on a wrong or closing channel, over the deposit).
    pub vouchers_refused: u64,
    /// Vouchers at or below one already held (ignored).
    pub vouchers_stale: u64,
    /// Requests answered "payment required".
    pub requests_refused: u64,
    /// Channels this node is paid through.
    pub channels: Vec<ServedChannel>,
}

/// A channel a provider is paid through.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedChannel {
    /// Channel id (0x hex).
    pub id: String,
    /// The peer it pays for.
    pub peer: String,
    /// The payer's wallet.
    pub payer: String,
    /// Its deposit.
    pub deposit: String,
    /// The highest voucher held.
    pub held: String,
    /// Redeemed of it.
    pub redeemed: String,
    /// Whether its payer asked to close it.
    pub closing: bool,
}

/// A downloader's account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayingReport {
    /// Bytes received that were paid for.
    pub bytes_paid: u64,
    /// Tokens signed over in vouchers.
    pub tokens_spent: String,
    /// Tokens deposited in channels.
    pub tokens_deposited: String,
    /// Channels this node pays through.
    pub channels: Vec<PaidChannelReport>,
}

/// A channel a downloader pays through.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaidChannelReport {
    /// Channel id (0x hex).
    pub id: String,
    /// The provider's wallet.
    pub provider: String,
    /// The provider's peer.
    pub peer: String,
    /// Its deposit.
    pub deposit: String,
    /// The highest voucher signed.
    pub signed: String,
    /// Chain time from which its rest may be reclaimed (0: not closing).
    pub closes_at: u64,
    /// Whether the rest was taken back.
    pub reclaimed: bool,
}

/// `POST /bandwidth/close`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClosingReport {
    /// Channels asked to close.
    pub closing: usize,
}

/// `POST /bandwidth/reclaim`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReclaimReport {
    /// Tokens taken back (decimal).
    pub reclaimed: String,
}

/// Bytes served and paid, tokens earned and spent, channels open.
#[utoipa::path(get, path = "/bandwidth", tag = "Bandwidth", operation_id = "getBandwidth",
    responses((status = 200, description = "Paid bandwidth on this node", body = BandwidthReport),
              (status = 503, description = "Paid bandwidth is not enabled", body = ErrorBody)))]
pub(super) async fn report(State(state): State<AppState>) -> Result<Json<BandwidthReport>, ApiError> {
    let b = bandwidth(&state)?;
    let channels =
        b.gate.as_ref().map(|g| g.channels().clone()).or_else(|| b.payments.as_ref().map(|p| p.channels().clone()));
    let contract = channels.as_ref().map(|c| c.domain().contract.to_string()).unwrap_or_default();
    let serving = b.gate.as_ref().map(|g| {
        let (t, held) = g.totals();
        let earned = held.iter().fold(alloy::primitives::U256::ZERO, |s, c| s.saturating_add(c.held));
        ServingReport {
            price_per_byte: g.terms().price_per_byte.to_string(),
            free_bytes: g.terms().free_bytes,
            bytes_served: t.bytes_served,
            bytes_charged: t.bytes_charged,
            tokens_earned: earned.to_string(),
            tokens_redeemed: t.tokens_redeemed.to_string(),
            vouchers_accepted: t.vouchers_accepted,
            vouchers_refused: t.vouchers_refused,
            vouchers_stale: t.vouchers_stale,
            requests_refused: t.requests_refused,
            channels: held
                .into_iter()
                .map(|c| ServedChannel {
                    id: c.id.to_string(),
                    peer: c.peer,
                    payer: c.payer.to_string(),
                    deposit: c.deposit.to_string(),
                    held: c.held.to_string(),
                    redeemed: c.redeemed.to_string(),
                    closing: c.closing,
                })
                .collect(),
        }
    });
    let paying = b.payments.as_ref().map(|p| {
        let t = p.totals();
        PayingReport {
            bytes_paid: t.bytes_paid,
            tokens_spent: t.tokens_signed.to_string(),
            tokens_deposited: t.tokens_deposited.to_string(),
            channels: t
                .channels
                .into_iter()
                .map(|c| PaidChannelReport {
                    id: c.id.to_string(),
                    provider: c.provider.to_string(),
                    peer: c.peer,
                    deposit: c.deposit.to_string(),
                    signed: c.signed.to_string(),
                    closes_at: c.closes_at,
                    reclaimed: c.reclaimed,
                })
                .collect(),
        }
    });
    Ok(Json(BandwidthReport { contract, wallet: b.chain.address().to_string(), serving, paying }))
}

/// Asks to close every channel this node pays through: no more vouchers are signed on them,
/// their providers redeem within the close delay, and the rest can then be reclaimed.
#[utoipa::path(post, path = "/bandwidth/close", tag = "Bandwidth", operation_id = "closeBandwidthChannels",
    responses((status = 200, description = "Channels asked to close", body = ClosingReport),
              (status = 409, description = "This node pays for no bandwidth", body = ErrorBody),
              (status = 502, description = "The chain refused or failed", body = ErrorBody),
              (status = 503, description = "Paid bandwidth is not enabled", body = ErrorBody)))]
pub(super) async fn close(State(state): State<AppState>) -> Result<Json<ClosingReport>, ApiError> {
    let p = payments(&state)?;
    let closing = p.close_all().await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(ClosingReport { closing }))
}

/// Takes back the unspent deposits of closing channels whose close delay has passed.
#[utoipa::path(post, path = "/bandwidth/reclaim", tag = "Bandwidth", operation_id = "reclaimBandwidthDeposits",
    responses((status = 200, description = "Tokens taken back", body = ReclaimReport),
              (status = 409, description = "This node pays for no bandwidth", body = ErrorBody),
              (status = 502, description = "The chain refused or failed", body = ErrorBody),
              (status = 503, description = "Paid bandwidth is not enabled", body = ErrorBody)))]
pub(super) async fn reclaim(State(state): State<AppState>) -> Result<Json<ReclaimReport>, ApiError> {
    let p = payments(&state)?;
    let back = p.reclaim_due().await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(ReclaimReport { reclaimed: back.to_string() }))
}
