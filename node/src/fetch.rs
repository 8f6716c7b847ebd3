//! Fetching datasets from the network: find providers in the DHT, get and check the manifest,
//! then pull blocks from every provider at once, each block verified against the manifest's
//! tree root before it is written.
//!
//! One [`FetchJob`] runs per dataset however many readers want it; readers follow its progress
//! (the count of leading blocks in place) and stream from its file. A peer that sends one bad
//! block, whose connection fails, or that leaves its requests unanswered for a few seconds is
//! dropped from the job, and its ranges go to the others at once; a job with no usable peer
//! left searches the DHT again a few times (within seconds), then fails, and its
//! partial file is deleted. The window of requests in flight is bounded in total and per peer:
//! that is the back-pressure on both sides.
//!
//! Where the node pays for bandwidth ([`Payments`]), each request carries the voucher due; a
//! provider's "payment required" opens a channel to it (if its terms are acceptable) and its
//! range is asked again, and once the job is over every provider paid through a channel gets a
//! last voucher for exactly what arrived. A provider whose terms are refused, or that refuses
//! our vouchers, is dropped from the job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::AbortHandle;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::bandwidth::Payments;
use crate::bandwidth::payments::Ticket;
use crate::content::{BlockProof, ContentId, Manifest, leaf_hash};
use crate::metrics::Metrics;
use crate::net::exchange::{
    BlocksRequest, DeliveredBlock, MAX_BLOCKS_PER_REQUEST, Request, RequestKind, Response, ResponseKind, Status,
};
use crate::net::{NetError, NetworkHandle};
use crate::store::{BlockStore, PartialDataset, StoreError};

const LOG: &str = "vellum::fetch";
/// Requests in flight per job (each answer is up to 1 MiB: this bounds a job's memory).
const WINDOW: usize = 16;
/// Requests in flight per peer and job.
const PER_PEER: usize = 8;
/// Requests in flight per peer and job until the peer has delivered (a slow link answers its
/// first requests within [`STALL_TIMEOUT`] too).
const FIRST_WINDOW: usize = 2;
/// Failed requests after which a peer is dropped from a job.
const MAX_PEER_FAILURES: u32 = 4;
/// A peer with requests out that answers none of them for this long (plus a second per MiB a
/// request may carry) is dropped from the job, and its blocks are asked of others.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a job looks for stalled peers.
const STALL_CHECK: Duration = Duration::from_millis(250);
/// Pauses before each DHT search a job makes for want of providers since a block last arrived;
/// after the last one, the job fails.
const SEARCH_PAUSES: [Duration; 4] =
    [Duration::ZERO, Duration::from_millis(250), Duration::from_secs(1), Duration::from_secs(2)];
/// How long a job left without providers may take to get a block again before it fails.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);
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
        self.reached(|_| false).await
    }

    /// Waits until the dataset's first block is in (or the job is done), or the job failed.
    pub async fn started(&self) -> Result<(), String> {
        self.reached(|blocks| blocks > 0).await
    }

    /// Waits until the count of leading blocks in place passes `enough`, the job is done, or it
    /// failed.
    async fn reached(&self, enough: impl Fn(u64) -> bool) -> Result<(), String> {
        let mut rx = self.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                FetchState::Done => return Ok(()),
                FetchState::Failed(reason) => return Err(reason.clone()),
                FetchState::Running(blocks) if enough(*blocks) => return Ok(()),
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
    payments: Option<Arc<Payments>>,
}

