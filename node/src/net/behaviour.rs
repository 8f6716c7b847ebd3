//! The composed libp2p behaviour of a Vellum node.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, gossipsub, identify, kad, ping, request_response};

use super::exchange::{self, ExchangeCodec};
use super::proofs::{self, ProofCodec};

/// Kademlia protocol name: our own, so Vellum's DHT never mixes with IPFS's.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/vellum/kad/1.0.0");
/// Identify's protocol version string.
pub(crate) const IDENTIFY_VERSION: &str = "/vellum/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) exchange: request_response::Behaviour<ExchangeCodec>,
    pub(crate) gossip: gossipsub::Behaviour,
    pub(crate) proofs: request_response::Behaviour<ProofCodec>,
}

/// Largest gossip frame accepted. A frame may carry many messages (a busy peer batches them),
/// so this bounds a frame, not a message: each message is checked to be exactly a published
/// proof's 368 bytes before anything else (see `driver::on_gossip`).
const MAX_GOSSIP_BYTES: usize = 64 * 1024;

impl Behaviour {
    pub(crate) fn new(key: &Keypair) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let peer_id = key.public().to_peer_id();
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(Duration::from_secs(10));
        kad_config.set_parallelism(NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN));
        let store = MemoryStore::with_config(
            peer_id,
            MemoryStoreConfig { max_provided_keys: 1 << 20, max_records: 1 << 16, ..Default::default() },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(Some(kad::Mode::Server));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                .with_agent_version(format!("vellum/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        );
        let exchange = request_response::Behaviour::with_codec(
            ExchangeCodec,
            [(exchange::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(super::REQUEST_TIMEOUT)
                .with_max_concurrent_streams(256),
        );
        // Message ids are the content's hash, so a proof relayed by several peers counts once;
        // messages are signed by their author and checked by every relay before they go on.
        let gossip_config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .message_id_fn(|m| gossipsub::MessageId::from(alloy::primitives::keccak256(&m.data).to_vec()))
            .build()?;
        let gossip = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)?;
        let proofs = request_response::Behaviour::with_codec(
            ProofCodec,
            [(proofs::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(10))
                .with_max_concurrent_streams(64),
        );
        Ok(Self { identify, ping: ping::Behaviour::default(), kad, exchange, gossip, proofs })
    }
}
