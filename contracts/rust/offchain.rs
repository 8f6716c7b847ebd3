//! A periodic proof as it travels off the chain (issue 15): what a host publishes for a required
//! (slot, period) so that validators can check it without a transaction, and what it would send
//! in `defendProof` if accused. The chain's state fixes the public inputs; the host states the
//! ones it used so that a validator can tell a stale or wrong proof from a corrupt message, but a
//! validator checks against the chain's values, never the stated ones.
//!
//! The wire form is fixed-size (368 bytes, big-endian): slot id (32), period (8), slot index
//! (8), dataset root (32), entropy (32), the proof's eight words (256). Anything of another size
//! is refused before it is looked at, which bounds what a peer can make a node parse.
//!
//! A validator that missed a proof asks the host for it, and finds the host from its wallet
//! address: the host stores a [`HostRecord`] in the DHT under [`HostRecord::key`], its libp2p
//! peer id signed by its wallet (EIP-191) for one marketplace, so that nobody else can point a
//! validator at another peer in the host's name.

use alloy::primitives::{Address, B256, Signature, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;

/// Bytes of a published proof on the wire.
pub const PUBLISHED_PROOF_BYTES: usize = 32 + 8 + 8 + 32 + 32 + 8 * 32;

/// A periodic proof published off the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublishedProof {
    /// The slot.
    pub slot_id: B256,
    /// The period it answers.
    pub period: u64,
    /// The slot's index in its request (a public input).
    pub slot_index: u64,
    /// The request's dataset root the host used (a public input).
    pub dataset_root: B256,
    /// The period's entropy the host used (a public input).
    pub entropy: U256,
    /// The Groth16 proof as `uint256[8]` (A, B, C), as `defendProof` takes it.
    pub proof: [U256; 8],
}

/// Why bytes are not a published proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a published proof is {PUBLISHED_PROOF_BYTES} bytes, not {0}")]
pub struct WrongSize(pub usize);

impl PublishedProof {
    /// The wire form.
    pub fn to_bytes(&self) -> [u8; PUBLISHED_PROOF_BYTES] {
        let mut out = [0u8; PUBLISHED_PROOF_BYTES];
        out[..32].copy_from_slice(self.slot_id.as_slice());
        out[32..40].copy_from_slice(&self.period.to_be_bytes());
        out[40..48].copy_from_slice(&self.slot_index.to_be_bytes());
        out[48..80].copy_from_slice(self.dataset_root.as_slice());
        out[80..112].copy_from_slice(&self.entropy.to_be_bytes::<32>());
        for (i, word) in self.proof.iter().enumerate() {
            out[112 + 32 * i..144 + 32 * i].copy_from_slice(&word.to_be_bytes::<32>());
        }
        out
    }

    /// Reads the wire form; any other size is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WrongSize> {
        if bytes.len() != PUBLISHED_PROOF_BYTES {
            return Err(WrongSize(bytes.len()));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let word_at = |at: usize| U256::from_be_slice(&bytes[at..at + 32]);
        let mut proof = [U256::ZERO; 8];
        for (i, word) in proof.iter_mut().enumerate() {
            *word = word_at(112 + 32 * i);
        }
        Ok(Self {
            slot_id: B256::from_slice(&bytes[..32]),
            period: u64_at(32),
            slot_index: u64_at(40),
            dataset_root: B256::from_slice(&bytes[48..80]),
            entropy: word_at(80),
            proof,
        })
    }

    /// The proof's words as 32-byte big-endian arrays (what an off-chain verifier decodes).
    pub fn proof_words(&self) -> [[u8; 32]; 8] {
        self.proof.map(|w| w.to_be_bytes::<32>())
    }
}

/// Longest peer id accepted in a host record (an identity-hashed Ed25519 key is 38 bytes).
pub const MAX_PEER_ID_BYTES: usize = 64;

/// A host's libp2p peer id, signed by its wallet, as stored in the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// The peer id's bytes.
    pub peer: Vec<u8>,
    /// The wallet's EIP-191 signature of [`HostRecord::message`].
    pub signature: [u8; 65],
}

/// Why a host record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRecordError {
    /// Not 65 bytes of signature followed by a peer id of a sane length.
    #[error("a host record is a 65-byte signature and a peer id of 1 to {MAX_PEER_ID_BYTES} bytes, not {0} bytes")]
    Malformed(usize),
    /// The signature does not recover to an address.
    #[error("the host record's signature is not valid")]
    BadSignature,
    /// Signed by another wallet than the one it is stored for.
    #[error("the host record is signed by {signer}, not by {expected}")]
    WrongSigner {
        /// Who signed it.
        signer: Address,
        /// Whose record it claims to be.
        expected: Address,
    },
    /// Signing failed.
    #[error("signing the host record: {0}")]
    Sign(String),
}

impl HostRecord {
    /// The DHT key of `host`'s record in `marketplace`.
    pub fn key(marketplace: Address, host: Address) -> Vec<u8> {
        let mut key = b"/vellum/host/".to_vec();
        key.extend_from_slice(marketplace.as_slice());
        key.extend_from_slice(host.as_slice());
        key
    }

