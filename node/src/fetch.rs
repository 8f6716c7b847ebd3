//! Fetching datasets from the network: find providers in the DHT, get and check the manifest,
//! then pull blocks from every provider at once, each block verified against the manifest's
//! tree root before it is written.
//!
//! One [`FetchJob`] runs per dataset however many readers want it; readers follow its progress
//! (the count of leading blocks in place) and stream from its file. A peer that sends one bad
//! block is dropped from the job and its ranges go to the others; a job with no usable peer left
//! searches the DHT again a few times, then fails. The window of requests in flight is bounded
//! in total and per peer: that is the back-pressure on both sides.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::content::{BlockProof, ContentId, Manifest, leaf_hash};
use crate::metrics::Metrics;
use crate::net::exchange::{
    BlocksRequest, DeliveredBlock, MAX_BLOCKS_PER_REQUEST, Request, RequestKind, ResponseKind, Status,
};
use crate::net::{NetError, NetworkHandle};
use crate::store::{BlockStore, PartialDataset, StoreError};

const LOG: &str = "vellum::fetch";
/// Requests in flight per job (each answer is up to 1 MiB: this bounds a job's memory).
const WINDOW: usize = 16;
/// Requests in flight per peer and job.
const PER_PEER: usize = 8;
/// Failed requests after which a peer is dropped from a job.
const MAX_PEER_FAILURES: u32 = 4;
/// DHT searches a job makes before giving up for want of providers.
const MAX_SEARCHES: u32 = 4;
/// How long a manifest search may take.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Providers asked for a manifest at once.
const MANIFEST_ASKS: usize = 4;

/// Pauses before each DHT search for a manifest's providers while none is found (the first
/// search goes at once).
const MANIFEST_SEARCH_PAUSES: [Duration; 3] = [Duration::ZERO, Duration::from_millis(250), Duration::from_secs(1)];

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No peer in the DHT has it.
    #[error("no provider found for {0}")]
    NotFound(ContentId),
    /// Providers exist but none delivered.
    #[error("could not fetch {cid}: {reason}")]
    Failed {
        /// What was being fetched.
        cid: ContentId,
        /// Why it failed.
        reason: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchState {
    /// Running; this many leading blocks are in place.
    Running(u64),
    /// Complete and committed to the store.
    Done,
    /// Given up.
    Failed(String),
}

/// A dataset being fetched.
#[derive(Debug)]
pub struct FetchJob {
    /// The dataset's manifest.
    pub manifest: Manifest,
    /// The file the blocks land in (open before any rename, so it stays readable).
    pub file: Arc<File>,
    /// Progress.
    pub state: watch::Receiver<FetchState>,
}

impl FetchJob {
    /// Waits until the job has committed the dataset, or failed.
    pub async fn finished(&self) -> Result<(), String> {
        let mut rx = self.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                FetchState::Done => return Ok(()),
                FetchState::Failed(reason) => return Err(reason.clone()),
                FetchState::Running(_) => {}
            }
            if rx.changed().await.is_err() {
                return match &*rx.borrow() {
                    FetchState::Done => Ok(()),
                    _ => Err("fetch stopped".into()),
                };
            }
        }
    }
}

/// Starts and tracks fetch jobs.
#[derive(Debug)]
pub struct Fetcher {
    store: Arc<BlockStore>,
    net: NetworkHandle,
    metrics: Arc<Metrics>,
    jobs: Mutex<HashMap<ContentId, Arc<FetchJob>>>,
}

