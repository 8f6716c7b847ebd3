//! `Chain::send` when the answer to a transaction is lost: anvil behind a proxy that forwards the
//! first `eth_sendRawTransaction` (anvil mines it) and then drops the connection instead of
//! answering. The wallet resends the same transaction, anvil refuses it (its nonce is used), and
//! the call returns the first transaction's receipt: it took effect once, not twice.
//!
//! Needs the pinned anvil (`npm ci` in `contracts/`, which `scripts/test.sh` runs first).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use contracts::client::{Chain, ChainConfig};
use contracts::{Anvil, TestToken, VerifyingKeyWords, deploy, dev_config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the proxy did and is still to do.
#[derive(Default)]
struct Losses {
    /// Answers to `eth_sendRawTransaction` still to lose.
    to_lose: AtomicUsize,
    /// `eth_sendRawTransaction` requests forwarded.
    sends: AtomicUsize,
}

/// Reads one HTTP/1.1 message (head and a `Content-Length` body); `None` at the end of the stream.
async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut byte = [0u8; 1];
    while !message.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        message.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&message).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let start = message.len();
    message.resize(start + length, 0);
    stream.read_exact(&mut message[start..]).await?;
    Ok(Some(message))
}

/// Serves one client connection: each request goes to anvil and its answer comes back, except
/// the answers to be lost, after which the connection is closed without a word.
async fn relay(mut client: TcpStream, anvil: String, losses: Arc<Losses>) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(anvil).await?;
    while let Some(request) = read_message(&mut client).await? {
        upstream.write_all(&request).await?;
        let Some(answer) = read_message(&mut upstream).await? else { return Ok(()) };
        if String::from_utf8_lossy(&request).contains("eth_sendRawTransaction") {
            losses.sends.fetch_add(1, Ordering::SeqCst);
            let lose = losses.to_lose.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if lose {
                return Ok(());
            }
        }
        client.write_all(&answer).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answer_is_lost_takes_effect_once() -> TestResult {
    let anvil = Anvil::start()?;
    let keys = anvil.keys();
    let deployer =
        ProviderBuilder::new().wallet(keys[0].parse::<PrivateKeySigner>()?).connect_http(anvil.endpoint().parse()?);
    // Any key: no proof is verified here.
    let vk = VerifyingKeyWords {
        alpha: [[1; 32]; 2],
        beta: [[2; 32]; 4],
        gamma: [[3; 32]; 4],
        delta: [[4; 32]; 4],
        ic: vec![[[5; 32]; 2]; 4],
    };
    let d = deploy(&deployer, &vk, dev_config).await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy = format!("http://{}", listener.local_addr()?);
    let upstream = anvil.endpoint().trim_start_matches("http://").to_owned();
    let losses = Arc::new(Losses::default());
    let relayed = Arc::clone(&losses);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, upstream.clone(), Arc::clone(&relayed)));
        }
    });

    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, &keys[1])?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    let chain = Chain::connect(&ChainConfig { endpoint: proxy, key_file, marketplace: d.marketplace }).await?;
    let sender = chain.address();
    let recipient = PrivateKeySigner::random().address();
    let amount = U256::from(1_000u64);

    losses.to_lose.store(1, Ordering::SeqCst);
    let receipt = chain.send("mint", chain.token().mint(recipient, amount)).await?;
    assert!(receipt.status());
    assert_eq!(losses.sends.load(Ordering::SeqCst), 2, "sent, answer lost, sent again");
    let token = TestToken::new(d.token, &deployer);
    assert_eq!(token.balanceOf(recipient).call().await?, amount, "minted once");
    assert_eq!(deployer.get_transaction_count(sender).await?, 1, "one transaction mined");

    // The next call gets the next nonce and goes through at once.
    let receipt = chain.send("mint", chain.token().mint(recipient, amount)).await?;
    assert!(receipt.status());
    assert_eq!(losses.sends.load(Ordering::SeqCst), 3);
    assert_eq!(token.balanceOf(recipient).call().await?, amount * U256::from(2));
    Ok(())
}
