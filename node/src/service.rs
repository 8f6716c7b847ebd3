//! Wires one node together: identity, block store, network, fetcher, REST API and metrics.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::identity::Keypair;
use tracing::{info, warn};

use crate::api::{self, AppState, LogControl};
use crate::fetch::Fetcher;
use crate::metrics::{self, Metrics};
use crate::net::serve::BlockServer;
use crate::net::{self, NetworkConfig, NetworkHandle, spr};
use crate::server::guard::{self, ApiPolicy, ApiPolicyConfig};
use crate::server::{self as http, ServerLimits, fd_limit};
use crate::store::BlockStore;

const LOG: &str = "vellum::node";

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its key and data.
    pub data_dir: PathBuf,
    /// IP to listen on and announce.
    pub listen_ip: IpAddr,
    /// Address the REST API binds to.
    pub api_bindaddr: IpAddr,
    /// REST API port (0 for any).
    pub api_port: u16,
    /// TCP port for libp2p (0 for any).
    pub tcp_port: u16,
    /// UDP port for QUIC (0 for any).
    pub udp_port: u16,
    /// Bootstrap nodes: `spr:…` or multiaddrs ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Storage quota in bytes.
    pub quota: u64,
    /// Bytes left free on the data dir's file system whatever the quota (transfers that would
    /// eat into them are refused with 507).
    pub min_free_bytes: u64,
    /// Fault injection: serve corrupted blocks (tests only).
    pub corrupt_served_blocks: bool,
    /// Persistence mode: the marketplace, the wallet and the prover key.
    pub market: Option<crate::market::MarketConfig>,
    /// The API's cross-site and upload policy.
    pub api_policy: ApiPolicyConfig,
    /// The API server's connection bound and timeouts.
    pub api_limits: ServerLimits,
    /// Paid bandwidth: charging for what is served, paying for what is fetched.
    pub bandwidth: Option<crate::bandwidth::BandwidthConfig>,
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    /// Where the REST API listens.
    pub api_addr: SocketAddr,
    /// Where metrics are served, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The network handle.
    pub net: NetworkHandle,
    /// The block store.
    pub store: Arc<BlockStore>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningNode {
    /// Runs until the REST server stops.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }
}