impl Fetcher {
    /// A fetcher over the node's store and network.
    pub fn new(store: Arc<BlockStore>, net: NetworkHandle, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self { store, net, metrics, jobs: Mutex::default() })
    }

    /// The manifest `cid`, from the store or else from the network (then stored).
    pub async fn manifest(&self, cid: &ContentId) -> Result<Manifest, FetchError> {
        let store = Arc::clone(&self.store);
        let c = *cid;
        if let Some(m) = blocking(move || store.manifest(&c)).await? {
            return Ok(m);
        }
        match tokio::time::timeout(MANIFEST_TIMEOUT, self.manifest_from_network(cid)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Failed { cid: *cid, reason: "manifest search timed out".into() }),
        }
    }

    async fn manifest_from_network(&self, cid: &ContentId) -> Result<Manifest, FetchError> {
        let mut tried = 0;
        for (search, pause) in MANIFEST_SEARCH_PAUSES.iter().enumerate() {
            if tried > 0 {
                break; // providers answered but none delivered: searching again would find them again
            }
            if search > 0 {
                // A record announced a moment ago may not have reached the peers we asked yet.
                tokio::time::sleep(*pause).await;
            }
            if let Some(m) = self.manifest_from_providers(cid, &mut tried).await? {
                return Ok(m);
            }
        }
        if tried == 0 {
            Err(FetchError::NotFound(*cid))
        } else {
            Err(FetchError::Failed { cid: *cid, reason: format!("none of {tried} providers sent a valid manifest") })
        }
    }

    /// One DHT search for `cid`'s providers, asking them for the manifest as they are found, up
    /// to [`MANIFEST_ASKS`] at once (a provider that went away costs a dial timeout, not the
    /// whole search); the first valid answer wins. Counts the providers asked in `tried`.
    async fn manifest_from_providers(
        &self,
        cid: &ContentId,
        tried: &mut usize,
    ) -> Result<Option<Manifest>, FetchError> {
        let mut providers = self.net.find_providers(cid).await?;
        let mut asking = FuturesUnordered::new();
        let mut searching = true;
        loop {
            tokio::select! {
                found = providers.recv(), if searching && asking.len() < MANIFEST_ASKS => match found {
                    Some(peer) => {
                        *tried += 1;
                        let net = self.net.clone();
                        let request = Request { kind: Some(RequestKind::Manifest(cid.to_bytes())) };
                        asking.push(async move { (peer, net.request(peer, request).await) });
                    }
                    None => searching = false,
                },
                Some((peer, answer)) = asking.next(), if !asking.is_empty() => {
                    if let Some(m) = self.check_manifest(cid, peer, answer).await? {
                        return Ok(Some(m));
                    }
                }
                else => return Ok(None),
            }
        }
    }

    /// Checks a provider's answer to a manifest request; stores (and, if protected, announces)
    /// a valid manifest.
    async fn check_manifest(
        &self,
        cid: &ContentId,
        peer: libp2p::PeerId,
        answer: Result<crate::net::exchange::Response, crate::net::NetError>,
    ) -> Result<Option<Manifest>, FetchError> {
        match answer {
            Ok(resp) => match resp.kind {
                Some(ResponseKind::Manifest(bytes)) if cid.matches_manifest(&bytes) => {
                    match Manifest::decode_checked(&bytes) {
                        Ok(m) => {
                            let store = Arc::clone(&self.store);
                            let m2 = m.clone();
                            blocking(move || store.put_manifest(&m2)).await?;
                            debug!(target: LOG, %cid, %peer, "manifest fetched");
                            if m.is_protected() {
                                // Whoever holds a protected manifest can hand it to those rebuilding
                                // or repairing the dataset from its slots.
                                let _ = self.net.provide(cid).await;
                            }
                            return Ok(Some(m));
                        }
                        Err(e) => warn!(target: LOG, %peer, error = %e, "peer sent an invalid manifest"),
                    }
                }
                Some(ResponseKind::Manifest(_)) => {
                    warn!(target: LOG, %peer, "peer sent a manifest that does not match its CID")
                }
                other => debug!(target: LOG, %peer, ?other, "peer did not send the manifest"),
            },
            Err(e) => debug!(target: LOG, %peer, error = %e, "manifest request failed"),
        }
        Ok(None)
    }

    /// Fetches a whole dataset by manifest CID unless it is here, and waits for it; returns the
    /// bytes fetched (0 when it was here). A host fetches its slot this way, a repairer the K
    /// slots it decodes.
    pub async fn fetch_dataset(self: &Arc<Self>, cid: ContentId) -> Result<u64, FetchError> {
        let manifest = self.manifest(&cid).await?;
        let tree = manifest.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.store.dataset(&tree)?.is_some() {
            return Ok(0);
        }
        if let Some(job) = self.fetch(cid, manifest.clone())? {
            job.finished().await.map_err(|reason| FetchError::Failed { cid, reason })?;
        }
        Ok(manifest.dataset_size)
    }

    /// The running job for the dataset of `manifest`, starting one if none runs. Returns `None`
    /// when the dataset is already complete locally.
    pub fn fetch(
        self: &Arc<Self>,
        manifest_cid: ContentId,
        manifest: Manifest,
    ) -> Result<Option<Arc<FetchJob>>, FetchError> {
        let tree = manifest.tree().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut jobs = self.jobs.lock().map_err(|_| StoreError::Db("fetch table poisoned".into()))?;
        if let Some(job) = jobs.get(&tree) {
            return Ok(Some(Arc::clone(job)));
        }
        if self.store.dataset(&tree)?.is_some() {
            return Ok(None);
        }
        let partial = self.store.begin_fetch(&manifest)?;
        let file = Arc::new(File::open(partial.path()).map_err(StoreError::Io)?);
        let (tx, rx) = watch::channel(FetchState::Running(0));
        let job = Arc::new(FetchJob { manifest: manifest.clone(), file, state: rx });
        jobs.insert(tree, Arc::clone(&job));
        drop(jobs);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.metrics.fetches_active.inc();
            let result = this.run(manifest_cid, tree, &manifest, partial, &tx).await;
            this.metrics.fetches_active.dec();
            match result {
                Ok(()) => {
                    this.metrics.fetches_completed.inc();
                    let _ = tx.send(FetchState::Done);
                    let _ = this.net.provide(&manifest_cid).await;
                    let _ = this.net.provide(&tree).await;
                }
                Err(e) => {
                    warn!(target: LOG, %manifest_cid, error = %e, "fetch failed");
                    let _ = tx.send(FetchState::Failed(e.to_string()));
                }
            }
            if let Ok(mut jobs) = this.jobs.lock() {
                jobs.remove(&tree);
            }
        });
        Ok(Some(job))
    }

    async fn run(
        &self,
        manifest_cid: ContentId,
        tree: ContentId,
        manifest: &Manifest,
        mut partial: PartialDataset,
        progress: &watch::Sender<FetchState>,
    ) -> Result<(), FetchError> {
        let blocks = manifest.block_count();
        let root = tree.digest();
        let mut pending: VecDeque<(u64, u64)> = (0..blocks)
            .step_by(MAX_BLOCKS_PER_REQUEST as usize)
            .map(|s| (s, (blocks - s).min(u64::from(MAX_BLOCKS_PER_REQUEST))))
            .collect();
        let mut peers: HashMap<PeerId, PeerState> = HashMap::new();
        let mut order: Vec<PeerId> = Vec::new();
        let mut banned: HashSet<PeerId> = HashSet::new();
        let (found_tx, mut found) = mpsc::channel::<Discovery>(64);
        let mut searches = 0u32;
        let mut searching = 0usize;
        let mut in_flight = FuturesUnordered::new();
        let mut contiguous = 0u64;
        let started = std::time::Instant::now();

        while partial.missing() > 0 {
            if searching == 0 && peers.values().all(|p| p.dropped) && in_flight.is_empty() {
                if searches >= MAX_SEARCHES {
                    return Err(FetchError::Failed { cid: manifest_cid, reason: "no provider could deliver".into() });
                }
                if searches > 0 {
                    tokio::time::sleep(Duration::from_millis(500 << searches)).await;
                }
                searches += 1;
                // Peers dropped for failing (not for lying) get another chance.
                for (peer, state) in peers.iter_mut() {
                    if !banned.contains(peer) {
                        state.dropped = false;
                        state.failures = 0;
                    }
                }
                for cid in [manifest_cid, tree] {
                    let mut rx = self.net.find_providers(&cid).await?;
                    let tx = found_tx.clone();
                    searching += 1;
                    tokio::spawn(async move {
                        while let Some(p) = rx.recv().await {
                            if tx.send(Discovery::Found(p)).await.is_err() {
                                return;
                            }
                        }
                        let _ = tx.send(Discovery::SearchEnded).await;
                    });
                }
            }

            // Fill the window, spreading ranges over the peers with the fewest requests out.
            while in_flight.len() < WINDOW {
                let Some(peer) = order
                    .iter()
                    .filter(|p| peers.get(p).is_some_and(|s| !s.dropped && s.in_flight < PER_PEER))
                    .min_by_key(|p| peers.get(p).map_or(usize::MAX, |s| s.in_flight))
                    .copied()
                else {
                    break;
                };
                let Some((start, count)) = pending.pop_front() else { break };
                if let Some(s) = peers.get_mut(&peer) {
                    s.in_flight += 1;
                }
                let net = self.net.clone();
                let request = Request {
                    kind: Some(RequestKind::Blocks(BlocksRequest {
                        tree_cid: tree.to_bytes(),
                        start,
                        count: count as u32,
                    })),
                };
                in_flight.push(async move { (peer, start, count, net.request(peer, request).await) });
            }

            tokio::select! {
                Some(event) = found.recv() => match event {
                    Discovery::SearchEnded => searching = searching.saturating_sub(1),
                    Discovery::Found(peer) => {
                        if !banned.contains(&peer) && !peers.contains_key(&peer) {
                            debug!(target: LOG, %peer, "provider found");
                            peers.insert(peer, PeerState::default());
                            order.push(peer);
                        }
                    }
                },
                Some((peer, start, count, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    let state = peers.entry(peer).or_default();
                    state.in_flight = state.in_flight.saturating_sub(1);
                    let outcome = match result {
                        Ok(resp) => match resp.kind {
                            Some(ResponseKind::Blocks(batch)) => {
                                self.accept(&mut partial, &root, manifest, start, count, batch.blocks)
                            }
                            Some(ResponseKind::Status(s)) if s == Status::Busy as i32 => Outcome::Busy,
                            _ => Outcome::Failed,
                        },
                        Err(e) => {
                            debug!(target: LOG, %peer, error = %e, "block request failed");
                            Outcome::Failed
                        }
                    };
                    let state = peers.entry(peer).or_default();
                    match outcome {
                        Outcome::Good => state.failures = 0,
                        Outcome::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
                        Outcome::Failed => {
                            state.failures += 1;
                            if state.failures >= MAX_PEER_FAILURES {
                                state.dropped = true;
                            }
                        }
                        Outcome::Corrupt(n) => {
                            self.metrics.blocks_rejected.inc_by(n);
                            warn!(target: LOG, %peer, rejected = n, "peer sent blocks that fail their proofs; dropping it");
                            state.dropped = true;
                            banned.insert(peer);
                        }
                    }
                    // Whatever did not arrive goes back to the front of the queue.
                    let mut i = start + count;
                    while i > start {
                        i -= 1;
                        if !partial.has(i) {
                            let mut j = i;
                            while j > start && !partial.has(j - 1) {
                                j -= 1;
                            }
                            pending.push_front((j, i + 1 - j));
                            i = j;
                        }
                    }
                    while contiguous < blocks && partial.has(contiguous) {
                        contiguous += 1;
                    }
                    let _ = progress.send(FetchState::Running(contiguous));
                }
                else => {}
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let cid = tokio::task::block_in_place(|| partial.finish())?;
        info!(target: LOG, manifest = %cid, bytes = manifest.dataset_size, secs, "dataset fetched");
        Ok(())
    }

    /// Verifies and writes a batch; any block failing its proof condemns the peer.
    fn accept(
        &self,
        partial: &mut PartialDataset,
        root: &[u8; 32],
        manifest: &Manifest,
        start: u64,
        count: u64,
        blocks: Vec<DeliveredBlock>,
    ) -> Outcome {
        let leaves = manifest.block_count();
        let mut bad = 0u64;
        let mut good = 0u64;
        tokio::task::block_in_place(|| {
            for b in blocks {
                if b.index < start || b.index >= start + count || partial.has(b.index) {
                    continue;
                }
                let proof = BlockProof {
                    siblings: b.proof.iter().filter_map(|s| <[u8; 32]>::try_from(s.as_slice()).ok()).collect(),
                };
                let leaf = leaf_hash(&b.data);
                let well_formed =
                    proof.siblings.len() == b.proof.len() && b.data.len() as u64 == manifest.block_len(b.index);
                if !well_formed || !proof.verify(root, leaves, b.index, &leaf) {
                    bad += 1;
                    continue;
                }
                if let Err(e) = partial.write_block(b.index, &b.data, leaf) {
                    warn!(target: LOG, error = %e, "could not write a verified block");
                    return;
                }
                good += 1;
            }
        });
        self.metrics.blocks_fetched.inc_by(good);
        if bad > 0 {
            Outcome::Corrupt(bad)
        } else if good == 0 {
            Outcome::Failed
        } else {
            Outcome::Good
        }
    }
}

#[derive(Debug, Default)]
struct PeerState {
    in_flight: usize,
    failures: u32,
    dropped: bool,
}

enum Discovery {
    Found(PeerId),
    SearchEnded,
}

enum Outcome {
    Good,
    Busy,
    Failed,
    Corrupt(u64),
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Db(format!("blocking task failed: {e}")))?
}
