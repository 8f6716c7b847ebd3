//! The task that owns the `Swarm`: it turns commands into swarm calls and swarm events into
//! replies, and hands inbound block requests to the [`BlockServer`](super::serve::BlockServer)
//! through a bounded queue (a full queue answers `Busy` at once, so a flood of requests costs a
//! peer its answers, not our memory).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, noise, request_response, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use super::exchange::{Response, Status};
use super::proofs::{BROADCASTS_PER_WINDOW, BUDGET_WINDOW, PeerBudget, ProofAnswer, ProofSource, REQUESTS_PER_WINDOW};
use super::serve::{BlockServer, InboundRequest};
use super::{
    COMMAND_QUEUE, Command, NetError, NetInfo, NetworkConfig, NetworkHandle, ProofNetStats, Published, TableEntry, spr,
};
use alloy::primitives::Address;
use contracts::offchain::{HostRecord, PublishedProof};
use std::time::Instant;

const LOG: &str = "vellum::net";
/// Inbound requests waiting for the block server.
const SERVE_QUEUE: usize = 256;

fn listen_addr(ip: IpAddr, tcp: Option<u16>, udp: Option<u16>) -> Multiaddr {
    let mut a = Multiaddr::empty();
    a.push(match ip {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    });
    if let Some(p) = tcp {
        a.push(Protocol::Tcp(p));
    }
    if let Some(p) = udp {
        a.push(Protocol::Udp(p));
        a.push(Protocol::QuicV1);
    }
    a
}

/// Orders addresses TCP first. Dials try addresses one at a time in order, and on loopback and
/// LANs TCP with Noise and Yamux moves blocks about 1.5 times faster than QUIC here (see
/// `docs/design.md`), so QUIC is the fallback.
fn tcp_first(mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    addrs.sort_by_key(|a| a.iter().any(|p| matches!(p, Protocol::Udp(_))));
    addrs
}

/// Starts the swarm task and the block server (a validator has none: block requests are then
/// answered `Busy`); returns the handle.
pub fn spawn(config: NetworkConfig, server: Option<BlockServer>) -> Result<NetworkHandle, NetError> {
    let keypair = config.keypair.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| Behaviour::new(key))
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(600))
                .with_dial_concurrency_factor(std::num::NonZeroU8::MIN)
        })
        .build();

    swarm
        .listen_on(listen_addr(config.listen_ip, Some(config.tcp_port), None))
        .map_err(|e| NetError::Setup(format!("TCP listen: {e}")))?;
    swarm
        .listen_on(listen_addr(config.listen_ip, None, Some(config.udp_port)))
        .map_err(|e| NetError::Setup(format!("QUIC listen: {e}")))?;

    for (peer, addrs) in &config.bootstrap {
        let addrs = tcp_first(addrs.clone());
        for a in &addrs {
            swarm.behaviour_mut().kad.add_address(peer, a.clone());
        }
        if let Err(e) = swarm.dial(DialOpts::peer_id(*peer).addresses(addrs).build()) {
            warn!(target: LOG, %peer, error = %e, "could not dial bootstrap node");
        }
    }
    if !config.bootstrap.is_empty() {
        let _ = swarm.behaviour_mut().kad.bootstrap();
    }

    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (serve_tx, serve_rx) = mpsc::channel(SERVE_QUEUE);
    let published = Arc::new(RwLock::new(Published::default()));
    let handle = NetworkHandle { peer_id: keypair.public().to_peer_id(), commands, published: Arc::clone(&published) };
    match server {
        Some(server) => server.spawn(serve_rx, handle.clone()),
        None => drop(serve_rx),
    }
    let driver = Driver {
        swarm,
        keypair,
        published,
        serve_tx,
        pending_dials: HashMap::new(),
        bootstrap_unreached: config.bootstrap.iter().map(|(peer, _)| *peer).collect(),
        pending_requests: HashMap::new(),
        provider_searches: HashMap::new(),
        peer_searches: HashMap::new(),
        proofs: ProofState {
            topic: None,
            inbox: None,
            source: None,
            broadcasts: PeerBudget::new(BROADCASTS_PER_WINDOW, BUDGET_WINDOW),
            requests: PeerBudget::new(REQUESTS_PER_WINDOW, BUDGET_WINDOW),
            asks: HashMap::new(),
            host_searches: HashMap::new(),
            stats: ProofNetStats::default(),
        },
    };
    tokio::spawn(driver.run(command_rx));
    Ok(handle)
}

