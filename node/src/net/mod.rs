//! Networking on rust-libp2p: one task owns the `Swarm` ([`driver`]); the rest of the node holds
//! a cheap, cloneable [`NetworkHandle`] that sends commands over a bounded channel and awaits
//! the replies.
//!
//! Transports are TCP and QUIC, secured by Noise (TCP) or TLS 1.3 (QUIC) and multiplexed by
//! Yamux (TCP). Identify tells peers our addresses and feeds Kademlia's address book; Kademlia
//! runs in server mode and carries provider records for the manifests and trees a node holds;
//! [`exchange`] moves blocks, each checked by the receiver. Every queue here has a limit.

mod behaviour;
mod driver;
pub mod exchange;
pub mod proofs;
pub mod serve;
pub mod spr;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

pub use self::driver::spawn;
use self::exchange::{Request, Response};
use self::proofs::{ProofAnswer, ProofRequest, ProofSource};
use crate::content::ContentId;
use alloy::primitives::{Address, B256};
use contracts::offchain::{HostRecord, PublishedProof};

/// Capacity of the command queue into the swarm task.
const COMMAND_QUEUE: usize = 1024;
/// How long `connect` waits for a dial before giving up.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one block-exchange request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors surfaced by the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The swarm task is gone (the node is shutting down).
    #[error("network task stopped")]
    Stopped,
    /// Dialing a peer failed.
    #[error("could not connect to {peer}: {reason}")]
    Dial {
        /// The peer.
        peer: PeerId,
        /// What went wrong.
        reason: String,
    },
    /// A request to a peer failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// What went wrong.
        reason: String,
    },
    /// Setting up the transports failed.
    #[error("network setup: {0}")]
    Setup(String),
}

/// How to start the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's identity.
    pub keypair: Keypair,
    /// The IP to listen on and announce.
    pub listen_ip: IpAddr,
    /// TCP port (0 for any).
    pub tcp_port: u16,
    /// UDP port for QUIC (0 for any).
    pub udp_port: u16,
    /// Peers to join the network through.
    pub bootstrap: Vec<(PeerId, Vec<Multiaddr>)>,
}

/// A peer in the routing table, for `/debug/info`.
#[derive(Debug, Clone)]
pub struct TableEntry {
    /// The peer.
    pub peer: PeerId,
    /// Its known addresses.
    pub addrs: Vec<Multiaddr>,
    /// Whether it is connected now.
    pub connected: bool,
}

/// What the swarm task knows of itself and its peers.
#[derive(Debug, Clone, Default)]
pub struct NetInfo {
    /// Addresses we listen on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses we announce.
    pub external_addrs: Vec<Multiaddr>,
    /// The routing table.
    pub table: Vec<TableEntry>,
}

/// State the swarm task publishes for cheap reads.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) spr: Option<String>,
}

pub(crate) enum Command {
    Dial { peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), String>> },
    Provide { key: Vec<u8>, recorded: oneshot::Sender<()> },
    FindProviders { key: Vec<u8>, found: mpsc::Sender<PeerId> },
    Request { peer: PeerId, request: Request, reply: oneshot::Sender<Result<Response, String>> },
    Respond { channel: libp2p::request_response::ResponseChannel<Response>, response: Response },
    Info { reply: oneshot::Sender<NetInfo> },
    JoinProofs { topic: String, inbox: Option<mpsc::Sender<PublishedProof>>, source: Option<Arc<dyn ProofSource>> },
    PublishProof { proof: Box<PublishedProof>, reply: oneshot::Sender<Result<(), String>> },
    AskProof { peer: PeerId, request: ProofRequest, reply: oneshot::Sender<Result<ProofAnswer, String>> },
    PutRecord { key: Vec<u8>, value: Vec<u8> },
    FindHost { marketplace: Address, host: Address, reply: oneshot::Sender<Option<PeerId>> },
    ProofStats { reply: oneshot::Sender<ProofNetStats> },
}

