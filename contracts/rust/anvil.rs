//! A local anvil (the pinned one from `contracts/node_modules`) on a free loopback port, with its
//! funded dev accounts' keys, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const LOG: &str = "vellum::anvil";

/// How long anvil may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why anvil did not start.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// The binary is not where `npm ci` in `contracts/` puts it.
    #[error("anvil not found at {0} (run contracts/scripts/test.sh or `npm ci` in contracts/, or set VELLUM_ANVIL)")]
    NotInstalled(PathBuf),
    /// Starting or talking to the process failed.
    #[error("anvil: {0}")]
    Io(#[from] std::io::Error),
    /// It exited or printed nothing usable in time.
    #[error("anvil did not start: {0}")]
    Start(String),
}

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    keys: Vec<String>,
}

impl Anvil {
    /// The binary: `VELLUM_ANVIL`, else the npm-installed one beside this crate.
    pub fn binary() -> PathBuf {
        std::env::var_os("VELLUM_ANVIL").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        })
    }

    /// Starts anvil on 127.0.0.1 with a free port and chain id 31337, mining a block per
    /// transaction.
    pub fn start() -> Result<Self, AnvilError> {
        Self::start_with(None)
    }

    /// Starts anvil mining a block every `block_time` seconds (like a live chain: the clock and
    /// the block hashes move on while nothing is sent), or per transaction when `None`.
    pub fn start_with(block_time: Option<u64>) -> Result<Self, AnvilError> {
        let binary = Self::binary();
        if !binary.exists() {
            return Err(AnvilError::NotInstalled(binary));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut args = vec!["--host".to_owned(), "127.0.0.1".into(), "--port".into(), port.to_string()];
        args.extend(["--chain-id".into(), "31337".into()]);
        if let Some(secs) = block_time {
            args.extend(["--block-time".into(), secs.to_string()]);
        }
        let mut child = Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| AnvilError::Start("no standard output".into()))?;
        // One thread reads anvil's output for as long as it runs (a full pipe would stall it),
        // handing over the dev keys and the moment it listens.
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<String>, String>>(1);
        std::thread::spawn(move || {
            let mut keys = Vec::new();
            let mut in_keys = false;
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sent {
                    tracing::trace!(target: LOG, "{line}");
                    continue;
                }
                if line.starts_with("Private Keys") {
                    in_keys = true;
                } else if line.starts_with("Wallet") || line.starts_with("Chain ID") {
                    in_keys = false;
                } else if in_keys && let Some(key) = line.split_whitespace().nth(1).filter(|k| k.starts_with("0x")) {
                    keys.push(key.to_owned());
                } else if line.starts_with("Listening on") {
                    sent = true;
                    let _ = tx.send(Ok(std::mem::take(&mut keys)));
                }
            }
            if !sent {
                let _ = tx.send(Err("exited before listening".into()));
            }
        });
        let mut anvil = Anvil { child, port, keys: Vec::new() };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(keys)) if !keys.is_empty() => anvil.keys = keys,
            Ok(Ok(_)) => return Err(AnvilError::Start("it printed no dev keys".into())),
            Ok(Err(e)) => return Err(AnvilError::Start(e)),
            Err(_) => return Err(AnvilError::Start(format!("not listening within {START_TIMEOUT:?}"))),
        }
        tracing::info!(target: LOG, port, "anvil started");
        Ok(anvil)
    }

    /// The JSON-RPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The dev accounts' private keys (0x hex), each funded with ether.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
