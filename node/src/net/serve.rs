//! Answers other peers' block-exchange requests from the block store.
//!
//! Requests come from the swarm task over a bounded queue into a two-level queue of its own
//! ([`Waiting`]): requests of peers that pay for bandwidth go before the others. At most
//! [`CONCURRENT_READS`] are read from disk at once, and answers go back to the swarm task as
//! commands. Only complete datasets are served, and only with their proofs. Where the node
//! charges for bandwidth, each batch passes its [`Gate`] (with the voucher it carries) before it
//! is sent.

use std::collections::VecDeque;
use std::sync::Arc;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use super::exchange::{
    BlockBatch, DeliveredBlock, MAX_BLOCKS_PER_REQUEST, Request, RequestKind, Response, ResponseKind, Status,
};
use super::{Command, NetworkHandle};
use crate::bandwidth::Gate;
use crate::bandwidth::gate::Admission;
use crate::content::ContentId;
use crate::metrics::Metrics;
use crate::store::{BlockStore, StoreError};

const LOG: &str = "vellum::net::serve";
/// Disk reads in flight for peers at once.
const CONCURRENT_READS: usize = 8;
/// Requests waiting for a read at once; past it the newest non-paying one is answered busy.
const WAITING: usize = 256;

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
    gate: Option<Arc<Gate>>,
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
        Self { store, metrics, corrupt_blocks, gate: None }
    }

    /// Charges for bandwidth through `gate`.
    pub fn with_gate(mut self, gate: Option<Arc<Gate>>) -> Self {
        self.gate = gate;
        self
    }

    /// Whether a request goes first: its peer's vouchers cover all it was served (a voucher
    /// it carries is not checked yet, so it does not count).
    fn paying(&self, req: &InboundRequest) -> bool {
        self.gate.as_ref().is_some_and(|gate| gate.is_paying(&req.peer))
    }

    pub(crate) fn spawn(self, mut requests: mpsc::Receiver<InboundRequest>, net: NetworkHandle) {
        let permits = Arc::new(Semaphore::new(CONCURRENT_READS));
        tokio::spawn(async move {
            let mut waiting = Waiting::default();
            loop {
                if waiting.is_empty() {
                    let Some(req) = requests.recv().await else { return };
                    self.enqueue(&mut waiting, req, &net).await;
                }
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
                // Everything that came in meanwhile joins the queue before the pick, so that
                // paying peers' requests go first.
                while let Ok(req) = requests.try_recv() {
                    self.enqueue(&mut waiting, req, &net).await;
                }
                let Some(req) = waiting.pop() else { continue };
                let server = self.clone();
                let net = net.clone();
                tokio::spawn(async move {
                    let InboundRequest { peer, request, channel } = req;
                    // No answer at all (the stream closes) when the gate withholds it.
                    if let Some(response) = server.answer(peer, request).await {
                        let _ = net.commands.send(Command::Respond { channel, response }).await;
                    }
                    drop(permit);
                });
            }
        });
    }

    /// Queues a request; one turned away from a full queue is answered busy.
    async fn enqueue(&self, waiting: &mut Waiting, req: InboundRequest, net: &NetworkHandle) {
        let paying = self.paying(&req);
        if let Some(turned_away) = waiting.push(req, paying) {
            let busy = Command::Respond { channel: turned_away.channel, response: Response::status(Status::Busy) };
            let _ = net.commands.send(busy).await;
        }
    }

    async fn answer(&self, peer: PeerId, request: Request) -> Option<Response> {
        let voucher = match &request.kind {
            Some(RequestKind::Pay(v)) => {
                let Some(gate) = &self.gate else { return Some(Response::status(Status::BadRequest)) };
                return Some(match gate.pay(peer, v).await {
                    Ok(()) => Response::status(Status::Paid),
                    Err(terms) => Response { kind: Some(ResponseKind::PaymentRequired(terms)) },
                });
            }
            Some(RequestKind::Blocks(b)) => {
                // A peer whose vouchers are refused on sight costs no disk read.
                if let Some(gate) = &self.gate
                    && b.voucher.is_some()
                    && gate.distrusts(&peer)
                {
                    return Some(match gate.admit(peer, b.voucher.as_ref(), 0).await {
                        Admission::PaymentRequired(terms) => {
                            Response { kind: Some(ResponseKind::PaymentRequired(*terms)) }
                        }
                        _ => Response::status(Status::BadRequest),
                    });
                }
                b.voucher.clone()
            }
            _ => None,
        };
        let store = Arc::clone(&self.store);
        let corrupt = self.corrupt_blocks;
        let result = tokio::task::spawn_blocking(move || answer_blocking(&store, request, corrupt)).await;
        match result {
            Ok(Ok(resp)) => {
                if let Some(ResponseKind::Blocks(b)) = &resp.kind {
                    if let Some(gate) = &self.gate {
                        let bytes = b.blocks.iter().map(|d| d.data.len() as u64).sum();
                        match gate.admit(peer, voucher.as_ref(), bytes).await {
                            Admission::Serve => {}
                            Admission::PaymentRequired(terms) => {
                                return Some(Response { kind: Some(ResponseKind::PaymentRequired(*terms)) });
                            }
                            Admission::Withheld => return None,
                            Admission::Busy => return Some(Response::status(Status::Busy)),
                        }
                    }
                    self.metrics.blocks_served.inc_by(b.blocks.len() as u64);
                }
                Some(resp)
            }
            Ok(Err(e)) => {
                debug!(target: LOG, %peer, status = ?e, "request not served");
                Some(Response::status(e))
            }
            Err(_) => Some(Response::status(Status::Busy)),
        }
    }
}

