//! Answers other peers' block-exchange requests from the block store.
//!
//! Requests come from the swarm task over a bounded queue; at most [`CONCURRENT_READS`] are read
//! from disk at once, and answers go back to the swarm task as commands. Only complete datasets
//! are served, and only with their proofs.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use super::exchange::{
    BlockBatch, DeliveredBlock, MAX_BLOCKS_PER_REQUEST, Request, RequestKind, Response, ResponseKind, Status,
};
use super::{Command, NetworkHandle};
use crate::content::ContentId;
use crate::metrics::Metrics;
use crate::store::{BlockStore, StoreError};

const LOG: &str = "vellum::net::serve";
/// Disk reads in flight for peers at once.
const CONCURRENT_READS: usize = 8;

/// A request from a peer, with the channel its answer goes back on.
pub(crate) struct InboundRequest {
    pub(crate) peer: PeerId,
    pub(crate) request: Request,
    pub(crate) channel: ResponseChannel<Response>,
}

/// Serves blocks and manifests to peers.
#[derive(Clone)]
pub struct BlockServer {
    store: Arc<BlockStore>,
    metrics: Arc<Metrics>,
    corrupt_blocks: bool,
}

impl std::fmt::Debug for BlockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockServer").field("corrupt_blocks", &self.corrupt_blocks).finish()
    }
}

impl BlockServer {
    /// A server over `store`. With `corrupt_blocks`, it flips a byte of every block it serves:
    /// a fault-injection switch for testing that receivers refuse bad blocks.
    pub fn new(store: Arc<BlockStore>, metrics: Arc<Metrics>, corrupt_blocks: bool) -> Self {
        if corrupt_blocks {
            warn!(target: LOG, "FAULT INJECTION: this node serves corrupted blocks");
        }
        Self { store, metrics, corrupt_blocks }
    }

    pub(crate) fn spawn(self, mut requests: mpsc::Receiver<InboundRequest>, net: NetworkHandle) {
        let permits = Arc::new(Semaphore::new(CONCURRENT_READS));
        tokio::spawn(async move {
            while let Some(req) = requests.recv().await {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                let server = self.clone();
                let net = net.clone();
                tokio::spawn(async move {
                    let InboundRequest { peer, request, channel } = req;
                    let response = server.answer(peer, request).await;
                    let _ = net.commands.send(Command::Respond { channel, response }).await;
                    drop(permit);
                });
            }
        });
    }

    async fn answer(&self, peer: PeerId, request: Request) -> Response {
        let store = Arc::clone(&self.store);
        let corrupt = self.corrupt_blocks;
        let result = tokio::task::spawn_blocking(move || answer_blocking(&store, request, corrupt)).await;
        match result {
            Ok(Ok(resp)) => {
                if let Some(ResponseKind::Blocks(b)) = &resp.kind {
                    self.metrics.blocks_served.inc_by(b.blocks.len() as u64);
                }
                resp
            }
            Ok(Err(e)) => {
                debug!(target: LOG, %peer, status = ?e, "request not served");
                Response::status(e)
            }
            Err(_) => Response::status(Status::Busy),
        }
    }
}

fn answer_blocking(store: &BlockStore, request: Request, corrupt: bool) -> Result<Response, Status> {
    match request.kind.ok_or(Status::BadRequest)? {
        RequestKind::Manifest(cid) => {
            let cid = ContentId::from_bytes(&cid).map_err(|_| Status::BadRequest)?;
            let manifest = store.manifest(&cid).map_err(|_| Status::NotFound)?.ok_or(Status::NotFound)?;
            Ok(Response { kind: Some(ResponseKind::Manifest(manifest.to_bytes())) })
        }
        RequestKind::Blocks(req) => {
            if req.count == 0 || req.count > MAX_BLOCKS_PER_REQUEST {
                return Err(Status::BadRequest);
            }
            let tree = ContentId::from_bytes(&req.tree_cid).map_err(|_| Status::BadRequest)?;
            let blocks = match store.blocks_with_proofs(&tree, req.start, u64::from(req.count)) {
                Ok(b) => b,
                Err(StoreError::NotFound) => return Err(Status::NotFound),
                Err(e) => {
                    warn!(target: LOG, error = %e, "could not read blocks");
                    return Err(Status::NotFound);
                }
            };
            if blocks.is_empty() {
                return Err(Status::NotFound);
            }
            let blocks = blocks
                .into_iter()
                .map(|(index, data, proof)| {
                    let data = if corrupt && !data.is_empty() {
                        let mut bad = data.to_vec();
                        bad[0] ^= 0xff;
                        bad.into()
                    } else {
                        data
                    };
                    DeliveredBlock { index, data, proof: proof.siblings.iter().map(|s| s.to_vec()).collect() }
                })
                .collect();
            Ok(Response { kind: Some(ResponseKind::Blocks(BlockBatch { blocks })) })
        }
    }
}
