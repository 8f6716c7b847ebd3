//! The API's front door, run before every handler: refuses cross-site use and bounds work.
//!
//! A web page in the operator's browser can send requests to `127.0.0.1:8080` (and, through DNS
//! rebinding, make its own name point there). So:
//! - `Host` must name this node: a loopback name or address, the address the API is bound to
//!   (any IP literal when bound to all interfaces), or a name given with `--api-allowed-host`;
//! - a request with a foreign `Origin` (or, without one, a browser's `Sec-Fetch-Site` saying it
//!   comes from another site) is refused unless `--api-cors-origin` allows that origin; allowed
//!   origins get CORS headers and their preflights are answered;
//! - a request body other than an upload must be declared `application/json` or not declared
//!   at all (a cross-site form or `text/plain` post cannot pass for JSON);
//! - uploads at once are bounded (503 with `Retry-After` beyond), and each carries its
//!   [`UploadPolicy`]; any other handler must answer within [`ApiPolicy::request_timeout`].
//!
//! Requests without `Origin` and `Sec-Fetch-Site` (the CLI, curl, other programs) pass.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::api::{API_PREFIX, ApiError};

const LOG: &str = "vellum::server";

/// What an upload handler may wait for.
#[derive(Debug, Clone, Copy)]
pub struct UploadPolicy {
    /// The longest wait for the next block's worth of body bytes (64 KiB); a slower upload is
    /// cut with 408 and its bytes and quota released.
    pub block_timeout: Duration,
}

/// The API's cross-site and load policy.
#[derive(Debug)]
pub struct ApiPolicy {
    bound_ip: IpAddr,
    allowed_hosts: Vec<String>,
    cors_origins: Vec<String>,
    uploads: Arc<Semaphore>,
    upload: UploadPolicy,
    /// Time for a handler other than an upload to produce its response head.
    pub request_timeout: Duration,
}

/// Settings of [`ApiPolicy`], from the command line.
#[derive(Debug, Clone)]
pub struct ApiPolicyConfig {
    /// Host names (without port) accepted in `Host` besides loopback and the bound address.
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to use the API from a browser (`*` for any).
    pub cors_origins: Vec<String>,
    /// Uploads at once.
    pub max_uploads: usize,
    /// See [`UploadPolicy::block_timeout`].
    pub upload_block_timeout: Duration,
    /// See [`ApiPolicy::request_timeout`].
    pub request_timeout: Duration,
}

impl Default for ApiPolicyConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            max_uploads: 64,
            upload_block_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl ApiPolicy {
    /// The policy of an API bound to `bound_ip`.
    pub fn new(bound_ip: IpAddr, config: ApiPolicyConfig) -> Self {
        let lower = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Self {
            bound_ip,
            allowed_hosts: lower(config.allowed_hosts),
            cors_origins: lower(config.cors_origins),
            uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
            upload: UploadPolicy { block_timeout: config.upload_block_timeout },
            request_timeout: config.request_timeout,
        }
    }

    /// Whether `host` (a `Host` header's value) names this node.
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") || self.allowed_hosts.contains(&name) {
            return true;
        }
        match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            // An address cannot be rebound to another site's name.
            Ok(ip) => ip.is_loopback() || ip == self.bound_ip || self.bound_ip.is_unspecified(),
            Err(_) => false,
        }
    }

    /// Whether `origin` may use the API from a browser (`host` is the request's `Host`).
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.cors_origins.iter().any(|o| o == "*" || *o == origin) {
            return true;
        }
        // Same origin: the page was served by this very address.
        let authority = origin.split_once("://").map(|(_, a)| a);
        matches!((authority, host), (Some(a), Some(h)) if a == h.to_ascii_lowercase())
    }

    fn cors_value(&self, origin: &str) -> Option<HeaderValue> {
        let listed = self.cors_origins.iter().any(|o| *o == origin.trim_end_matches('/').to_ascii_lowercase());
        if listed {
            HeaderValue::from_str(origin).ok()
        } else if self.cors_origins.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    }
}

/// The host part of a `Host` value (`name:port`, `[v6]:port`, `name`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h)
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path.strip_prefix(API_PREFIX).is_some_and(|p| matches!(p.trim_end_matches('/'), "/upload" | "/data"))
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || text(headers, header::CONTENT_LENGTH).is_some_and(|l| l.trim() != "0")
}