    /// What the wallet signs: the marketplace, the host and the peer id.
    pub fn message(marketplace: Address, host: Address, peer: &[u8]) -> Vec<u8> {
        let mut m = b"vellum host record\n".to_vec();
        m.extend_from_slice(marketplace.as_slice());
        m.extend_from_slice(host.as_slice());
        m.extend_from_slice(peer);
        m
    }

    /// Signs `peer` as the peer of `signer`'s wallet in `marketplace`.
    pub fn sign(signer: &PrivateKeySigner, marketplace: Address, peer: &[u8]) -> Result<Self, HostRecordError> {
        if peer.is_empty() || peer.len() > MAX_PEER_ID_BYTES {
            return Err(HostRecordError::Malformed(peer.len()));
        }
        let message = Self::message(marketplace, signer.address(), peer);
        let signature =
            signer.sign_message_sync(&message).map_err(|e| HostRecordError::Sign(e.to_string()))?.as_bytes();
        Ok(Self { peer: peer.to_vec(), signature })
    }

    /// The stored form: signature, then peer id.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signature.to_vec();
        out.extend_from_slice(&self.peer);
        out
    }

    /// Reads a stored record and checks that `host` signed it for `marketplace`.
    pub fn verify(bytes: &[u8], marketplace: Address, host: Address) -> Result<Self, HostRecordError> {
        if bytes.len() <= 65 || bytes.len() > 65 + MAX_PEER_ID_BYTES {
            return Err(HostRecordError::Malformed(bytes.len()));
        }
        let (sig, peer) = bytes.split_at(65);
        let signature = Signature::try_from(sig).map_err(|_| HostRecordError::BadSignature)?;
        let signer = signature
            .recover_address_from_msg(Self::message(marketplace, host, peer))
            .map_err(|_| HostRecordError::BadSignature)?;
        if signer != host {
            return Err(HostRecordError::WrongSigner { signer, expected: host });
        }
        let mut signature = [0u8; 65];
        signature.copy_from_slice(sig);
        Ok(Self { peer: peer.to_vec(), signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_record_verifies_only_for_its_wallet_and_marketplace() {
        let host = PrivateKeySigner::random();
        let other = PrivateKeySigner::random();
        let market = Address::repeat_byte(9);
        let peer = vec![0x00, 0x24, 0x08, 0x01, 7, 7, 7];
        let bytes = HostRecord::sign(&host, market, &peer).expect("sign").to_bytes();
        let record = HostRecord::verify(&bytes, market, host.address()).expect("valid");
        assert_eq!(record.peer, peer);
        // someone else's wallet, another marketplace, another peer: refused
        assert!(matches!(
            HostRecord::verify(&bytes, market, other.address()),
            Err(HostRecordError::WrongSigner { .. })
        ));
        assert!(HostRecord::verify(&bytes, Address::repeat_byte(8), host.address()).is_err());
        let mut swapped = bytes.clone();
        *swapped.last_mut().expect("peer byte") ^= 1;
        assert!(HostRecord::verify(&swapped, market, host.address()).is_err());
        let forged = HostRecord::sign(&other, market, &peer).expect("sign").to_bytes();
        assert!(HostRecord::verify(&forged, market, host.address()).is_err());
        // sizes
        assert_eq!(HostRecord::verify(&bytes[..65], market, host.address()), Err(HostRecordError::Malformed(65)));
        assert_eq!(HostRecord::verify(&[0u8; 200], market, host.address()), Err(HostRecordError::Malformed(200)));
        assert!(HostRecord::sign(&host, market, &[]).is_err());
        assert_ne!(HostRecord::key(market, host.address()), HostRecord::key(market, other.address()));
    }

    fn sample() -> PublishedProof {
        PublishedProof {
            slot_id: B256::repeat_byte(0x11),
            period: 0x0102_0304_0506_0708,
            slot_index: 3,
            dataset_root: B256::repeat_byte(0x22),
            entropy: U256::from(0xdead_beefu64) << 200,
            proof: std::array::from_fn(|i| U256::from(i as u64 + 1) << (8 * i)),
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_has_a_fixed_size() {
        let p = sample();
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), 368);
        assert_eq!(PublishedProof::from_bytes(&bytes), Ok(p));
        assert_eq!(&bytes[32..40], &[1, 2, 3, 4, 5, 6, 7, 8], "big-endian period after the slot id");
        assert_eq!(p.proof_words()[1], p.proof[1].to_be_bytes::<32>());
    }

    #[test]
    fn any_other_size_is_refused_before_it_is_read() {
        let bytes = sample().to_bytes();
        assert_eq!(PublishedProof::from_bytes(&bytes[..367]), Err(WrongSize(367)));
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(PublishedProof::from_bytes(&long), Err(WrongSize(369)));
        assert_eq!(PublishedProof::from_bytes(&[]), Err(WrongSize(0)));
    }
}
