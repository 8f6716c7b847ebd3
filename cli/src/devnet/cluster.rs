//! The devnet's processes: anvil, the contracts deployed by `vellum deploy`, wallets with their
//! key files, and the `vellum node` / `vellum validator` children (this same binary), each
//! logging to a file in the devnet directory and joining the chain by the deployment file.
//! Everything started here stops when it is dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use contracts::{Anvil, Deployment, TestToken};

use vellum_testkit::process::NodeProcess;

/// How long a node may take to report its API.
const NODE_START: Duration = Duration::from_secs(60);

/// Anvil with the contracts deployed, and what the children need to join it.
pub(super) struct Chain {
    pub(super) anvil: Anvil,
    pub(super) deployment: Deployment,
    /// The file `vellum deploy` wrote; nodes and the validator start from it.
    pub(super) deployment_file: PathBuf,
    pub(super) deployer: DynProvider,
    pub(super) prover_key: PathBuf,
    pub(super) dir: PathBuf,
}

/// Writes anvil dev account `i`'s key to `<dir>/wallets/wallet-<i>.key`, readable by its owner only.
pub(super) fn write_key_file(dir: &Path, anvil: &Anvil, i: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("wallets").join(format!("wallet-{i}.key"));
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    let key = anvil.keys().get(i).with_context(|| format!("anvil has no dev account {i}"))?;
    std::fs::write(&path, key)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// Runs `vellum deploy` (this same binary) with wallet `wallet` against anvil, writing the
/// deployment file `out`; `config` are the deploy command's configuration flags.
pub(super) fn run_deploy(
    dir: &Path,
    anvil: &Anvil,
    wallet: usize,
    prover_key: &Path,
    out: &Path,
    config: &[String],
) -> anyhow::Result<()> {
    let log = dir.join("deploy.log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let status = Command::new(std::env::current_exe()?)
        .arg("deploy")
        .args(["--eth-provider", &anvil.endpoint(), "--eth-private-key-file"])
        .arg(write_key_file(dir, anvil, wallet)?)
        .arg("--prover-key")
        .arg(prover_key)
        .arg("--out")
        .arg(out)
        .args(config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file))
        .status()
        .context("running vellum deploy")?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("vellum deploy failed ({status}):\n{text}");
    }
    Ok(())
}

impl Chain {
    /// Wallet `i`'s signer (anvil's dev accounts).
    pub(super) fn signer(&self, i: usize) -> anyhow::Result<PrivateKeySigner> {
        let key = self.anvil.keys().get(i).with_context(|| format!("anvil has no dev account {i}"))?;
        Ok(key.parse()?)
    }

    /// Wallet `i`'s address.
    pub(super) fn address(&self, i: usize) -> anyhow::Result<Address> {
        Ok(self.signer(i)?.address())
    }

    /// Wallet `i`'s key in a file only its owner may read, as the node and validator want it.
    pub(super) fn key_file(&self, i: usize) -> anyhow::Result<PathBuf> {
        write_key_file(&self.dir, &self.anvil, i)
    }

    /// Mints test tokens to wallet `i`.
    pub(super) async fn fund(&self, i: usize, amount: U256) -> anyhow::Result<()> {
        let token = TestToken::new(self.deployment.token, self.deployer.clone());
        token.mint(self.address(i)?, amount).send().await?.get_receipt().await?;
        Ok(())
    }

    /// Wallet `who`'s token balance.
    pub(super) async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(TestToken::new(self.deployment.token, self.deployer.clone()).balanceOf(who).call().await?)
    }

    /// Flags that put a node in persistence mode with wallet `i`.
    pub(super) fn market_flags(&self, i: usize) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            "--eth-provider".into(),
            self.anvil.endpoint(),
            "--eth-private-key-file".into(),
            self.key_file(i)?.display().to_string(),
            "--deployment".into(),
            self.deployment_file.display().to_string(),
            "--prover-key".into(),
            self.prover_key.display().to_string(),
        ])
    }
}

/// A provider that signs with `signer`.
pub(super) fn provider(endpoint: &str, signer: PrivateKeySigner) -> anyhow::Result<DynProvider> {
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(endpoint.parse()?).erased())
}

