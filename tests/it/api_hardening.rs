//! The REST API under slow, idle, hostile and cross-site clients: stalled uploads and thousands of
//! idle connections leave the node serving, slow bodies are cut with their quota given back, the
//! bounds answer 503 with Retry-After, foreign `Host` and `Origin` are refused while the CLI and
//! allowed origins work, and everything the node writes is private to its owner.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vellum_testkit::{TestNode, check_private, test_bytes};

const API: &str = "/api/codex/v1";

/// `127.0.0.1:PORT` of a node's API.
fn authority(node: &TestNode) -> String {
    node.process.api.trim_start_matches("http://").trim_end_matches(API).to_owned()
}

/// Opens a connection and sends `head` then `body` (no more).
async fn send_raw(node: &TestNode, head: &str, body: &[u8]) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(authority(node)).await?;
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    Ok(s)
}

/// The head of an upload that declares `len` bytes.
fn upload_head(node: &TestNode, len: u64) -> String {
    format!("POST {API}/data HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n", authority(node))
}

/// Reads what the server sends until it closes (or `limit` passes); returns it as text.
async fn read_answer(s: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn used_bytes(node: &TestNode) -> anyhow::Result<u64> {
    let space = node.get_json("/space").await?;
    space["quotaUsedBytes"].as_u64().ok_or_else(|| anyhow::anyhow!("no quotaUsedBytes in {space}"))
}

/// Runs `f` and fails unless it finishes within `limit` (a liveness check, not a speed goal).
async fn within<T>(what: &str, limit: Duration, f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let started = Instant::now();
    let out = tokio::time::timeout(limit, f).await.map_err(|_| anyhow::anyhow!("{what}: no answer in {limit:?}"))??;
    eprintln!("{what}: {:?}", started.elapsed());
    Ok(out)
}

fn raise_fd_limit() {
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = limit.maximum;
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_uploads_and_idle_connections_leave_the_node_serving() -> anyhow::Result<()> {
    raise_fd_limit();
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = TestNode::start(dirs.0.path(), &["--api-header-timeout", "4"])?;
    let b = TestNode::start_bootstrapped(dirs.1.path(), &a, &[]).await?;
    let data = test_bytes(1 << 20, 7);
    let cid = a.upload(data.clone()).await?;

    // 32 uploads that send their headers and a few body bytes, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..32 {
        stalled.push(send_raw(&a, &upload_head(&a, 10 << 20), &[1u8; 100]).await?);
    }
    // 2,000 connections that send nothing at all.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(authority(&a)).await?);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let limit = Duration::from_secs(2);
    let other = test_bytes(1 << 20, 8);
    within("upload", limit, a.upload(other)).await?;
    let (len, hash) = within("download", limit, a.download_hash(&format!("/data/{cid}"))).await?;
    assert_eq!((len, hash), (data.len() as u64, blake3::hash(&data)));
    let (len, hash) = within("peer fetch", limit, b.download_hash(&format!("/data/{cid}/network/stream"))).await?;
    assert_eq!((len, hash), (data.len() as u64, blake3::hash(&data)));
    within("space", limit, a.get_json("/space")).await?;

    // Idle connections are closed once the header timeout passes.
    let mut probe = idle.pop().ok_or_else(|| anyhow::anyhow!("no idle connection"))?;
    let started = Instant::now();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), probe.read(&mut buf)).await??;
    assert_eq!(n, 0, "an idle connection is closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());
    drop(stalled);
    Ok(())
}

