//! The proof exchange (issue 15): how periodic proofs reach validators without the chain.
//!
//! - **Broadcast**: a host publishes each periodic proof ([`PublishedProof`], 368 bytes) on the
//!   marketplace's gossipsub topic ([`topic`]); every node of the marketplace relays it after a
//!   check of its form alone (size, per-peer rate), and validators verify it against the chain.
//! - **On request**: a validator that holds no proof of a (slot, period) asks the host directly
//!   over [`PROTOCOL`]: a 40-byte request (slot id, period) and a 1-byte status, followed by the
//!   proof when the host has it. Both directions have fixed sizes, so nothing a peer sends is
//!   buffered beyond 369 bytes.
//! - **Finding the host**: a host stores its wallet-signed peer id in the DHT under its address
//!   ([`contracts::offchain::HostRecord`]); the validator reads it, checks the signature, and
//!   dials the peer (its addresses come from the DHT as for any peer).
//!
//! Every peer gets a budget of messages per window ([`PeerBudget`]) on both paths: a peer past
//! it has its broadcasts dropped (and reported to gossipsub, which lowers its score) and its
//! requests answered `Busy`.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use contracts::offchain::{PUBLISHED_PROOF_BYTES, PublishedProof};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};

/// The request-response protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vellum/proof/1.0.0");
/// Bytes of a request: slot id and period.
pub const REQUEST_BYTES: usize = 40;
/// Broadcasts accepted from one peer per [`BUDGET_WINDOW`] (a host with many slots publishes
/// at most one proof per slot per period).
pub const BROADCASTS_PER_WINDOW: u32 = 2_000;
/// Requests answered for one peer per [`BUDGET_WINDOW`].
pub const REQUESTS_PER_WINDOW: u32 = 200;
/// The window of the per-peer budgets.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Peers whose budgets are tracked at once (older windows are forgotten first).
const TRACKED_PEERS: usize = 4096;

/// The gossipsub topic of a marketplace's proofs.
pub fn topic(marketplace: Address) -> String {
    format!("/vellum/proofs/1/{marketplace:#x}")
}

/// A request for the proof of a slot in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofRequest {
    /// The slot.
    pub slot_id: B256,
    /// The period.
    pub period: u64,
}

/// The answer to a [`ProofRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofAnswer {
    /// The proof.
    Proof(Box<PublishedProof>),
    /// The host keeps no proof of that slot and period.
    NotHeld,
    /// The host refused: this peer asked too often.
    Busy,
}

/// What a node serves to proof requests: its host's outbox.
pub trait ProofSource: Send + Sync + 'static {
    /// The proof of `slot_id` in `period`, if kept.
    fn proof(&self, slot_id: B256, period: u64) -> Option<PublishedProof>;
}

/// Per-peer message budgets over fixed windows.
#[derive(Debug)]
pub(crate) struct PeerBudget {
    limit: u32,
    window: Duration,
    used: HashMap<PeerId, (Instant, u32)>,
}

impl PeerBudget {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, used: HashMap::new() }
    }

    /// Spends one message of `peer`'s budget; false when it has none left in this window.
    pub(crate) fn spend(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.used.len() >= TRACKED_PEERS && !self.used.contains_key(&peer) {
            let window = self.window;
            self.used.retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.used.len() >= TRACKED_PEERS {
                return false; // more live peers than we track: newcomers wait
            }
        }
        let entry = self.used.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// The request-response codec: fixed-size messages, read exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProofCodec;

const STATUS_PROOF: u8 = 1;
const STATUS_NOT_HELD: u8 = 2;
const STATUS_BUSY: u8 = 3;

impl libp2p::request_response::Codec for ProofCodec {
    type Protocol = StreamProtocol;
    type Request = ProofRequest;
    type Response = ProofAnswer;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ProofRequest> {
        let mut buf = [0u8; REQUEST_BYTES];
        io.read_exact(&mut buf).await?;
        let mut period = [0u8; 8];
        period.copy_from_slice(&buf[32..]);
        Ok(ProofRequest { slot_id: B256::from_slice(&buf[..32]), period: u64::from_be_bytes(period) })
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ProofAnswer> {
        let mut status = [0u8; 1];
        io.read_exact(&mut status).await?;
        match status[0] {
            STATUS_PROOF => {
                let mut buf = [0u8; PUBLISHED_PROOF_BYTES];
                io.read_exact(&mut buf).await?;
                let proof =
                    PublishedProof::from_bytes(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok(ProofAnswer::Proof(Box::new(proof)))
            }
            STATUS_NOT_HELD => Ok(ProofAnswer::NotHeld),
            STATUS_BUSY => Ok(ProofAnswer::Busy),
            other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown proof answer status {other}"))),
        }
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: ProofRequest,
    ) -> io::Result<()> {
        let mut buf = [0u8; REQUEST_BYTES];
        buf[..32].copy_from_slice(request.slot_id.as_slice());
        buf[32..].copy_from_slice(&request.period.to_be_bytes());
        io.write_all(&buf).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        answer: ProofAnswer,
    ) -> io::Result<()> {
        match answer {
            ProofAnswer::Proof(p) => {
                io.write_all(&[STATUS_PROOF]).await?;
                io.write_all(&p.to_bytes()).await?;
            }
            ProofAnswer::NotHeld => io.write_all(&[STATUS_NOT_HELD]).await?,
            ProofAnswer::Busy => io.write_all(&[STATUS_BUSY]).await?,
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    #[test]
    fn a_peer_past_its_budget_waits_for_the_next_window() {
        let mut budget = PeerBudget::new(3, Duration::from_secs(10));
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert!((0..3).all(|_| budget.spend(a, t0)));
        assert!(!budget.spend(a, t0 + Duration::from_secs(9)), "fourth in the window");
        assert!(budget.spend(b, t0), "another peer has its own budget");
        assert!(budget.spend(a, t0 + Duration::from_secs(10)), "a new window");
    }

    #[tokio::test]
    async fn messages_round_trip_and_malformed_ones_are_refused() {
        let mut codec = ProofCodec;
        let request = ProofRequest { slot_id: B256::repeat_byte(4), period: 77 };
        let mut wire = Vec::new();
        codec.write_request(&PROTOCOL, &mut futures::io::Cursor::new(&mut wire), request).await.expect("write");
        assert_eq!(wire.len(), REQUEST_BYTES);
        let read = codec.read_request(&PROTOCOL, &mut futures::io::Cursor::new(&wire)).await.expect("read");
        assert_eq!(read, request);
        // a short request is an error, not a guess
        assert!(codec.read_request(&PROTOCOL, &mut futures::io::Cursor::new(&wire[..39])).await.is_err());

        let proof = PublishedProof {
            slot_id: B256::repeat_byte(4),
            period: 77,
            slot_index: 1,
            dataset_root: B256::repeat_byte(5),
            entropy: alloy::primitives::U256::from(9u8),
            proof: [alloy::primitives::U256::from(1u8); 8],
        };
        for answer in [ProofAnswer::Proof(Box::new(proof)), ProofAnswer::NotHeld, ProofAnswer::Busy] {
            let mut wire = Vec::new();
            codec
                .write_response(&PROTOCOL, &mut futures::io::Cursor::new(&mut wire), answer.clone())
                .await
                .expect("write");
            let read = codec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&wire)).await.expect("read");
            assert_eq!(read, answer);
        }
        assert!(codec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&[9u8][..])).await.is_err());
        assert!(codec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&[1u8, 0, 0][..])).await.is_err());
    }
}