impl Fetcher {
    /// A fetcher over the node's store and network, paying providers that charge through
    /// `payments` (without it, a provider asking for payment is dropped).
    pub fn new(
        store: Arc<BlockStore>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
        payments: Option<Arc<Payments>>,
    ) -> Arc<Self> {
        Arc::new(Self { store, net, metrics, jobs: Mutex::default(), payments })
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
        let request_bytes = u64::from(MAX_BLOCKS_PER_REQUEST) * u64::from(manifest.block_size);
        let stall = STALL_TIMEOUT + Duration::from_secs(request_bytes >> 20);
        let mut requests = Requests {
            pending: (0..blocks)
                .step_by(MAX_BLOCKS_PER_REQUEST as usize)
                .map(|s| (s, (blocks - s).min(u64::from(MAX_BLOCKS_PER_REQUEST))))
                .collect(),
            outstanding: HashMap::new(),
        };
        let mut peers: HashMap<PeerId, PeerState> = HashMap::new();
        let mut order: Vec<PeerId> = Vec::new();
        let mut banned: HashSet<PeerId> = HashSet::new();
        let (found_tx, mut found) = mpsc::channel::<Discovery>(64);
        // DHT searches made since a block last arrived, and searches still running.
        let mut searches = 0usize;
        let mut searching = 0usize;
        // Since when no provider has been left to ask (reset by each block that arrives).
        let mut stranded: Option<Instant> = None;
        let mut next_id = 0u64;
        let mut in_flight = FuturesUnordered::new();
        let mut tick = tokio::time::interval(STALL_CHECK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut contiguous = 0u64;
        let started = Instant::now();

        while partial.missing() > 0 {
            if requests.outstanding.is_empty() && peers.values().all(|p| p.dropped) {
                let since = *stranded.get_or_insert_with(Instant::now);
                let searched_out = searching == 0 && searches >= SEARCH_PAUSES.len();
                if searched_out || since.elapsed() >= RECOVERY_LIMIT {
                    self.settle_later(peers.keys().copied().collect());
                    let reason = format!(
                        "no provider could deliver the {} missing blocks ({searches} searches in {:.1?})",
                        partial.missing(),
                        since.elapsed()
                    );
                    return Err(FetchError::Failed { cid: manifest_cid, reason });
                }
                if searching == 0 {
                    tokio::time::sleep(SEARCH_PAUSES[searches]).await;
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
            }

            // Fill the window, spreading ranges over the peers with the fewest requests out.
            while requests.outstanding.len() < WINDOW {
                let Some(peer) = order
                    .iter()
                    .filter(|p| peers.get(p).is_some_and(|s| !s.dropped && s.in_flight < s.window()))
                    .min_by_key(|p| peers.get(p).map_or(usize::MAX, |s| s.in_flight))
                    .copied()
                else {
                    break;
                };
                let Some((start, count)) = requests.pending.pop_front() else { break };
                let bytes: u64 = (start..start + count).map(|i| manifest.block_len(i)).sum();
                let ticket = match &self.payments {
                    Some(p) => match p.ticket(peer, bytes) {
                        Ok(t) => t,
                        Err(e) => {
                            // Over budget: this provider is paid no more.
                            warn!(target: LOG, %peer, error = %e, "provider dropped: cannot pay it");
                            requests.pending.push_front((start, count));
                            if let Some(s) = peers.get_mut(&peer) {
                                s.drop_out();
                            }
                            requests.abandon(|i| partial.has(i), peer, self.payments.as_deref());
                            banned.insert(peer);
                            continue;
                        }
                    },
                    None => Ticket::default(),
                };
                if let Some(s) = peers.get_mut(&peer) {
                    s.asked();
                }
                let request = Request {
                    kind: Some(RequestKind::Blocks(BlocksRequest {
                        tree_cid: tree.to_bytes(),
                        start,
                        count: count as u32,
                        voucher: ticket.voucher.clone(),
                    })),
                };
                let net = self.net.clone();
                let payments = self.payments.clone();
                let (answer, abort) = futures::future::abortable(async move {
                    let response = net.request(peer, request).await?;
                    Ok::<_, NetError>(payment_answer(payments.as_ref(), peer, response).await)
                });
                let id = next_id;
                next_id += 1;
                requests.outstanding.insert(id, Outstanding { peer, start, count, bytes, ticket, abort });
                in_flight.push(async move { (id, answer.await) });
            }

            tokio::select! {
                Some(event) = found.recv() => match event {
                    Discovery::SearchEnded => searching = searching.saturating_sub(1),
                    Discovery::Found(peer) => {
                        if !banned.contains(&peer) && !peers.contains_key(&peer) {
                            debug!(target: LOG, %peer, "provider found");
                            peers.insert(peer, PeerState::new());
                            order.push(peer);
                        }
                    }
                },
                Some((id, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                    // An abandoned request was aborted, and its blocks asked of others already.
                    let (Some(asked), Ok(result)) = (requests.outstanding.remove(&id), answer) else { continue };
                    let peer = asked.peer;
                    let mut received = 0;
                    let outcome = match result {
                        Ok(Answer::Response(resp)) => match resp.kind {
                            Some(ResponseKind::Blocks(batch)) => {
                                let (outcome, good) =
                                    self.accept(&mut partial, &root, manifest, asked.start, asked.count, batch.blocks);
                                received = good;
                                outcome
                            }
                            Some(ResponseKind::Status(s)) if s == Status::Busy as i32 => Outcome::Busy,
                            _ => Outcome::Failed,
                        },
                        Ok(Answer::PaymentArranged) => Outcome::Busy,
                        Ok(Answer::Unpaid(reason)) => Outcome::Unpaid(reason),
                        Err(e) => Outcome::Gone(e.to_string()),
                    };
                    if let Some(p) = &self.payments {
                        p.answered(peer, &asked.ticket, asked.bytes, received);
                    }
                    let state = peers.entry(peer).or_insert_with(PeerState::new);
                    state.answered();
                    requests.requeue(|i| partial.has(i), asked.start, asked.count);
                    match outcome {
                        Outcome::Good => {
                            state.failures = 0;
                            state.delivered = true;
                            searches = 0;
                            stranded = None;
                        }
                        Outcome::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
                        Outcome::Unpaid(reason) => {
                            state.drop_out();
                            requests.abandon(|i| partial.has(i), peer, self.payments.as_deref());
                            banned.insert(peer);
                            warn!(target: LOG, %peer, %reason, "provider dropped: it wants payment this node does not make");
                        }
                        Outcome::Failed => {
                            state.failures += 1;
                            if state.failures >= MAX_PEER_FAILURES {
                                state.dropped = true;
                            }
                        }
                        Outcome::Gone(reason) => {
                            // A closed connection or a failed dial: its other requests are lost too.
                            state.drop_out();
                            let requeued = requests.abandon(|i| partial.has(i), peer, self.payments.as_deref());
                            warn!(target: LOG, %peer, %reason, requeued, "provider dropped: request failed; its blocks go to others");
                        }
                        Outcome::Corrupt(n) => {
                            self.metrics.blocks_rejected.inc_by(n);
                            warn!(target: LOG, %peer, rejected = n, "peer sent blocks that fail their proofs; dropping it");
                            state.drop_out();
                            requests.abandon(|i| partial.has(i), peer, self.payments.as_deref());
                            banned.insert(peer);
                        }
                    }
                    while contiguous < blocks && partial.has(contiguous) {
                        contiguous += 1;
                    }
                    let _ = progress.send(FetchState::Running(contiguous));
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    for (peer, state) in peers.iter_mut().filter(|(_, s)| s.stalled(now, stall)) {
                        state.drop_out();
                        let requeued = requests.abandon(|i| partial.has(i), *peer, self.payments.as_deref());
                        warn!(target: LOG, %peer, requeued, "provider dropped: no answer within {stall:?}; its blocks go to others");
                    }
                }
            }
        }
        self.settle_later(peers.keys().copied().collect());
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
    ) -> (Outcome, u64) {
        let leaves = manifest.block_count();
        let mut bad = 0u64;
        let mut good = 0u64;
        let mut good_bytes = 0u64;
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
                good_bytes += b.data.len() as u64;
            }
        });
        self.metrics.blocks_fetched.inc_by(good);
        let outcome = if bad > 0 {
            Outcome::Corrupt(bad)
        } else if good == 0 {
            Outcome::Failed
        } else {
            Outcome::Good
        };
        (outcome, good_bytes)
    }

