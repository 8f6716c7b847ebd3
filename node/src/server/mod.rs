//! The REST API's HTTP server: the accept loop, its connection bound and its timeouts.
//!
//! `axum::serve` has no limits at all: a connection that sends half a header, or nothing, is
//! kept forever, and enough of them exhaust the file descriptors. Here every connection holds a
//! permit of a bounded set; at the bound a new connection gets a `503` with `Retry-After` and is
//! closed. Headers must arrive within [`ServerLimits::header_timeout`] (hyper's header timer,
//! which also closes a kept-alive connection that sends no next request), and a handler must
//! produce its response head within [`ApiPolicy::request_timeout`] (uploads excepted: they are
//! bounded by their per-block timeout instead, see [`guard`]). Cross-site use is refused by
//! [`guard`]; the file-descriptor limit is raised by [`fd_limit`].

pub mod fd_limit;
pub mod guard;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, warn};

pub use self::guard::{ApiPolicy, UploadPolicy};

const LOG: &str = "vellum::server";

/// Bounds of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a request's headers, and the longest a kept-alive connection may sit idle.
    pub header_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { max_connections: 4096, header_timeout: Duration::from_secs(10) }
    }
}

/// The answer to a connection over the bound, written before closing it.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n\
Connection: close\r\nContent-Length: 55\r\n\r\n{\"message\":\"too many connections, retry in one second\"}";

/// Serves `app` on `listener` until the listener fails for good.
pub async fn serve(listener: TcpListener, app: axum::Router, limits: ServerLimits) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let builder = Arc::new(builder);
    let mut last_accept_warning: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept: keep
                // serving the connections we have and try again shortly.
                let now = tokio::time::Instant::now();
                if last_accept_warning.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10)) {
                    warn!(target: LOG, error = %e, "cannot accept API connections");
                    last_accept_warning = Some(now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            debug!(target: LOG, %peer, "connection refused: at the connection bound");
            // The refusal is itself bounded: a peer that does not read it is dropped.
            tokio::spawn(refuse(stream));
            continue;
        };
        let app = app.clone();
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move { app.oneshot(request.map(axum::body::Body::new)).await }
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                debug!(target: LOG, %peer, error = %e, "API connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