#[tokio::test]
async fn slow_uploads_are_cut_and_the_bounds_answer_503() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(
        dir.path(),
        &["--api-upload-block-timeout", "2", "--api-max-uploads", "2", "--api-max-connections", "40"],
    )?;
    let before = used_bytes(&node).await?;

    // A body trickling one byte every 100 ms: cut once 2 s pass without 64 KiB.
    let slow = send_raw(&node, &upload_head(&node, 1 << 20), b"x").await?;
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(8), reader.read(&mut answer)).await??;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "slow upload answered {answer:?}");
    let cut_after = started.elapsed();
    assert!(cut_after >= Duration::from_millis(1500) && cut_after < Duration::from_secs(6), "cut after {cut_after:?}");
    assert_eq!(used_bytes(&node).await?, before, "the cut upload's quota is given back");
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))?.collect();
    assert!(tmp.is_empty(), "the cut upload left {tmp:?}");

    // Two uploads at once are allowed; a third is told to come back.
    let _one = send_raw(&node, &upload_head(&node, 1 << 20), b"y").await?;
    let _two = send_raw(&node, &upload_head(&node, 1 << 20), b"z").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = node.http.post(node.url("/data")).body(vec![1u8; 10]).send().await?;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    // Once the stalled pair is cut, uploads work again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.upload(vec![2u8; 1000]).await?;

    // Connections beyond the bound are answered 503 with Retry-After and closed.
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(TcpStream::connect(authority(&node)).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra =
        send_raw(&node, &format!("GET {API}/space HTTP/1.1\r\nHost: {}\r\n\r\n", authority(&node)), b"").await?;
    let answer = read_answer(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "over the bound: {answer:?}");
    assert!(answer.contains("Retry-After: 1"), "{answer:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.get_json("/space").await?;
    Ok(())
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_allowed_origins_served() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = TestNode::start(dir.path(), &["--api-cors-origin", "https://app.example"])?;
    let http = &node.http;
    let cid = node.upload(b"hello".to_vec()).await?;

    // A page elsewhere posting a "simple" text/plain upload, or changing the log level.
    let r = http
        .post(node.url("/upload"))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let r = http.post(node.url("/debug/chronicles/loglevel?level=TRACE")).header("origin", "http://evil.example");
    assert_eq!(r.send().await?.status(), 403);
    // DNS rebinding: the right address under another name.
    let r = http.get(node.url("/space")).header("host", "evil.example:8080").send().await?;
    assert_eq!(r.status(), 403);
    // A cross-site GET without Origin (an image or a link) that would start a fetch.
    let r = http.get(node.url(&format!("/data/{cid}/network"))).header("sec-fetch-site", "cross-site");
    assert_eq!(r.send().await?.status(), 403);
    // JSON endpoints take JSON only (checked before anything else answers).
    let r = http.post(node.url(&format!("/storage/request/{cid}"))).header("content-type", "text/plain").body("{}");
    assert_eq!(r.send().await?.status(), 415);
    // A preflight from a foreign origin is refused.
    let r = http.request(reqwest::Method::OPTIONS, node.url("/upload")).header("origin", "http://evil.example");
    assert_eq!(r.send().await?.status(), 403);

    // The allowed origin: preflight answered, responses carry CORS headers.
    let r = http
        .request(reqwest::Method::OPTIONS, node.url("/upload"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert!(r.headers()["access-control-allow-methods"].to_str()?.contains("POST"));
    let r = http.get(node.url(&format!("/data/{cid}"))).header("origin", "https://app.example").send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(r.bytes().await?.as_ref(), b"hello");
    // Same origin, and clients that are not browsers.
    let same = format!("http://{}", authority(&node));
    assert_eq!(http.get(node.url("/space")).header("origin", same).send().await?.status(), 200);
    let r = http.get(node.url("/space")).header("host", "localhost").send().await?;
    assert_eq!(r.status(), 200);
    let file = dir.path().join("cli-upload.bin");
    std::fs::write(&file, test_bytes(100_000, 3))?;
    let out = std::process::Command::new(vellum_testkit::vellum_binary())
        .args(["upload", "--api"])
        .arg(&node.process.api)
        .arg(&file)
        .output()?;
    assert!(out.status.success(), "vellum upload: {}", String::from_utf8_lossy(&out.stderr));

    // An absurd slot count is refused before any slot file is opened.
    let r = http.post(node.url(&format!("/data/{cid}/protect?nodes=28187&tolerance=1"))).send().await?;
    assert_eq!(r.status(), 422, "{}", r.text().await?);

    // A quoted file name comes back escaped.
    let r = http
        .post(node.url("/data"))
        .header("content-disposition", "attachment; filename=a\"b.txt")
        .body("named")
        .send()
        .await?;
    let named = r.error_for_status()?.text().await?;
    let r = http.get(node.url(&format!("/data/{named}"))).send().await?;
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"a\\\"b.txt\"");
    Ok(())
}

#[tokio::test]
async fn data_dirs_are_private_exposed_keys_refused_and_bootstrap_failures_logged() -> anyhow::Result<()> {
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    // A data dir that exists with the usual 0755 is made private.
    std::fs::set_permissions(dirs.0.path(), std::fs::Permissions::from_mode(0o755))?;
    let mut a = TestNode::start(dirs.0.path(), &[])?;
    let b = TestNode::start_bootstrapped(dirs.1.path(), &a, &[]).await?;
    let data = test_bytes(300_000, 11);
    let cid = a.upload(data.clone()).await?;
    let (_, hash) = b.download_hash(&format!("/data/{cid}/network/stream")).await?;
    assert_eq!(hash, blake3::hash(&data));
    assert!(check_private(dirs.0.path())? >= 4);
    assert!(check_private(dirs.1.path())? >= 4);

    // A node key others may read is refused, with the command that fixes it.
    a.kill();
    let key = dirs.0.path().join("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let out = std::process::Command::new(vellum_testkit::vellum_binary())
        .args(["node", "--api-port", "0", "--udp-port", "0", "-i", "127.0.0.1", "--data-dir"])
        .arg(dirs.0.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("chmod 600 {}", key.display())), "{stderr}");

    // An unreachable bootstrap node is reported in the log.
    let log = dirs.1.path().join("third.log");
    let third_dir = tempfile::tempdir()?;
    let nobody = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
    let bootstrap = format!("/ip4/127.0.0.1/tcp/9/p2p/{nobody}");
    let _third = TestNode::start_logged(third_dir.path(), &["--bootstrap-node", &bootstrap], Some(&log))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("cannot reach bootstrap node") {
            break;
        }
        assert!(Instant::now() < deadline, "no bootstrap failure in the log:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