/// Counters of the proof exchange, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProofNetStats {
    /// Broadcast proofs of the right form received (before any validator's check).
    pub received: u64,
    /// Broadcasts dropped: not a proof's form.
    pub malformed: u64,
    /// Broadcasts dropped: their peer was past its budget.
    pub over_budget: u64,
    /// Broadcasts dropped: the validator's queue was full.
    pub queue_full: u64,
    /// Requests for proofs answered with a proof.
    pub served: u64,
    /// Requests refused (past the peer's budget).
    pub refused: u64,
}

/// A cloneable handle to the swarm task.
#[derive(Clone)]
pub struct NetworkHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    published: Arc<RwLock<Published>>,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkHandle").field("peer_id", &self.peer_id).finish()
    }
}

impl NetworkHandle {
    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses we listen on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.published.read().map(|p| p.listen_addrs.clone()).unwrap_or_default()
    }

    /// Our signed peer record, once we listen somewhere.
    pub fn spr(&self) -> Option<String> {
        self.published.read().ok().and_then(|p| p.spr.clone())
    }

    async fn send(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// Connects to `peer`, at `addrs` if given, otherwise wherever the DHT finds it.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Dial { peer, addrs, reply }).await?;
        match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(NetError::Dial { peer, reason }),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::Dial { peer, reason: format!("no connection within {DIAL_TIMEOUT:?}") }),
        }
    }

    /// Announces in the DHT that we provide `cid`; returns once the record is in our own provider
    /// store (so searches that reach us find it), while the announcement to other peers goes on.
    pub async fn provide(&self, cid: &ContentId) -> Result<(), NetError> {
        let (recorded, rx) = oneshot::channel();
        self.send(Command::Provide { key: cid.to_bytes(), recorded }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Starts a DHT search for providers of `cid`; they arrive on the returned channel, which
    /// closes when the search ends.
    pub async fn find_providers(&self, cid: &ContentId) -> Result<mpsc::Receiver<PeerId>, NetError> {
        let (found, rx) = mpsc::channel(64);
        self.send(Command::FindProviders { key: cid.to_bytes(), found }).await?;
        Ok(rx)
    }

    /// Sends a block-exchange request and waits for the answer.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request { peer, request, reply }).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(reason))) => Err(NetError::Request { peer, reason }),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::Request { peer, reason: "timed out".into() }),
        }
    }

    /// Joins the marketplace's proof topic: broadcasts of the right form go to `inbox` (a
    /// validator's), and proof requests are answered from `source` (a host's outbox).
    pub async fn join_proofs(
        &self,
        marketplace: Address,
        inbox: Option<mpsc::Sender<PublishedProof>>,
        source: Option<Arc<dyn ProofSource>>,
    ) -> Result<(), NetError> {
        self.send(Command::JoinProofs { topic: proofs::topic(marketplace), inbox, source }).await
    }

    /// Broadcasts a proof on the proof topic.
    pub async fn publish_proof(&self, proof: PublishedProof) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::PublishProof { proof: Box::new(proof), reply }).await?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(NetError::Request { peer: self.peer_id, reason }),
            Err(_) => Err(NetError::Stopped),
        }
    }

    /// Asks `peer` for its proof of `slot_id` in `period`.
    pub async fn ask_proof(&self, peer: PeerId, slot_id: B256, period: u64) -> Result<ProofAnswer, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::AskProof { peer, request: ProofRequest { slot_id, period }, reply }).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(reason))) => Err(NetError::Request { peer, reason }),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::Request { peer, reason: "timed out".into() }),
        }
    }

    /// Stores this host's wallet-signed peer record in the DHT under its address.
    pub async fn put_host_record(
        &self,
        marketplace: Address,
        host: Address,
        record: &HostRecord,
    ) -> Result<(), NetError> {
        self.send(Command::PutRecord { key: HostRecord::key(marketplace, host), value: record.to_bytes() }).await
    }

    /// Looks `host`'s peer up in the DHT; only a record its wallet signed counts.
    pub async fn find_host(&self, marketplace: Address, host: Address) -> Result<Option<PeerId>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FindHost { marketplace, host, reply }).await?;
        match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Ok(None),
        }
    }

    /// The proof exchange's counters.
    pub async fn proof_stats(&self) -> Result<ProofNetStats, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ProofStats { reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// What the swarm knows now.
    pub async fn info(&self) -> Result<NetInfo, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Info { reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }
}
