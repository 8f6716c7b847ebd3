//! The validator's libp2p peer: it joins the marketplace's proof topic (broadcast proofs go to
//! the validator's queue) and asks hosts for proofs it did not receive, finding each host from
//! its wallet address through the host's signed record in the DHT (see
//! `contracts::offchain::HostRecord`), then dialing it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use alloy::primitives::{Address, B256};
use contracts::offchain::PublishedProof;
use node::net::proofs::ProofAnswer;
use node::net::{NetworkConfig, NetworkHandle};
use tokio::sync::mpsc;

/// Proofs waiting for the validator's loop (bounded: a flood beyond it is dropped and counted).
const INBOX: usize = 65_536;
/// Hosts whose peers are remembered.
const PEERS_KEPT: usize = 100_000;

/// The validator's network.
pub(crate) struct ValidatorNet {
    net: NetworkHandle,
    marketplace: Address,
    peers: std::sync::Arc<Mutex<HashMap<Address, libp2p::PeerId>>>,
    /// Whether a round of connections to watched hosts is under way.
    connecting: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Where the validator's peer listens and whom it joins through.
pub(crate) struct NetFlags<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) listen_ip: IpAddr,
    pub(crate) tcp_port: u16,
    pub(crate) udp_port: u16,
    pub(crate) bootstrap: &'a [String],
}

impl ValidatorNet {
    /// Starts the peer and joins `marketplace`'s proof topic; returns the network and the queue
    /// of broadcast proofs.
    pub(crate) async fn start(
        flags: NetFlags<'_>,
        marketplace: Address,
    ) -> anyhow::Result<(Self, mpsc::Receiver<PublishedProof>)> {
        let keypair = node::service::load_or_create_key(flags.data_dir)?;
        let bootstrap = flags
            .bootstrap
            .iter()
            .map(|b| node::net::spr::parse_bootstrap(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--bootstrap-node: {e}"))?;
        let net = node::net::spawn(
            NetworkConfig {
                keypair,
                listen_ip: flags.listen_ip,
                tcp_port: flags.tcp_port,
                udp_port: flags.udp_port,
                bootstrap,
            },
            None,
        )?;
        let (tx, rx) = mpsc::channel(INBOX);
        net.join_proofs(marketplace, Some(tx), None).await?;
        tracing::info!(target: "vellum::validator", peer = %net.peer_id(), "on the proof topic");
        let peers = std::sync::Arc::new(Mutex::new(HashMap::new()));
        Ok((Self { net, marketplace, peers, connecting: Default::default() }, rx))
    }

    fn remembered(&self, host: Address) -> Option<libp2p::PeerId> {
        self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&host).copied()
    }

    fn remember(&self, host: Address, peer: Option<libp2p::PeerId>) {
        let mut peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match peer {
            Some(p) => {
                if peers.len() >= PEERS_KEPT {
                    peers.clear();
                }
                peers.insert(host, p);
            }
            None => {
                peers.remove(&host);
            }
        }
    }
}

impl validator::ProofNet for ValidatorNet {
    fn watch(&self, hosts: Vec<Address>) {
        use std::sync::atomic::Ordering;
        if self.connecting.swap(true, Ordering::SeqCst) {
            return; // the last round is still going; the next period tries again
        }
        let (net, marketplace) = (self.net.clone(), self.marketplace);
        let (peers, connecting) = (std::sync::Arc::clone(&self.peers), std::sync::Arc::clone(&self.connecting));
        tokio::spawn(async move {
            for host in hosts {
                let known = peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&host).copied();
                let peer = match known {
                    Some(p) => Some(p),
                    None => net.find_host(marketplace, host).await.ok().flatten(),
                };
                let Some(peer) = peer else { continue };
                match net.connect(peer, Vec::new()).await {
                    Ok(()) => {
                        peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(host, peer);
                    }
                    Err(e) => {
                        tracing::debug!(target: "vellum::validator", %host, error = %e, "watched host not reached")
                    }
                }
            }
            connecting.store(false, Ordering::SeqCst);
        });
    }

    async fn ask(&self, host: Address, slot_id: B256, period: u64) -> Result<Option<PublishedProof>, String> {
        let peer = match self.remembered(host) {
            Some(p) => p,
            None => match self.net.find_host(self.marketplace, host).await.map_err(|e| e.to_string())? {
                Some(p) => {
                    self.remember(host, Some(p));
                    p
                }
                None => return Err(format!("no peer record of host {host} in the DHT")),
            },
        };
        let asked = async {
            self.net.connect(peer, Vec::new()).await.map_err(|e| e.to_string())?;
            self.net.ask_proof(peer, slot_id, period).await.map_err(|e| e.to_string())
        };
        match asked.await {
            Ok(ProofAnswer::Proof(p)) => Ok(Some(*p)),
            Ok(ProofAnswer::NotHeld) => Ok(None),
            Ok(ProofAnswer::Busy) => Err(format!("host {host} is busy")),
            Err(e) => {
                self.remember(host, None); // look it up again next time: it may have moved
                Err(e)
            }
        }
    }
}