struct Driver {
    swarm: Swarm<Behaviour>,
    keypair: libp2p::identity::Keypair,
    published: Arc<RwLock<Published>>,
    serve_tx: mpsc::Sender<InboundRequest>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>>,
    /// Bootstrap nodes not reached yet: the first failure or success of each is logged.
    bootstrap_unreached: HashSet<PeerId>,
    pending_requests: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<Response, String>>>,
    provider_searches: HashMap<kad::QueryId, (mpsc::Sender<PeerId>, HashSet<PeerId>)>,
    peer_searches: HashMap<kad::QueryId, PeerId>,
    proofs: ProofState,
}

/// The proof exchange's part of the swarm task.
struct ProofState {
    topic: Option<gossipsub::IdentTopic>,
    inbox: Option<mpsc::Sender<PublishedProof>>,
    source: Option<Arc<dyn ProofSource>>,
    broadcasts: PeerBudget,
    requests: PeerBudget,
    asks: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<ProofAnswer, String>>>,
    host_searches: HashMap<kad::QueryId, (Address, Address, oneshot::Sender<Option<PeerId>>)>,
    stats: ProofNetStats,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
            }
        }
        debug!(target: LOG, "network task stopped");
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { peer, addrs, reply } => self.dial(peer, addrs, reply),
            Command::Provide { key, recorded } => {
                if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key.into()) {
                    warn!(target: LOG, error = %e, "could not record provider");
                }
                let _ = recorded.send(());
            }
            Command::FindProviders { key, found } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(key.into());
                self.provider_searches.insert(id, (found, HashSet::new()));
            }
            Command::Request { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().exchange.send_request(&peer, request);
                self.pending_requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                // Fails only if the peer went away; nothing to do then.
                let _ = self.swarm.behaviour_mut().exchange.send_response(channel, response);
            }
            Command::Info { reply } => {
                let _ = reply.send(self.info());
            }
            Command::JoinProofs { topic, inbox, source } => {
                let topic = gossipsub::IdentTopic::new(topic);
                if let Err(e) = self.swarm.behaviour_mut().gossip.subscribe(&topic) {
                    warn!(target: LOG, error = %e, "could not join the proof topic");
                }
                self.proofs.topic = Some(topic);
                if inbox.is_some() {
                    self.proofs.inbox = inbox;
                }
                if source.is_some() {
                    self.proofs.source = source;
                }
            }
            Command::PublishProof { proof, reply } => {
                let result = match &self.proofs.topic {
                    None => Err("not on the proof topic".to_string()),
                    Some(topic) => self
                        .swarm
                        .behaviour_mut()
                        .gossip
                        .publish(topic.clone(), proof.to_bytes().to_vec())
                        .map(drop)
                        .map_err(|e| e.to_string()),
                };
                let _ = reply.send(result);
            }
            Command::AskProof { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().proofs.send_request(&peer, request);
                self.proofs.asks.insert(id, reply);
            }
            Command::PutRecord { key, value } => {
                let record = kad::Record::new(key, value);
                if let Err(e) = self.swarm.behaviour_mut().kad.put_record(record, kad::Quorum::One) {
                    warn!(target: LOG, error = ?e, "could not store the host record");
                }
            }
            Command::FindHost { marketplace, host, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_record(HostRecord::key(marketplace, host).into());
                self.proofs.host_searches.insert(id, (marketplace, host, reply));
            }
            Command::ProofStats { reply } => {
                let _ = reply.send(self.proofs.stats);
            }
        }
    }

    /// A broadcast on the proof topic: relayed (and handed to a validator) only if it has a
    /// proof's form and its peer is within budget.
    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source, message_id, message } = event else { return };
        let on_topic = self.proofs.topic.as_ref().is_some_and(|t| t.hash() == message.topic);
        let acceptance = if !on_topic {
            gossipsub::MessageAcceptance::Reject
        } else if !self.proofs.broadcasts.spend(propagation_source, Instant::now()) {
            self.proofs.stats.over_budget = self.proofs.stats.over_budget.saturating_add(1);
            gossipsub::MessageAcceptance::Ignore
        } else {
            match PublishedProof::from_bytes(&message.data) {
                Err(e) => {
                    self.proofs.stats.malformed = self.proofs.stats.malformed.saturating_add(1);
                    debug!(target: LOG, peer = %propagation_source, error = %e, "malformed proof broadcast dropped");
                    gossipsub::MessageAcceptance::Reject
                }
                Ok(proof) => {
                    self.proofs.stats.received = self.proofs.stats.received.saturating_add(1);
                    if let Some(inbox) = &self.proofs.inbox
                        && inbox.try_send(proof).is_err()
                    {
                        self.proofs.stats.queue_full = self.proofs.stats.queue_full.saturating_add(1);
                    }
                    gossipsub::MessageAcceptance::Accept
                }
            }
        };
        self.swarm.behaviour_mut().gossip.report_message_validation_result(
            &message_id,
            &propagation_source,
            acceptance,
        );
    }

    fn on_proof_exchange(&mut self, event: request_response::Event<super::proofs::ProofRequest, ProofAnswer>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let answer = if !self.proofs.requests.spend(peer, Instant::now()) {
                        self.proofs.stats.refused = self.proofs.stats.refused.saturating_add(1);
                        ProofAnswer::Busy
                    } else {
                        match self.proofs.source.as_ref().and_then(|s| s.proof(request.slot_id, request.period)) {
                            Some(p) => {
                                self.proofs.stats.served = self.proofs.stats.served.saturating_add(1);
                                ProofAnswer::Proof(Box::new(p))
                            }
                            None => ProofAnswer::NotHeld,
                        }
                    };
                    let _ = self.swarm.behaviour_mut().proofs.send_response(channel, answer);
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.proofs.asks.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                debug!(target: LOG, %peer, %error, "proof request failed");
                if let Some(reply) = self.proofs.asks.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(target: LOG, %peer, %error, "inbound proof request dropped");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), String>>) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        if peer == *self.swarm.local_peer_id() {
            let _ = reply.send(Err("cannot connect to ourselves".into()));
            return;
        }
        let addrs = tcp_first(addrs);
        for a in &addrs {
            self.swarm.behaviour_mut().kad.add_address(&peer, a.clone());
        }
        self.pending_dials.entry(peer).or_default().push(reply);
        match self.swarm.dial(DialOpts::peer_id(peer).addresses(addrs).build()) {
            Ok(()) => {}
            Err(DialError::NoAddresses) => {
                debug!(target: LOG, %peer, "no address known; asking the DHT");
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                self.peer_searches.insert(id, peer);
            }
            Err(e) => self.resolve_dial(peer, Err(e.to_string())),
        }
    }

    fn resolve_dial(&mut self, peer: PeerId, result: Result<(), String>) {
        for reply in self.pending_dials.remove(&peer).unwrap_or_default() {
            let _ = reply.send(result.clone());
        }
    }

    fn info(&mut self) -> NetInfo {
        let listen_addrs = self.swarm.listeners().cloned().collect();
        let external_addrs = self.swarm.external_addresses().cloned().collect();
        let mut table = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                table.push(TableEntry { peer, addrs: entry.node.value.iter().cloned().collect(), connected: false });
            }
        }
        for e in &mut table {
            e.connected = self.swarm.is_connected(&e.peer);
        }
        NetInfo { listen_addrs, external_addrs, table }
    }

    fn publish_addresses(&mut self) {
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let external = tcp_first(self.swarm.external_addresses().cloned().collect());
        let record = match spr::encode(&self.keypair, external) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(target: LOG, error = %e, "could not sign peer record");
                None
            }
        };
        if let Ok(mut p) = self.published.write() {
            p.listen_addrs = listen;
            p.spr = record;
        }
    }

    fn on_event(&mut self, event: SwarmEvent<super::behaviour::BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: LOG, %address, "listening");
                let unspecified = address.iter().any(|p| match p {
                    Protocol::Ip4(ip) => ip.is_unspecified(),
                    Protocol::Ip6(ip) => ip.is_unspecified(),
                    _ => false,
                });
                if !unspecified {
                    self.swarm.add_external_address(address);
                }
                self.publish_addresses();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
                self.publish_addresses();
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                debug!(target: LOG, peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                if self.bootstrap_unreached.remove(&peer_id) {
                    info!(target: LOG, peer = %peer_id, addr = %endpoint.get_remote_address(), "connected to bootstrap node");
                }
                self.resolve_dial(peer_id, Ok(()));
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                debug!(target: LOG, peer = %peer_id, ?cause, "connection closed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. }
                if !self.swarm.is_connected(&peer) =>
            {
                if self.bootstrap_unreached.remove(&peer) {
                    warn!(target: LOG, %peer, %error, "cannot reach bootstrap node; check its address and peer id");
                } else {
                    debug!(target: LOG, %peer, %error, "dial failed");
                }
                self.resolve_dial(peer, Err(error.to_string()));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }))
                if info.protocols.contains(&KAD_PROTOCOL) =>
            {
                for addr in tcp_first(info.listen_addrs) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Exchange(event)) => self.on_exchange(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Proofs(event)) => self.on_proof_exchange(event),
            _ => {}
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed { id, result, step, .. } = event else { return };
        match result {
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })) => {
                let me = *self.swarm.local_peer_id();
                if let Some((tx, seen)) = self.provider_searches.get_mut(&id) {
                    for p in providers {
                        if p != me && seen.insert(p) && tx.try_send(p).is_err() {
                            debug!(target: LOG, "provider search receiver full or gone");
                        }
                    }
                }
            }
            kad::QueryResult::GetClosestPeers(result) => {
                if let Some(peer) = self.peer_searches.remove(&id) {
                    let addrs: Vec<Multiaddr> = match result {
                        Ok(ok) => ok.peers.into_iter().filter(|p| p.peer_id == peer).flat_map(|p| p.addrs).collect(),
                        Err(_) => Vec::new(),
                    };
                    if addrs.is_empty() {
                        self.resolve_dial(peer, Err("peer not found in the DHT".into()));
                    } else if let Err(e) = self.swarm.dial(DialOpts::peer_id(peer).addresses(tcp_first(addrs)).build())
                    {
                        self.resolve_dial(peer, Err(e.to_string()));
                    }
                }
            }
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                if let Some((marketplace, host, _)) = self.proofs.host_searches.get(&id) {
                    match HostRecord::verify(&found.record.value, *marketplace, *host)
                        .map_err(|e| e.to_string())
                        .and_then(|r| PeerId::from_bytes(&r.peer).map_err(|e| e.to_string()))
                    {
                        Ok(peer) => {
                            if let Some((_, _, reply)) = self.proofs.host_searches.remove(&id) {
                                let _ = reply.send(Some(peer));
                            }
                        }
                        Err(e) => debug!(target: LOG, %host, error = %e, "host record refused"),
                    }
                }
            }
            kad::QueryResult::StartProviding(Err(e)) => {
                debug!(target: LOG, error = ?e, "provider announcement incomplete")
            }
            _ => {}
        }
        if step.last {
            // Dropping the sender closes the search's channel.
            self.provider_searches.remove(&id);
            if let Some((_, _, reply)) = self.proofs.host_searches.remove(&id) {
                let _ = reply.send(None);
            }
        }
    }

    fn on_exchange(&mut self, event: request_response::Event<super::exchange::Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    if let Err(e) = self.serve_tx.try_send(InboundRequest { peer, request, channel }) {
                        let InboundRequest { channel, .. } = match e {
                            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
                        };
                        let _ =
                            self.swarm.behaviour_mut().exchange.send_response(channel, Response::status(Status::Busy));
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                debug!(target: LOG, %peer, %error, "block request failed");
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(target: LOG, %peer, %error, "inbound block request dropped");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
