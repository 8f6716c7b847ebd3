//! The block-exchange protocol: prost messages over libp2p request/response streams.
//!
//! A request asks for a manifest by CID or for a run of blocks of a content tree (with a
//! voucher paying for them, where the provider charges for bandwidth), or carries a voucher on
//! its own; the answer carries the manifest bytes, or the blocks each with its Merkle proof, or
//! the provider's terms when it wants payment first, or a status. Every
//! message is framed by a 4-byte big-endian length that is checked against a hard limit before
//! anything is allocated, so an oversized or malformed message costs the sender its stream and
//! nothing more. The receiver verifies every block (see `fetch`) before it touches the store.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message;

/// The protocol's name on the wire.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vellum/blockexc/1.0.0");
/// Largest request accepted.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Most blocks a request may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 16;
/// Largest response accepted: 16 blocks of up to 64 KiB plus proofs, with room for larger
/// block sizes at fewer blocks per request.
pub const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;

/// A request for a manifest or for blocks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// What is asked for.
    #[prost(oneof = "RequestKind", tags = "1, 2, 3")]
    pub kind: Option<RequestKind>,
}

/// The kinds of request.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RequestKind {
    /// The manifest with this CID (binary form).
    #[prost(bytes, tag = "1")]
    Manifest(Vec<u8>),
    /// A run of blocks.
    #[prost(message, tag = "2")]
    Blocks(BlocksRequest),
    /// A voucher on its own (the exact amount owed once a transfer is over); answered with
    /// [`Status::Paid`] or the terms with the reason it was refused.
    #[prost(message, tag = "3")]
    Pay(Voucher),
}

/// A signed voucher on a bandwidth channel (see `contracts::bandwidth`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Voucher {
    /// The channel's id (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub channel: Vec<u8>,
    /// The total owed on the channel, big-endian, at most 32 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub cumulative: Vec<u8>,
    /// The payer's signature (65 bytes: r, s, v).
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}

/// A provider's terms, sent when it wants a voucher before it serves more.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PaymentTerms {
    /// Tokens per byte beyond the allowance (big-endian).
    #[prost(bytes = "vec", tag = "1")]
    pub price_per_byte: Vec<u8>,
    /// Bytes served free to each peer.
    #[prost(uint64, tag = "2")]
    pub free_bytes: u64,
    /// Tokens a peer may owe beyond its vouchers (big-endian).
    #[prost(bytes = "vec", tag = "3")]
    pub credit: Vec<u8>,
    /// The chain the channels contract is on.
    #[prost(uint64, tag = "4")]
    pub chain_id: u64,
    /// The channels contract (20 bytes).
    #[prost(bytes = "vec", tag = "5")]
    pub contract: Vec<u8>,
    /// The provider's wallet, which channels must pay (20 bytes).
    #[prost(bytes = "vec", tag = "6")]
    pub provider: Vec<u8>,
    /// How much more than the provider holds from this peer in all lets the request through
    /// (big-endian; empty when a voucher was refused).
    #[prost(bytes = "vec", tag = "7")]
    pub needed: Vec<u8>,
    /// The highest voucher the provider holds on `channel` (big-endian).
    #[prost(bytes = "vec", tag = "8")]
    pub held: Vec<u8>,
    /// Why the request's voucher was refused, if it was.
    #[prost(string, optional, tag = "9")]
    pub refused: Option<String>,
    /// The channel the provider has this peer paying through (empty: none yet).
    #[prost(bytes = "vec", tag = "10")]
    pub channel: Vec<u8>,
}

/// Blocks `start .. start + count` of the content tree `tree_cid`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlocksRequest {
    /// Binary CID of the content tree.
    #[prost(bytes = "vec", tag = "1")]
    pub tree_cid: Vec<u8>,
    /// First block index.
    #[prost(uint64, tag = "2")]
    pub start: u64,
    /// Number of blocks, at most [`MAX_BLOCKS_PER_REQUEST`].
    #[prost(uint32, tag = "3")]
    pub count: u32,
    /// Payment for these blocks and those before, where the provider charges.
    #[prost(message, optional, tag = "4")]
    pub voucher: Option<Voucher>,
}