    /// Sends, from a task of its own, each of `peers` that is paid through a channel a last
    /// voucher for exactly what arrived from it (when what was signed does not cover it and
    /// nothing is in flight to it).
    fn settle_later(&self, peers: Vec<PeerId>) {
        let Some(payments) = self.payments.clone() else { return };
        let net = self.net.clone();
        tokio::spawn(async move { settle(&payments, &net, peers).await });
    }
}

/// See [`Fetcher::settle_later`].
async fn settle(payments: &Payments, net: &NetworkHandle, peers: Vec<PeerId>) {
    for peer in peers.into_iter().filter(|p| payments.pays(p)) {
        let voucher = match payments.settlement(peer) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                warn!(target: LOG, %peer, error = %e, "could not settle with a provider");
                continue;
            }
        };
        match net.request(peer, Request { kind: Some(RequestKind::Pay(voucher)) }).await {
            Ok(Response { kind: Some(ResponseKind::Status(s)) }) if s == Status::Paid as i32 => {
                debug!(target: LOG, %peer, "settled with provider")
            }
            Ok(other) => warn!(target: LOG, %peer, answer = ?other.kind, "provider did not take the settling voucher"),
            Err(e) => warn!(target: LOG, %peer, error = %e, "could not send the settling voucher"),
        }
    }
}

