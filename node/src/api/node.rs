//! Node endpoints: identity, addresses, peer record, connecting to peers, debugging.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use libp2p::{Multiaddr, PeerId};

use super::schema::{DebugInfo, ExchangeStats, NodeInfo, PeerIdRead, PeersTable, SprRead, TableNode, Version};
use super::{ApiError, AppState, ErrorBody};

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

fn current_spr(state: &AppState) -> Result<String, ApiError> {
    state.net.spr().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node SPR not ready, try again later"))
}

/// The node's peer id, addresses, data directory and signed peer record.
#[utoipa::path(get, path = "/info", tag = "Node",
    responses((status = 200, description = "Node information", body = NodeInfo),
              (status = 503, description = "Not listening yet", body = ErrorBody)))]
pub(super) async fn info(State(state): State<AppState>) -> Result<Json<NodeInfo>, ApiError> {
    Ok(Json(NodeInfo {
        id: state.net.peer_id().to_string(),
        addrs: state.net.listen_addrs().iter().map(ToString::to_string).collect(),
        repo: state.repo.display().to_string(),
        spr: current_spr(&state)?,
    }))
}

/// The node's signed peer record (text, or JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/spr", tag = "Node", operation_id = "getSPR",
    responses((status = 200, description = "The SPR", content((String = "text/plain"), (SprRead = "application/json"))),
              (status = 503, description = "Not ready", body = ErrorBody)))]
pub(super) async fn spr(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let spr = current_spr(&state)?;
    Ok(if wants_json(&headers) { Json(SprRead { spr }).into_response() } else { spr.into_response() })
}

/// The node's peer id (text, or JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/peerid", tag = "Node", operation_id = "getPeerId",
    responses((status = 200, description = "The peer id",
               content((String = "text/plain"), (PeerIdRead = "application/json")))))]
pub(super) async fn peer_id(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let id = state.net.peer_id().to_string();
    if wants_json(&headers) { Json(PeerIdRead { id }).into_response() } else { id.into_response() }
}

/// Collects `addrs` from a query string: repeated (`addrs=a&addrs=b`) or comma-separated.
fn query_addrs(query: Option<&str>) -> Result<Vec<Multiaddr>, ApiError> {
    let mut out = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let Some(value) = pair.strip_prefix("addrs=") else { continue };
        let decoded =
            percent_decode(value).ok_or_else(|| ApiError::bad_request("addrs is not valid percent-encoding"))?;
        for a in decoded.split(',').filter(|a| !a.trim().is_empty()) {
            out.push(a.trim().parse().map_err(|e| ApiError::bad_request(format!("invalid multiaddress {a:?}: {e}")))?);
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// Connect to a peer, at the given addresses or wherever the DHT finds it.
#[utoipa::path(get, path = "/connect/{peerId}", tag = "Node", operation_id = "connectPeer",
    params(("peerId" = String, Path, description = "Peer to dial"),
           ("addrs" = Option<Vec<String>>, Query, description = "Multiaddresses to dial")),
    responses((status = 200, description = "Connected", body = String, content_type = "text/plain"),
              (status = 400, description = "Invalid peer or address, or the dial failed", body = ErrorBody)))]
pub(super) async fn connect(
    State(state): State<AppState>,
    Path(peer): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<&'static str, ApiError> {
    let peer: PeerId = peer.parse().map_err(|e| ApiError::bad_request(format!("invalid peer id: {e}")))?;
    let addrs = query_addrs(query.as_deref())?;
    state.net.connect(peer, addrs).await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok("Successfully connected to peer")
}

/// Node details for debugging: addresses, routing table, version, exchange counters.
#[utoipa::path(get, path = "/debug/info", tag = "Debug", operation_id = "getDebugInfo",
    responses((status = 200, description = "Node details", body = DebugInfo),
              (status = 500, description = "The network task did not answer", body = ErrorBody)))]
pub(super) async fn debug_info(State(state): State<AppState>) -> Result<Json<DebugInfo>, ApiError> {
    let info = state.net.info().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let me = state.net.peer_id().to_string();
    let spr = state.net.spr().unwrap_or_default();
    let node = |peer: String, addr: String, seen: bool| TableNode {
        node_id: peer.clone(),
        peer_id: peer,
        record: addr.clone(),
        address: addr,
        seen,
    };
    let first_external = info.external_addrs.first().map(ToString::to_string).unwrap_or_default();
    Ok(Json(DebugInfo {
        id: me.clone(),
        addrs: info.listen_addrs.iter().map(ToString::to_string).collect(),
        repo: state.repo.display().to_string(),
        spr,
        announce_addresses: info.external_addrs.iter().map(ToString::to_string).collect(),
        table: PeersTable {
            local_node: node(me, first_external, true),
            nodes: info
                .table
                .iter()
                .map(|e| {
                    node(e.peer.to_string(), e.addrs.first().map(ToString::to_string).unwrap_or_default(), e.connected)
                })
                .collect(),
        },
        codex: Version {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: option_env!("VELLUM_REVISION").unwrap_or("").into(),
        },
        exchange: ExchangeStats {
            blocks_served: state.metrics.blocks_served.get(),
            blocks_fetched: state.metrics.blocks_fetched.get(),
            blocks_rejected: state.metrics.blocks_rejected.get(),
        },
    }))
}

/// Query of `POST /debug/chronicles/loglevel`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LevelQuery {
    /// A level (TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL), with levels of chronicles
    /// topics (`INFO;TRACE:blockexcnetwork,restapi`), or a tracing filter (`info,vellum::net=debug`).
    level: String,
}

/// Set the log level at run time.
#[utoipa::path(post, path = "/debug/chronicles/loglevel", tag = "Debug", operation_id = "setDebugLogLevel",
    params(LevelQuery),
    responses((status = 200, description = "Level set", body = String, content_type = "text/plain"),
              (status = 400, description = "Invalid or missing level", body = ErrorBody),
              (status = 500, description = "The binary installed no log control", body = ErrorBody)))]
pub(super) async fn set_log_level(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<LevelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<&'static str, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let control = state.log_control.as_ref().ok_or_else(|| ApiError::internal("log control not available"))?;
    control(&q.level).map_err(ApiError::bad_request)?;
    Ok("log level set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addrs_parse_in_both_styles() {
        let one = "/ip4/127.0.0.1/tcp/1";
        let two = "/ip4/127.0.0.1/udp/2/quic-v1";
        let q = format!("addrs={}&addrs={}", one.replace('/', "%2F"), two);
        assert_eq!(query_addrs(Some(&q)).expect("parse").len(), 2);
        assert_eq!(query_addrs(Some(&format!("addrs={one},{two}"))).expect("parse").len(), 2);
        assert!(query_addrs(Some("addrs=nonsense")).is_err());
        assert!(query_addrs(Some("addrs=%zz")).is_err());
        assert!(query_addrs(None).expect("none").is_empty());
    }
}