/// The answer to a [`Request`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The answer.
    #[prost(oneof = "ResponseKind", tags = "1, 2, 3, 4")]
    pub kind: Option<ResponseKind>,
}

/// The kinds of answer.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseKind {
    /// The manifest's protobuf encoding.
    #[prost(bytes, tag = "1")]
    Manifest(Vec<u8>),
    /// The blocks asked for.
    #[prost(message, tag = "2")]
    Blocks(BlockBatch),
    /// Why nothing was sent.
    #[prost(enumeration = "Status", tag = "3")]
    Status(i32),
    /// The provider wants a voucher first.
    #[prost(message, tag = "4")]
    PaymentRequired(PaymentTerms),
}

/// Blocks with their proofs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockBatch {
    /// The blocks, in index order.
    #[prost(message, repeated, tag = "1")]
    pub blocks: Vec<DeliveredBlock>,
}

/// One block and the sibling path proving it against the tree root.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeliveredBlock {
    /// Block index in the dataset.
    #[prost(uint64, tag = "1")]
    pub index: u64,
    /// The block's bytes.
    #[prost(bytes = "bytes", tag = "2")]
    pub data: bytes::Bytes,
    /// Sibling hashes, lowest level first, 32 bytes each.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub proof: Vec<Vec<u8>>,
}

/// Why a request was not answered with data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
pub enum Status {
    /// The peer does not hold it.
    NotFound = 0,
    /// The peer is overloaded; ask again later or elsewhere.
    Busy = 1,
    /// The request was invalid.
    BadRequest = 2,
    /// A voucher sent on its own was taken.
    Paid = 3,
}

/// Frames prost messages with a length limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeCodec;

async fn read_framed<T: AsyncRead + Unpin + Send, M: Message + Default>(io: &mut T, limit: usize) -> io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message of {len} bytes exceeds {limit}")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    // Decoding from `Bytes` lets block payloads share this buffer instead of copying it.
    M::decode(bytes::Bytes::from(buf)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_framed<T: AsyncWrite + Unpin + Send, M: Message>(io: &mut T, msg: M, limit: usize) -> io::Result<()> {
    let len = msg.encoded_len();
    if len > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("message of {len} bytes exceeds {limit}")));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Free the message's own buffers before the (possibly slow) write.
    drop(msg);
    io.write_all(&buf).await?;
    io.close().await
}

impl libp2p::request_response::Codec for ExchangeCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        read_framed(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_framed(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        write_framed(io, req, MAX_REQUEST_BYTES).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_framed(io, res, MAX_RESPONSE_BYTES).await
    }
}

impl Response {
    /// A bare status answer.
    pub fn status(status: Status) -> Self {
        Self { kind: Some(ResponseKind::Status(status as i32)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let req = Request {
            kind: Some(RequestKind::Blocks(BlocksRequest { tree_cid: vec![1, 2], start: 5, count: 3, voucher: None })),
        };
        let mut buf = Cursor::new(Vec::new());
        ExchangeCodec.write_request(&PROTOCOL, &mut buf, req.clone()).await.expect("write");
        let mut rd = Cursor::new(buf.into_inner());
        assert_eq!(ExchangeCodec.read_request(&PROTOCOL, &mut rd).await.expect("read"), req);

        // A length prefix past the limit is refused before allocating.
        let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert_eq!(
            ExchangeCodec.read_request(&PROTOCOL, &mut huge).await.expect_err("too big").kind(),
            io::ErrorKind::InvalidData
        );
        // Garbage inside a valid frame is refused.
        let mut junk = vec![0, 0, 0, 3];
        junk.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(ExchangeCodec.read_request(&PROTOCOL, &mut Cursor::new(junk)).await.is_err());
        // A truncated frame is refused.
        assert!(ExchangeCodec.read_request(&PROTOCOL, &mut Cursor::new(vec![0, 0, 0, 9, 1])).await.is_err());
    }
}
