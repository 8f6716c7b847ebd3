//! Bad input gets a clear error and the node keeps serving: invalid and unknown CIDs, dials to
//! peers that cannot be reached, and malformed or oversized block-exchange messages.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};
use node::content::{ContentId, Manifest};
use node::net::exchange::{Request, RequestKind, Response, ResponseKind};
use prost::Message;
use vellum_testkit::{TestNode, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_unknown_cids_and_unreachable_peers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(&dir.path().join("n"), &[])?;
    for path in [
        "/download/not-a-cid",
        "/data/not-a-cid",
        "/data/zzzz/exists",
        "/data/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/network/manifest",
        "/data/%00%01/network/stream",
    ] {
        let resp = node.get(path).await?;
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await?;
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {body}");
    }
    let resp = node.http.delete(format!("{}/data/bogus", node.process.api)).send().await?;
    assert_eq!(resp.status(), 400);

    // A well-formed CID that nobody has.
    let unknown = ContentId::for_manifest(b"nobody has this").to_string();
    for path in
        [format!("/download/{unknown}"), format!("/data/{unknown}"), format!("/data/{unknown}/network/manifest")]
    {
        let resp = node.get(&path).await?;
        assert_eq!(resp.status(), 404, "{path}");
    }
    let exists: serde_json::Value = node.get(&format!("/data/{unknown}/exists")).await?.json().await?;
    assert_eq!(exists["has"], false);

    // Dialing a peer nobody can reach fails clearly and in bounded time.
    let stranger = PeerId::random();
    for query in ["?addrs=/ip4/127.0.0.1/tcp/1", ""] {
        let started = Instant::now();
        let resp = node.get(&format!("/connect/{stranger}{query}")).await?;
        assert_eq!(resp.status(), 400, "connect{query}");
        let body: serde_json::Value = resp.json().await?;
        assert!(body["message"].as_str().is_some_and(|m| m.contains("connect")), "{body}");
        assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    }
    assert_eq!(node.get("/connect/not-a-peer").await?.status(), 400);
    assert_eq!(node.get(&format!("/connect/{stranger}?addrs=garbage")).await?.status(), 400);

    // Uploads with unusable metadata are refused before any byte is stored.
    let resp = node
        .http
        .post(format!("{}/upload", node.process.api))
        .header("content-type", "not a mime type")
        .body(vec![1u8; 10])
        .send()
        .await?;
    assert_eq!(resp.status(), 422);
    let space: serde_json::Value = node.get("/space").await?.json().await?;
    assert_eq!(space["quotaUsedBytes"], 0);
    assert_eq!(node.get("/no/such/endpoint").await?.status(), 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_over_quota_uploads_store_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(&dir.path().join("n"), &["--storage-quota", "1MiB"])?;
    let data_dir = dir.path().join("n");

    // A client that promises 512 KiB, sends 100 KiB and hangs up.
    let addr = node.process.api.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let mut sock = TcpStream::connect(&addr)?;
    write!(sock, "POST /api/codex/v1/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n", 512 << 10)?;
    sock.write_all(&test_bytes(100 << 10, 3))?;
    sock.flush()?;
    drop(sock);

    // Over the quota: refused with 507, nothing kept.
    let resp = node.http.post(format!("{}/upload", node.process.api)).body(test_bytes(2 << 20, 4)).send().await?;
    assert_eq!(resp.status(), 507);
    let body: serde_json::Value = resp.json().await?;
    assert!(body["message"].as_str().is_some_and(|m| m.contains("quota")), "{body}");

    let mut clean = false;
    for _ in 0..50 {
        let space: serde_json::Value = node.get("/space").await?.json().await?;
        let tmp = std::fs::read_dir(data_dir.join("tmp"))?.count();
        if space["quotaUsedBytes"] == 0 && tmp == 0 {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(clean, "a truncated or refused upload left data behind");
    let list: serde_json::Value = node.get("/data").await?.json().await?;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(0));
    // Within the quota, uploads still work.
    let small = test_bytes(300 << 10, 5);
    let cid = node.upload(small.clone()).await?;
    assert!(node.download(&format!("/data/{cid}")).await? == small);
    Ok(())
}

/// Sends raw bytes on the block-exchange protocol and reads whatever comes back.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::other("this client serves nothing"))
    }

    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        io.take(8 << 20).read_to_end(&mut out).await?;
        if out.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "stream closed without an answer"));
        }
        Ok(out)
    }

    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_are_dropped() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(&dir.path().join("n"), &[])?;
    let data = test_bytes(200_000, 5);
    let cid: ContentId = node.upload(data.clone()).await?.parse()?;
    let info = node.info().await?;
    let peer: PeerId = info["id"].as_str().unwrap_or_default().parse()?;
    let addr: Multiaddr = info["addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("/tcp/"))
        .unwrap_or_default()
        .parse()?;

    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(node::net::exchange::PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.dial(DialOpts::peer_id(peer).addresses(vec![addr]).build())?;

    let valid = Request { kind: Some(RequestKind::Manifest(cid.to_bytes())) }.encode_to_vec();
    let mut oversized = (64u32 << 20).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 1024]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("length prefix of 4 GiB", u32::MAX.to_be_bytes().to_vec(), false),
        ("64 MiB message", oversized, false),
        ("garbage protobuf", frame(&[0xff; 64]), false),
        ("truncated frame", vec![0, 0, 0, 50, 1, 2, 3], false),
        ("valid request after all that", frame(&valid), true),
    ];
    for (name, bytes, expect_answer) in cases {
        swarm.behaviour_mut().send_request(&peer, bytes);
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => return Some(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => return None,
                    _ => {}
                }
            }
        })
        .await?;
        match (expect_answer, outcome) {
            (false, None) => {}
            (false, Some(r)) => panic!("{name}: the node answered {} bytes", r.len()),
            (true, None) => panic!("{name}: no answer"),
            (true, Some(r)) => {
                let len = u32::from_be_bytes(r[..4].try_into()?) as usize;
                let resp = Response::decode(&r[4..4 + len])?;
                let Some(ResponseKind::Manifest(m)) = resp.kind else { panic!("{name}: {resp:?}") };
                assert!(cid.matches_manifest(&m));
                assert_eq!(Manifest::decode_checked(&m)?.dataset_size, 200_000);
            }
        }
    }
    // And the node still serves its API.
    assert!(node.download(&format!("/data/{cid}")).await? == data);
    Ok(())
}