/// Errors when starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading or writing the data dir failed.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The node key is unreadable.
    #[error("node key {0}: not a valid key file")]
    Key(PathBuf),
    /// The node key may be read by others than its owner.
    #[error("node key {path} may be read by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A bootstrap entry is invalid.
    #[error(transparent)]
    Bootstrap(#[from] spr::SprError),
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The network failed to start.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// Persistence mode failed to start.
    #[error("persistence mode: {0}")]
    Market(#[from] crate::market::MarketError),
    /// Paid bandwidth failed to start.
    #[error("paid bandwidth: {0}")]
    Bandwidth(#[from] crate::bandwidth::BandwidthError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Loads the node's key from `data_dir/key`, creating it (mode 0600) on first start; a key that
/// others than its owner may read is refused (as the wallet key is).
pub fn load_or_create_key(data_dir: &Path) -> Result<Keypair, StartError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = data_dir.join("key");
    let io = |source| StartError::DataDir { path: path.clone(), source };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StartError::KeyExposed { path: path.clone(), mode });
            }
            Keypair::from_protobuf_encoding(&bytes).map_err(|_| StartError::Key(path.clone()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|_| StartError::Key(path.clone()))?;
            let tmp = data_dir.join("key.tmp");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            std::io::Write::write_all(&mut f, &bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Makes every file and directory the process creates from now on private to its owner (umask
/// 077): the data dir holds keys, records and users' data. Process-wide; the node's and the
/// validator's binaries call it first thing.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates the data directory (mode 0700) or takes an existing one private; returns its
/// canonical path.
fn private_dir(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(target: LOG, dir = %dir.display(), mode = format!("{mode:o}"), "data dir was readable by others; now 0700");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Starts a node and returns once its API and network listen.
pub async fn start(config: NodeConfig, log_control: Option<LogControl>) -> Result<RunningNode, StartError> {
    let dir_err = |source| StartError::DataDir { path: config.data_dir.clone(), source };
    let data_dir = private_dir(&config.data_dir).map_err(dir_err)?;
    let fd_limit = fd_limit::raise();
    let keypair = load_or_create_key(&data_dir)?;
    let bootstrap = config.bootstrap.iter().map(|b| spr::parse_bootstrap(b)).collect::<Result<Vec<_>, _>>()?;

    let store = {
        let dir = data_dir.clone();
        let options = crate::store::StoreOptions { quota: config.quota, min_free_bytes: config.min_free_bytes };
        tokio::task::spawn_blocking(move || BlockStore::open_with(&dir, options))
            .await
            .map_err(|e| dir_err(std::io::Error::other(e)))??
    };
    let metrics = Metrics::new();
    let bandwidth = match &config.bandwidth {
        Some(b) => Some(crate::bandwidth::Bandwidth::start(b, &data_dir, Arc::clone(&metrics)).await?),
        None => None,
    };
    let server = BlockServer::new(Arc::clone(&store), Arc::clone(&metrics), config.corrupt_served_blocks)
        .with_gate(bandwidth.as_ref().and_then(|b| b.gate.clone()));
    let net = net::spawn(
        NetworkConfig {
            keypair,
            listen_ip: config.listen_ip,
            tcp_port: config.tcp_port,
            udp_port: config.udp_port,
            bootstrap,
        },
        Some(server),
    )?;
    let fetcher = Fetcher::new(
        Arc::clone(&store),
        net.clone(),
        Arc::clone(&metrics),
        bandwidth.as_ref().and_then(|b| b.payments.clone()),
    );

    // Announce what we already hold.
    let held = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || store.list()).await.map_err(|e| dir_err(std::io::Error::other(e)))??
    };
    for (cid, manifest) in held {
        let _ = net.provide(&cid).await;
        if let Ok(tree) = manifest.tree() {
            let _ = net.provide(&tree).await;
        }
    }

    let metrics_addr = match config.metrics {
        Some(addr) => {
            Some(metrics::serve(addr, Arc::clone(&metrics)).await.map_err(|source| StartError::Bind { addr, source })?)
        }
        None => None,
    };

    let market = match config.market.clone() {
        Some(mc) => Some(
            crate::market::Market::start(
                mc,
                &data_dir,
                Arc::clone(&store),
                Arc::clone(&fetcher),
                net.clone(),
                Arc::clone(&metrics),
                bandwidth.as_ref().map(|b| b.chain.clone()),
            )
            .await?,
        ),
        None => None,
    };
    let state = AppState {
        store: Arc::clone(&store),
        fetcher,
        net: net.clone(),
        metrics,
        repo: data_dir,
        log_control,
        market,
        bandwidth,
    };
    let addr = SocketAddr::new(config.api_bindaddr, config.api_port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let api_addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    if !config.api_bindaddr.is_loopback() {
        warn!(target: LOG, %api_addr, "the REST API is reachable from the network");
    }
    let policy = Arc::new(ApiPolicy::new(config.api_bindaddr, config.api_policy.clone()));
    let app = api::router(state).layer(axum::middleware::from_fn_with_state(policy, guard::check));
    let mut limits = config.api_limits.clone();
    limits.max_connections = fd_limit::connection_bound(limits.max_connections, fd_limit);
    let server = tokio::spawn(http::serve(listener, app, limits));

    // Wait briefly for the listeners so that /info has addresses and an SPR from the start.
    for _ in 0..100 {
        if net.spr().is_some() && net.listen_addrs().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    info!(target: LOG, peer = %net.peer_id(), %api_addr, "node started");
    Ok(RunningNode { api_addr, metrics_addr, net, store, server })
}