/// A job's block ranges: those waiting for a peer, in order, and those asked of one.
struct Requests {
    pending: VecDeque<(u64, u64)>,
    outstanding: HashMap<u64, Outstanding>,
}

/// A range asked of a peer; aborting it ends the request at once.
struct Outstanding {
    peer: PeerId,
    start: u64,
    count: u64,
    /// Bytes the range holds (what a paid provider charges for it).
    bytes: u64,
    /// How it was paid for.
    ticket: Ticket,
    abort: AbortHandle,
}

impl Requests {
    /// Queues again whatever of a range has not arrived, in block order (so a reader following
    /// the job waits on the earliest blocks first).
    fn requeue(&mut self, has: impl Fn(u64) -> bool, start: u64, count: u64) {
        let mut i = start;
        while i < start + count {
            if has(i) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < start + count && !has(j) {
                j += 1;
            }
            let at = self.pending.partition_point(|&(s, _)| s < i);
            self.pending.insert(at, (i, j - i));
            i = j;
        }
    }

    /// Aborts every request out to `peer` and queues its blocks again (nothing of them arrived,
    /// as far as payments go); returns how many.
    fn abandon(&mut self, has: impl Fn(u64) -> bool, peer: PeerId, payments: Option<&Payments>) -> u64 {
        let ids: Vec<u64> = self.outstanding.iter().filter(|(_, o)| o.peer == peer).map(|(id, _)| *id).collect();
        let mut blocks = 0;
        for id in ids {
            if let Some(o) = self.outstanding.remove(&id) {
                o.abort.abort();
                if let Some(p) = payments {
                    p.answered(peer, &o.ticket, o.bytes, 0);
                }
                self.requeue(&has, o.start, o.count);
                blocks += o.count;
            }
        }
        blocks
    }
}

#[derive(Debug)]
struct PeerState {
    in_flight: usize,
    failures: u32,
    dropped: bool,
    /// Whether it has delivered blocks to this job (until dropped): it may then have
    /// [`PER_PEER`] requests out instead of [`FIRST_WINDOW`].
    delivered: bool,
    /// Since when it has been expected to answer: its last answer, or the request that found it
    /// with none out.
    waiting_since: Instant,
}

impl PeerState {
    fn new() -> Self {
        Self { in_flight: 0, failures: 0, dropped: false, delivered: false, waiting_since: Instant::now() }
    }

    fn window(&self) -> usize {
        if self.delivered { PER_PEER } else { FIRST_WINDOW }
    }

