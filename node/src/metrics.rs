//! The node's Prometheus metrics and the `/metrics` endpoint (text exposition format).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

const LOG: &str = "vellum::metrics";

/// Counters and gauges of one node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Bytes accepted by uploads.
    pub upload_bytes: Counter,
    /// Datasets uploaded.
    pub uploads: Counter,
    /// Blocks sent to peers.
    pub blocks_served: Counter,
    /// Blocks received from peers that verified.
    pub blocks_fetched: Counter,
    /// Blocks received from peers that failed verification.
    pub blocks_rejected: Counter,
    /// Datasets completed from the network.
    pub fetches_completed: Counter,
    /// Downloads served over the REST API.
    pub downloads: Counter,
    /// Fetches in progress.
    pub fetches_active: Gauge,
    /// Bytes fetched to take slots of storage requests (repairs included).
    pub sale_bytes_fetched: Counter,
    /// Bytes fetched to repair lost slots: the surviving slots a repairer decodes from, and
    /// regenerated slots fetched from their repairer.
    pub repair_bytes_fetched: Counter,
    /// Slots this node filled (repairs included).
    pub slots_filled: Counter,
    /// Storage proofs this node submitted and the chain accepted.
    pub proofs_submitted: Counter,
    /// Periodic proofs this node broadcast to validators (off the chain).
    pub proofs_published: Counter,
    /// Accusations of a missing proof this node answered on chain.
    pub accusations_defended: Counter,
    /// Bytes served to peers beyond their free allowance (charged for).
    pub bandwidth_bytes_charged: Counter,
    /// Block requests answered "payment required".
    pub bandwidth_requests_refused: Counter,
    /// Bandwidth vouchers accepted from peers.
    pub bandwidth_vouchers_accepted: Counter,
    /// Bandwidth vouchers refused (forged, wrong channel, over the deposit).
    pub bandwidth_vouchers_refused: Counter,
    /// Tokens redeemed on chain for bandwidth served (saturating at 2^64).
    pub bandwidth_tokens_redeemed: Counter,
    /// Bytes received from providers and paid for.
    pub bandwidth_bytes_paid: Counter,
    /// Bandwidth channels opened to pay providers.
    pub bandwidth_channels_opened: Counter,
}

impl Metrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("vellum");
        let m = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let upload_bytes = m(&mut registry, "upload_bytes", "Bytes accepted by uploads");
        let uploads = m(&mut registry, "uploads", "Datasets uploaded");
        let blocks_served = m(&mut registry, "blocks_served", "Blocks sent to peers");
        let blocks_fetched = m(&mut registry, "blocks_fetched", "Verified blocks received from peers");
        let blocks_rejected = m(&mut registry, "blocks_rejected", "Blocks from peers that failed verification");
        let fetches_completed = m(&mut registry, "fetches_completed", "Datasets completed from the network");
        let downloads = m(&mut registry, "downloads", "Downloads served over the REST API");
        let sale_bytes_fetched =
            m(&mut registry, "sale_bytes_fetched", "Bytes fetched to take slots (repairs included)");
        let repair_bytes_fetched = m(&mut registry, "repair_bytes_fetched", "Bytes fetched to repair lost slots");
        let slots_filled = m(&mut registry, "slots_filled", "Slots filled by this node (repairs included)");
        let proofs_submitted = m(&mut registry, "proofs_submitted", "Storage proofs accepted by the chain");
        let proofs_published =
            m(&mut registry, "proofs_published", "Periodic proofs broadcast to validators off the chain");
        let accusations_defended =
            m(&mut registry, "accusations_defended", "Accusations of a missing proof answered with the proof on chain");
        let bandwidth_bytes_charged = m(
            &mut registry,
            "bandwidth_bytes_charged",
            "Bytes served to peers beyond their free allowance (charged for)",
        );
        let bandwidth_requests_refused =
            m(&mut registry, "bandwidth_requests_refused", "Block requests answered \"payment required\"");
        let bandwidth_vouchers_accepted =
            m(&mut registry, "bandwidth_vouchers_accepted", "Bandwidth vouchers accepted from peers");
        let bandwidth_vouchers_refused = m(
            &mut registry,
            "bandwidth_vouchers_refused",
            "Bandwidth vouchers refused (forged, wrong channel, over the deposit)",
        );
        let bandwidth_tokens_redeemed = m(
            &mut registry,
            "bandwidth_tokens_redeemed",
            "Tokens redeemed on chain for bandwidth served (saturating at 2^64)",
        );
        let bandwidth_bytes_paid =
            m(&mut registry, "bandwidth_bytes_paid", "Bytes received from providers and paid for");
        let bandwidth_channels_opened =
            m(&mut registry, "bandwidth_channels_opened", "Bandwidth channels opened to pay providers");
        let fetches_active = Gauge::default();
        registry.register("fetches_active", "Network fetches in progress", fetches_active.clone());
        Arc::new(Self {
            registry,
            upload_bytes,
            uploads,
            blocks_served,
            blocks_fetched,
            blocks_rejected,
            fetches_completed,
            downloads,
            fetches_active,
            sale_bytes_fetched,
            repair_bytes_fetched,
            slots_filled,
            proofs_submitted,
            proofs_published,
            accusations_defended,
            bandwidth_bytes_charged,
            bandwidth_requests_refused,
            bandwidth_vouchers_accepted,
            bandwidth_vouchers_refused,
            bandwidth_tokens_redeemed,
            bandwidth_bytes_paid,
            bandwidth_channels_opened,
        })
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            warn!(target: LOG, "could not encode metrics");
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    serve_text(addr, Arc::new(move || metrics.render())).await
}

/// Serves `GET /metrics` on `addr`, answering with what `render` returns (any component's
/// registry: the node's, a validator's).
pub async fn serve_text(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    async fn handler(State(render): State<Arc<dyn Fn() -> String + Send + Sync>>) -> impl IntoResponse {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], render())
    }
    let app = Router::new().route("/metrics", get(handler)).with_state(render);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(target: LOG, %bound, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(target: LOG, error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}
