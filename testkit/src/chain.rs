//! A local marketplace for end-to-end tests: anvil mining a block a second, the contracts
//! deployed with a small proof shape's key and short periods, funded wallets whose keys sit in
//! 0600 files, the flags that put a `vellum node` in persistence mode, and a TCP proxy that can
//! cut a node off the chain endpoint.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::vellum_binary;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use circuits::r1cs::ProofShape;
use contracts::{Anvil, Deployment, Marketplace, TestToken, deploy, dev_config_with_period};
use prover::EvmVerifyingKey;
use tokio::sync::watch;

/// Seconds per proof period in these tests.
pub const PERIOD: u64 = 6;

/// The proof shape of these tests: 64 cells of 64 bytes per slot (4 KiB slots), 3 samples.
pub const SHAPE: ProofShape = ProofShape { samples: 3, slot_depth: 6, dataset_levels: 1, cell_size: 64 };

/// Anvil, the deployment and the wallets.
pub struct MarketNet {
    /// The chain.
    pub anvil: Anvil,
    /// The contracts' addresses.
    pub deployment: Deployment,
    /// The directory of the keys, key files, node data and logs.
    pub dir: tempfile::TempDir,
    /// The proving key whose verifying key the verifier holds.
    pub prover_key: PathBuf,
    /// A provider sending from wallet 0, the deployer.
    pub deployer: DynProvider,
}

impl MarketNet {
    /// Starts anvil (a block a second), makes keys for [`SHAPE`] and deploys with
    /// [`PERIOD`]-second periods and a dispersal window of one period.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&SHAPE, PERIOD).await
    }

    /// Like [`MarketNet::start`] with another proof shape and period length.
    pub async fn start_with(shape: &ProofShape, period: u64) -> anyhow::Result<Self> {
        let anvil = Anvil::start_with(Some(1))?;
        let dir = tempfile::tempdir()?;
        let keys = prover::setup(shape)?;
        let vk = node::market::verifying_key_words(&EvmVerifyingKey::new(&keys.pk.vk));
        let (prover_key, _) = prover::write_keys(&keys, &dir.path().join("keys"))?;
        let deployer = provider(&anvil, 0);
        // Fair dispersal over one period: hosts reserve a new slot one after the other.
        let deployment = deploy(&deployer, &vk, |t, v| dev_config_with_period(t, v, period, period)).await?;
        Ok(Self { anvil, deployment, dir, prover_key, deployer })
    }

    /// Dev wallet `i`'s address.
    pub fn address(&self, i: usize) -> Address {
        signer(&self.anvil, i).address()
    }

    /// Mints `amount` tokens to wallet `i`.
    pub async fn fund(&self, i: usize, amount: U256) -> anyhow::Result<()> {
        let token = TestToken::new(self.deployment.token, self.deployer.clone());
        token.mint(self.address(i), amount).send().await?.get_receipt().await?;
        Ok(())
    }

    /// Wallet `i`'s token balance.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(TestToken::new(self.deployment.token, self.deployer.clone()).balanceOf(who).call().await?)
    }

    /// The marketplace, read through the deployer's provider.
    pub fn market(&self) -> Marketplace::MarketplaceInstance<DynProvider> {
        Marketplace::new(self.deployment.marketplace, self.deployer.clone())
    }

    /// Flags for a node in persistence mode with wallet `i` on `endpoint` (anvil's, or a
    /// proxy's).
    pub fn node_flags(&self, i: usize, endpoint: &str) -> anyhow::Result<Vec<String>> {
        let key_file = self.key_file(i)?;
        Ok(vec![
            "--eth-provider".into(),
            endpoint.into(),
            "--eth-private-key-file".into(),
            key_file.display().to_string(),
            "--marketplace-address".into(),
            format!("{:#x}", self.deployment.marketplace),
            "--prover-key".into(),
            self.prover_key.display().to_string(),
            "--log-level".into(),
            "info,vellum::market=debug,vellum::chain=debug".into(),
        ])
    }

    /// Wallet `i`'s key in a 0600 file.
    pub fn key_file(&self, i: usize) -> anyhow::Result<PathBuf> {
        let key_file = self.dir.path().join(format!("wallet-{i}.key"));
        std::fs::write(&key_file, &self.anvil.keys()[i])?;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
        Ok(key_file)
    }

    /// A provider sending from wallet `i`.
    pub fn wallet(&self, i: usize) -> DynProvider {
        provider(&self.anvil, i)
    }

    /// A data directory for a node.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Passes a scenario's outcome through; when it failed or ran out of time, first prints the
    /// last lines of every log the nodes and validators wrote, so a failure in CI can be read.
    pub fn report(&self, outcome: Result<anyhow::Result<()>, tokio::time::error::Elapsed>) -> anyhow::Result<()> {
        let outcome = outcome.map_err(anyhow::Error::from).and_then(|r| r);
        if outcome.is_err() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("==== last lines of {} ====", log.display());
                for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                    eprintln!("{line}");
                }
            }
        }
        outcome
    }
}

/// Lines of each log printed when a scenario fails.
const LOG_TAIL_LINES: usize = 60;

fn signer(anvil: &Anvil, i: usize) -> PrivateKeySigner {
    anvil.keys()[i].parse().expect("dev key")
}

fn provider(anvil: &Anvil, i: usize) -> DynProvider {
    let url = anvil.endpoint().parse().expect("url");
    ProviderBuilder::new().wallet(signer(anvil, i)).connect_http(url).erased()
}

/// A TCP proxy to the chain endpoint that a test can cut (connections dropped, new ones refused)
/// and restore.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`: give this to the node instead of the endpoint.
    pub endpoint: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (Arc::clone(&up), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::Acquire) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self { endpoint, up, cut, _task: task })
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::Release);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

/// Anvil's `host:port`.
pub fn anvil_address(anvil: &Anvil) -> String {
    anvil.endpoint().trim_start_matches("http://").to_owned()
}

/// Reads a JSON body or fails with the status and text.
pub async fn json(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// Whether `path` contains `needle`.
pub fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The flags as `&str`s.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A `vellum validator` process (serving metrics on a free port), killed when dropped.
pub struct ValidatorProcess {
    child: Child,
    /// Its metrics endpoint.
    pub metrics: String,
}

impl ValidatorProcess {
    /// Starts `vellum validator` with wallet `wallet`, in group `groups.1` of `groups.0`, and
    /// waits for its metrics endpoint.
    pub fn start(net: &MarketNet, wallet: usize, groups: (u64, u64), dir: &Path, log: &Path) -> anyhow::Result<Self> {
        let key = net.key_file(wallet)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut child = Command::new(vellum_binary())
            .args(["validator", "--data-dir"])
            .arg(dir)
            .args(["--eth-provider", &net.anvil.endpoint(), "--eth-private-key-file"])
            .arg(key)
            .args(["--marketplace-address", &format!("{:#x}", net.deployment.marketplace)])
            .args(["--validator-groups", &groups.0.to_string(), "--validator-group-index", &groups.1.to_string()])
            .args(["--log-level", "info,vellum::validator=debug", "--metrics", "--metrics-port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("Metrics at ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(metrics) => Ok(Self { child, metrics }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the validator did not report its metrics endpoint")
            }
        }
    }

    /// A metric's value from its endpoint (None when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let text = reqwest::get(&self.metrics).await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.split_once(' ').filter(|(k, _)| *k == name).and_then(|(_, v)| v.trim().parse().ok())))
    }
}

impl Drop for ValidatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