    fn asked(&mut self) {
        if self.in_flight == 0 {
            self.waiting_since = Instant::now();
        }
        self.in_flight += 1;
    }

    fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.waiting_since = Instant::now();
    }

    /// Whether it has requests out and has answered none of them for `stall`.
    fn stalled(&self, now: Instant, stall: Duration) -> bool {
        !self.dropped && self.in_flight > 0 && now.duration_since(self.waiting_since) > stall
    }

    /// Takes it off the job (its requests out are abandoned by the caller).
    fn drop_out(&mut self) {
        self.dropped = true;
        self.delivered = false;
        self.in_flight = 0;
    }
}

enum Discovery {
    Found(PeerId),
    SearchEnded,
}

/// A provider's answer, after any payment it asked for was arranged.
enum Answer {
    Response(Response),
    /// It asked for payment and a channel to it is open now: ask again.
    PaymentArranged,
    /// It asked for payment this node will not make (or refused our voucher).
    Unpaid(String),
}

/// Turns a "payment required" answer into a channel to the provider, or a higher voucher on
/// the one open (or a refusal).
async fn payment_answer(payments: Option<&Arc<Payments>>, peer: PeerId, response: Response) -> Answer {
    let Some(ResponseKind::PaymentRequired(terms)) = &response.kind else { return Answer::Response(response) };
    let Some(payments) = payments else {
        return Answer::Unpaid("it charges for bandwidth and this node pays none (see --max-price)".into());
    };
    if terms.refused.is_none() && payments.pays(&peer) {
        // It counts more than our vouchers cover (answers lost on the way, a restart): the
        // next voucher carries what it asks, within what we forgive. When we signed that much
        // already (a voucher on its way), the request failed: a provider that keeps asking is
        // dropped after a few.
        return match payments.sync(peer, terms) {
            Ok(true) => Answer::PaymentArranged,
            Ok(false) => Answer::Response(response),
            Err(e) => Answer::Unpaid(e.to_string()),
        };
    }
    match payments.accept_terms(peer, terms).await {
        Ok(()) => Answer::PaymentArranged,
        Err(e) => Answer::Unpaid(e.to_string()),
    }
}

enum Outcome {
    Good,
    Busy,
    Failed,
    /// It wants payment this node does not make.
    Unpaid(String),
    /// The request did not reach the peer or its answer did not come back.
    Gone(String),
    Corrupt(u64),
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Db(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(pending: &[(u64, u64)]) -> Requests {
        Requests { pending: pending.iter().copied().collect(), outstanding: HashMap::new() }
    }

    #[test]
    fn requeued_ranges_skip_what_arrived_and_keep_block_order() {
        let mut r = requests(&[(48, 16)]);
        r.requeue(|i| [18, 19, 25].contains(&i), 16, 16);
        r.requeue(|_| false, 0, 4);
        assert_eq!(Vec::from(r.pending), [(0, 4), (16, 2), (20, 5), (26, 6), (48, 16)]);
    }

    #[test]
    fn abandoning_a_peer_aborts_its_requests_and_queues_their_blocks_again() {
        let (gone, other) = (PeerId::random(), PeerId::random());
        let mut r = requests(&[(64, 16)]);
        let mut handles = Vec::new();
        for (id, (peer, start)) in [(gone, 0), (other, 16), (gone, 32)].into_iter().enumerate() {
            let (abort, _) = AbortHandle::new_pair();
            handles.push(abort.clone());
            let o = Outstanding { peer, start, count: 16, bytes: 16, ticket: Ticket::default(), abort };
            r.outstanding.insert(id as u64, o);
        }
        assert_eq!(r.abandon(|i| i == 33, gone, None), 32);
        assert_eq!(Vec::from(r.pending), [(0, 16), (32, 1), (34, 14), (64, 16)]);
        assert_eq!(handles.iter().map(AbortHandle::is_aborted).collect::<Vec<_>>(), [true, false, true]);
        assert_eq!(r.outstanding.len(), 1);
    }
}
