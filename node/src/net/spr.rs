//! Signed peer records, printed as `spr:<base64url>`, and bootstrap addresses.
//!
//! An SPR is libp2p's signed envelope around a peer record (peer id, addresses, sequence number),
//! so a node that reads one knows the addresses really come from that peer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libp2p::core::PeerRecord;
use libp2p::core::SignedEnvelope;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Why a bootstrap address or SPR was refused.
#[derive(Debug, thiserror::Error)]
pub enum SprError {
    /// Not base64url.
    #[error("SPR is not base64url: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Not a signed envelope, or the signature is wrong.
    #[error("SPR does not verify: {0}")]
    Envelope(String),
    /// A multiaddr that does not parse or lacks `/p2p/<peer id>`.
    #[error("bootstrap address {0:?}: expected spr:… or a multiaddr ending in /p2p/<peer id>")]
    Address(String),
    /// Signing failed.
    #[error("could not sign the peer record: {0}")]
    Signing(String),
}

/// Signs a record of `addrs` and prints it as `spr:…`.
pub fn encode(key: &Keypair, addrs: Vec<Multiaddr>) -> Result<String, SprError> {
    let record = PeerRecord::new(key, addrs).map_err(|e| SprError::Signing(e.to_string()))?;
    let bytes = record.into_signed_envelope().into_protobuf_encoding();
    Ok(format!("spr:{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Reads and verifies an `spr:…` string.
pub fn decode(spr: &str) -> Result<(PeerId, Vec<Multiaddr>), SprError> {
    let body = spr.trim().strip_prefix("spr:").unwrap_or(spr.trim());
    // Accept padded input too; some tools add `=`.
    let bytes = URL_SAFE_NO_PAD.decode(body.trim_end_matches('='))?;
    let envelope = SignedEnvelope::from_protobuf_encoding(&bytes).map_err(|e| SprError::Envelope(e.to_string()))?;
    let record = PeerRecord::from_signed_envelope(envelope).map_err(|e| SprError::Envelope(e.to_string()))?;
    Ok((record.peer_id(), record.addresses().to_vec()))
}

/// Parses a `--bootstrap-node` value: an SPR, or a multiaddr with `/p2p/<peer id>`.
pub fn parse_bootstrap(value: &str) -> Result<(PeerId, Vec<Multiaddr>), SprError> {
    if value.trim().starts_with("spr:") {
        return decode(value);
    }
    let mut addr: Multiaddr = value.trim().parse().map_err(|_| SprError::Address(value.to_owned()))?;
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, vec![addr])),
        _ => Err(SprError::Address(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spr_round_trips_and_rejects_tampering() {
        let key = Keypair::generate_ed25519();
        let addrs: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/udp/8090/quic-v1".parse().expect("addr")];
        let spr = encode(&key, addrs.clone()).expect("encode");
        assert!(spr.starts_with("spr:"));
        let (peer, back) = decode(&spr).expect("decode");
        assert_eq!(peer, key.public().to_peer_id());
        assert_eq!(back, addrs);

        let mut bytes = URL_SAFE_NO_PAD.decode(&spr[4..]).expect("b64");
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        assert!(decode(&format!("spr:{}", URL_SAFE_NO_PAD.encode(bytes))).is_err());
        assert!(decode("spr:!!!").is_err());
    }

    #[test]
    fn bootstrap_accepts_multiaddr_with_peer() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let (p, a) = parse_bootstrap(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")).expect("parse");
        assert_eq!(p, peer);
        assert_eq!(a[0].to_string(), "/ip4/127.0.0.1/tcp/4001");
        assert!(parse_bootstrap("/ip4/127.0.0.1/tcp/4001").is_err());
        assert!(parse_bootstrap("nonsense").is_err());
    }
}
