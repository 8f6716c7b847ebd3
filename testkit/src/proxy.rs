//! A TCP proxy to an endpoint (the chain's) that a scenario can cut and restore, to take a node
//! off the chain without stopping either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// A TCP proxy to the chain endpoint that a test can cut (connections dropped, new ones refused)
/// and restore. It stops with the runtime it was started on.
#[derive(Debug)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`: give this to the node instead of the endpoint.
    pub endpoint: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (Arc::clone(&up), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::Acquire) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self { endpoint, up, cut, _task: task })
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::Release);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}