/// Requests waiting for a disk read: paying peers' first, each level in arrival order, at most
/// [`WAITING`] in all.
struct Waiting<T = InboundRequest> {
    paying: VecDeque<T>,
    others: VecDeque<T>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Self { paying: VecDeque::new(), others: VecDeque::new() }
    }
}

impl<T> Waiting<T> {
    /// Queues a request; returns the one turned away when the queue is full (the newest
    /// non-paying request, else this one).
    fn push(&mut self, item: T, paying: bool) -> Option<T> {
        let full = self.paying.len() + self.others.len() >= WAITING;
        match (full, paying) {
            (false, true) => self.paying.push_back(item),
            (false, false) => self.others.push_back(item),
            (true, true) => match self.others.pop_back() {
                Some(turned_away) => {
                    self.paying.push_back(item);
                    return Some(turned_away);
                }
                None => return Some(item),
            },
            (true, false) => return Some(item),
        }
        None
    }

    fn pop(&mut self) -> Option<T> {
        self.paying.pop_front().or_else(|| self.others.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.paying.is_empty() && self.others.is_empty()
    }
}

fn answer_blocking(store: &BlockStore, request: Request, corrupt: bool) -> Result<Response, Status> {
    match request.kind.ok_or(Status::BadRequest)? {
        RequestKind::Manifest(cid) => {
            let cid = ContentId::from_bytes(&cid).map_err(|_| Status::BadRequest)?;
            let manifest = store.manifest(&cid).map_err(|_| Status::NotFound)?.ok_or(Status::NotFound)?;
            Ok(Response { kind: Some(ResponseKind::Manifest(manifest.to_bytes())) })
        }
        RequestKind::Pay(_) => Err(Status::BadRequest),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paying_requests_go_first_and_a_full_queue_turns_non_payers_away() {
        let mut w = Waiting::<u32>::default();
        assert_eq!(w.push(1, false), None);
        assert_eq!(w.push(2, true), None);
        assert_eq!(w.push(3, false), None);
        assert_eq!(w.push(4, true), None);
        assert_eq!([w.pop(), w.pop(), w.pop(), w.pop(), w.pop()], [Some(2), Some(4), Some(1), Some(3), None]);
        for i in 0..WAITING as u32 {
            assert_eq!(w.push(i, i % 2 == 0), None);
        }
        assert_eq!(w.push(9_000, false), Some(9_000), "a non-payer is turned away from a full queue");
        assert_eq!(w.push(9_001, true), Some(WAITING as u32 - 1), "a payer displaces the newest non-payer");
        assert!(!w.is_empty());
        assert_eq!(w.pop(), Some(0), "paying ones first");
    }
}