/// A `vellum node` of the devnet.
pub(super) struct DevNode {
    /// What the timeline calls it.
    pub(super) name: String,
    pub(super) process: NodeProcess,
    http: reqwest::Client,
}

impl DevNode {
    /// Starts a node named `name` with its data and log under `dir`, on free loopback ports,
    /// with metrics, bootstrapping from `bootstrap` when given, plus `extra` flags.
    pub(super) async fn start(
        dir: &Path,
        name: &str,
        bootstrap: Option<&str>,
        extra: Vec<String>,
    ) -> anyhow::Result<Self> {
        let data_dir = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            "0".into(),
            "--udp-port".into(),
            "0".into(),
            "--metrics".into(),
            "--metrics-port".into(),
            "0".into(),
            "--log-level".into(),
            "info,vellum::market=debug".into(),
        ];
        if let Some(spr) = bootstrap {
            args.extend(["--bootstrap-node".into(), spr.to_owned()]);
        }
        args.extend(extra);
        let binary = std::env::current_exe().context("this binary's path")?;
        let log_path = log.clone();
        let process = tokio::task::spawn_blocking(move || {
            NodeProcess::spawn_logging_to(&binary, &args, NODE_START, Some(&log_path))
        })
        .await?
        .with_context(|| format!("starting {name} (its log: {})", log.display()))?;
        Ok(Self { name: name.to_owned(), process, http: reqwest::Client::new() })
    }

    /// `GET {api}{path}` as JSON.
    pub(super) async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self.http.get(format!("{}{path}", self.process.api)).send().await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{} GET {path}: {status} {}", self.name, resp.text().await.unwrap_or_default());
        }
        Ok(resp.json().await?)
    }

    /// `POST {api}{path}` with a JSON body; returns the answer's text.
    pub(super) async fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
        let resp = self.http.post(format!("{}{path}", self.process.api)).json(body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{} POST {path}: {status} {text}", self.name);
        }
        Ok(text)
    }

    /// The node's signed peer record.
    pub(super) async fn spr(&self) -> anyhow::Result<String> {
        Ok(self.get_json("/info").await?["spr"].as_str().context("no spr in /info")?.to_owned())
    }

    /// Uploads bytes; returns the CID.
    pub(super) async fn upload(&self, data: Vec<u8>) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/upload", self.process.api))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("upload: {status} {text}");
        }
        Ok(text.trim().to_owned())
    }

    /// Downloads a dataset through this node (from the network when it is not here).
    pub(super) async fn download(&self, cid: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self.http.get(format!("{}/data/{cid}/network/stream", self.process.api)).send().await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("download {cid}: {status} {}", resp.text().await.unwrap_or_default());
        }
        Ok(resp.bytes().await?.to_vec())
    }

    /// A counter from the node's metrics endpoint (0 when absent).
    pub(super) async fn counter(&self, name: &str) -> u64 {
        let Some(url) = &self.process.metrics else { return 0 };
        let Ok(resp) = self.http.get(url).send().await else { return 0 };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.split_once(' ')?;
                (key == name).then(|| value.trim().parse::<f64>().ok()).flatten()
            })
            .map_or(0, |v| v as u64)
    }

    /// Stops the node (SIGKILL: as abrupt as a host going away).
    pub(super) fn stop(&mut self) {
        self.process.kill();
    }
}

/// The devnet's `vellum validator`, stopped when dropped.
pub(super) struct DevValidator {
    child: Child,
    pub(super) log: PathBuf,
}

impl DevValidator {
    /// Starts a validator with wallet `wallet`, its state and log under `dir`.
    pub(super) fn start(chain: &Chain, wallet: usize, dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join("validator.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(["validator", "--data-dir"])
            .arg(dir.join("validator"))
            .args(["--eth-provider", &chain.anvil.endpoint(), "--eth-private-key-file"])
            .arg(chain.key_file(wallet)?)
            .arg("--deployment")
            .arg(&chain.deployment_file)
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .context("starting the validator")?;
        Ok(Self { child, log })
    }
}

impl Drop for DevValidator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