/// Whether a body's declared type may be JSON: `application/json`, `application/*+json`, or
/// none at all (a browser always declares one, so an undeclared body is not a cross-site form).
fn is_json(headers: &HeaderMap) -> bool {
    text(headers, header::CONTENT_TYPE).is_none_or(|t| {
        let essence = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

fn refuse(status: StatusCode, message: String) -> Response {
    debug!(target: LOG, %status, %message, "request refused");
    ApiError::new(status, message).into_response()
}

/// The middleware: see the module documentation.
pub async fn check(State(policy): State<Arc<ApiPolicy>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = text(headers, header::HOST).map(str::to_owned);
    if let Some(h) = &host
        && !policy.host_allowed(h)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("Host {h:?} does not name this node; start it with --api-allowed-host to accept that name"),
        );
    }
    let origin = text(headers, header::ORIGIN).map(str::to_owned);
    let cross_site = text(headers, header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|s| s.eq_ignore_ascii_case("cross-site") || s.eq_ignore_ascii_case("same-site"));
    match &origin {
        Some(o) if !policy.origin_allowed(o, host.as_deref()) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("cross-origin request from {o:?} refused; allow the origin with --api-cors-origin"),
            );
        }
        None if cross_site => {
            return refuse(StatusCode::FORBIDDEN, "cross-site request refused".into());
        }
        _ => {}
    }
    let cors = origin.as_deref().and_then(|o| policy.cors_value(o));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::OPTIONS && origin.is_some() {
        return preflight(cors);
    }
    let upload = is_upload(&method, &path);
    if !upload
        && matches!(method, Method::POST | Method::PUT | Method::PATCH)
        && has_body(request.headers())
        && !is_json(request.headers())
    {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "this endpoint takes application/json".into());
    }
    let mut response = if upload {
        let Ok(permit) = Arc::clone(&policy.uploads).try_acquire_owned() else {
            let mut busy = refuse(StatusCode::SERVICE_UNAVAILABLE, "too many uploads at once, retry later".into());
            busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return busy;
        };
        request.extensions_mut().insert(policy.upload);
        let response = next.run(request).await;
        drop(permit);
        response
    } else {
        match tokio::time::timeout(policy.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                let message = format!("no answer within {} s", policy.request_timeout.as_secs());
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, message).into_response()
            }
        }
    };
    if let Some(value) = cors {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Content-Disposition, Content-Length, Content-Type"),
        );
    }
    response
}

fn preflight(cors: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Some(value) = cors {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Content-Disposition, Accept, X-Vellum-Key"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bound: &str, hosts: &[&str], origins: &[&str]) -> ApiPolicy {
        ApiPolicy::new(
            bound.parse().expect("ip"),
            ApiPolicyConfig {
                allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
                cors_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
                ..ApiPolicyConfig::default()
            },
        )
    }

    #[test]
    fn hosts_name_this_node_or_are_refused() {
        let p = policy("127.0.0.1", &["node.example"], &[]);
        for ok in ["127.0.0.1:8080", "localhost:8080", "localhost", "[::1]:8080", "NODE.example:1", "app.localhost"] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1:8080", "[2001:db8::1]:80", "node.example.evil.com"] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        let any = policy("0.0.0.0", &[], &[]);
        assert!(any.host_allowed("10.0.0.1:8080"));
        assert!(!any.host_allowed("evil.example:8080"));
    }

    #[test]
    fn origins_are_same_origin_or_listed() {
        let p = policy("127.0.0.1", &[], &["https://app.example"]);
        assert!(p.origin_allowed("https://app.example", Some("127.0.0.1:8080")));
        assert!(p.origin_allowed("https://APP.example/", Some("127.0.0.1:8080")));
        assert!(p.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("null", Some("127.0.0.1:8080")));
        assert_eq!(p.cors_value("https://app.example"), Some(HeaderValue::from_static("https://app.example")));
        assert_eq!(p.cors_value("http://127.0.0.1:8080"), None);
        let star = policy("127.0.0.1", &[], &["*"]);
        assert!(star.origin_allowed("null", None));
        assert_eq!(star.cors_value("https://x.example"), Some(HeaderValue::from_static("*")));
    }

    #[test]
    fn host_names_drop_their_port() {
        assert_eq!(host_name("a.example:80"), "a.example");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("a.example"), "a.example");
    }

    #[test]
    fn only_uploads_skip_the_json_rule() {
        assert!(is_upload(&Method::POST, "/api/codex/v1/upload"));
        assert!(is_upload(&Method::POST, "/api/codex/v1/data"));
        assert!(!is_upload(&Method::GET, "/api/codex/v1/data"));
        assert!(!is_upload(&Method::POST, "/api/codex/v1/storage/request/x"));
        let mut h = HeaderMap::new();
        assert!(is_json(&h), "no declared type: not a browser's form");
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert!(is_json(&h));
    }
}
