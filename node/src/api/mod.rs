//! The REST API under `/api/codex/v1` (axum), with paths and JSON shapes of the reference
//! implementation's OpenAPI document. The OpenAPI document Vellum serves at
//! `/api/codex/v1/openapi.json` is generated from the handlers' annotations.
//!
//! Handlers validate every input and answer errors as JSON; none may panic on any input.

pub mod bandwidth;
mod data;
mod encrypted;
mod error;
mod market;
mod node;
pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::encrypted::KEY_HEADER;
pub use self::error::{ApiError, ErrorBody};
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::net::NetworkHandle;
use crate::store::BlockStore;

/// The prefix of every endpoint.
pub const API_PREFIX: &str = "/api/codex/v1";

/// Changes the log filter at run time.
pub type LogControl = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The block store.
    pub store: Arc<BlockStore>,
    /// Network fetches.
    pub fetcher: Arc<Fetcher>,
    /// The swarm.
    pub net: NetworkHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The data directory, as `/info` reports it.
    pub repo: PathBuf,
    /// Log-level control, if the binary installed one.
    pub log_control: Option<LogControl>,
    /// The marketplace side, in persistence mode.
    pub market: Option<Arc<crate::market::Market>>,
    /// Paid bandwidth, where enabled.
    pub bandwidth: Option<crate::bandwidth::Bandwidth>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Vellum API", description = "Vellum storage node REST API (Codex-compatible paths and shapes)"),
    servers((url = "/api/codex/v1")),
    tags(
        (name = "Data", description = "Data operations"),
        (name = "Node", description = "Node management"),
        (name = "Debug", description = "Debugging"),
        (name = "Marketplace", description = "Storage requests, purchases and sales (persistence mode)"),
    )
)]
struct ApiDoc;

/// The endpoints with their OpenAPI operations.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(data::upload))
        .routes(routes!(data::upload_data, data::list))
        .routes(routes!(data::download))
        .routes(routes!(data::download_local, data::delete))
        .routes(routes!(data::fetch_background))
        .routes(routes!(data::download_network_stream))
        .routes(routes!(data::fetch_manifest))
        .routes(routes!(data::exists))
        .routes(routes!(data::protect))
        .routes(routes!(data::space))
        .routes(routes!(node::info))
        .routes(routes!(node::spr))
        .routes(routes!(node::peer_id))
        .routes(routes!(node::connect))
        .routes(routes!(node::debug_info))
        .routes(routes!(node::set_log_level))
        .routes(routes!(market::request_storage))
        .routes(routes!(market::purchases))
        .routes(routes!(market::purchase))
        .routes(routes!(market::availabilities, market::add_availability))
        .routes(routes!(market::update_availability))
        .routes(routes!(market::reservations))
        .routes(routes!(market::slots))
        .routes(routes!(market::slot))
        .routes(routes!(bandwidth::report))
        .routes(routes!(bandwidth::close))
        .routes(routes!(bandwidth::reclaim))
}

/// The OpenAPI document the node serves at `/api/codex/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// Builds the router with its generated OpenAPI document.
pub fn router(state: AppState) -> axum::Router {
    let (inner, openapi) = routes().split_for_parts();
    let openapi = Arc::new(openapi);
    let inner = inner
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&openapi);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
        // Uploads stream to disk; their size is bounded by the storage quota, not by memory.
        .layer(DefaultBodyLimit::disable());
    axum::Router::new().nest(API_PREFIX, inner).fallback(|| async { ApiError::not_found("no such endpoint") })
}
