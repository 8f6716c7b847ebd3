//! The devnet's processes. The chain, the wallets and their key files, and the `vellum node` /
//! `vellum validator` children (this same binary) come from `vellum-testkit`, as in the
//! scenarios; what is the devnet's own: the contracts go up by `vellum deploy` (whose deployment
//! file every child then starts from), each child logs to a file in the devnet directory, and
//! nodes carry a name for the timeline. Everything started here stops when it is dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use contracts::Anvil;
use vellum_testkit::{MarketNet, TestNode, ValidatorProcess, write_key_file};

/// How long a node may take to report its API.
const NODE_START: Duration = Duration::from_secs(60);
/// How long the validator may take to join the chain.
const VALIDATOR_START: Duration = Duration::from_secs(60);

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

/// A `vellum node` of the devnet.
pub(super) struct DevNode {
    /// What the timeline calls it.
    pub(super) name: String,
    node: TestNode,
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
        let mut args: Vec<String> =
            ["--metrics", "--metrics-port", "0", "--log-level", "info,vellum::market=debug"].map(String::from).into();
        if let Some(spr) = bootstrap {
            args.extend(["--bootstrap-node".into(), spr.to_owned()]);
        }
        args.extend(extra);
        let binary = std::env::current_exe().context("this binary's path")?;
        let log_path = log.clone();
        let node = tokio::task::spawn_blocking(move || {
            TestNode::spawn(&binary, &data_dir, &args, Some(&log_path), NODE_START)
        })
        .await?
        .with_context(|| format!("starting {name} (its log: {})", log.display()))?;
        Ok(Self { name: name.to_owned(), node })
    }

    /// `GET {api}{path}` as JSON.
    pub(super) async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.node.get_json(path).await.with_context(|| self.name.clone())
    }

    /// `POST {api}{path}` with a JSON body; returns the answer's text.
    pub(super) async fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
        self.node.post_json(path, body).await.with_context(|| self.name.clone())
    }

    /// The node's signed peer record.
    pub(super) async fn spr(&self) -> anyhow::Result<String> {
        self.node.spr().await.with_context(|| self.name.clone())
    }

    /// Uploads bytes; returns the CID.
    pub(super) async fn upload(&self, data: Vec<u8>) -> anyhow::Result<String> {
        self.node.upload(data).await.with_context(|| self.name.clone())
    }

    /// Downloads a dataset through this node (from the network when it is not here).
    pub(super) async fn download(&self, cid: &str) -> anyhow::Result<Vec<u8>> {
        self.node.download(&format!("/data/{cid}/network/stream")).await.with_context(|| self.name.clone())
    }

    /// A counter from the node's metrics endpoint (0 when absent or unreadable).
    pub(super) async fn counter(&self, name: &str) -> u64 {
        self.node.metric(name).await.ok().flatten().map_or(0, |v| v as u64)
    }

    /// Stops the node (SIGKILL: as abrupt as a host going away).
    pub(super) fn stop(&mut self) {
        self.node.kill();
    }
}

/// Starts the devnet's validator with wallet `wallet` on `chain` (from its deployment file), its
/// libp2p peer joined through `bootstrap` (proofs reach it off the chain), its state under
/// `dir/validator`, its log in `log` and its metrics on a free port; it stops when dropped.
pub(super) async fn start_validator(
    chain: &MarketNet,
    wallet: usize,
    dir: &Path,
    log: &Path,
    bootstrap: &str,
) -> anyhow::Result<ValidatorProcess> {
    let mut args = vec!["--data-dir".to_owned(), dir.join("validator").display().to_string()];
    args.extend(chain.validator_flags(wallet)?);
    args.extend(["--bootstrap-node".into(), bootstrap.to_owned()]);
    args.extend(["--log-level".into(), "info".into(), "--metrics".into(), "--metrics-port".into(), "0".into()]);
    let binary = std::env::current_exe().context("this binary's path")?;
    let log = log.to_path_buf();
    let validator = tokio::task::spawn_blocking(move || ValidatorProcess::spawn(&binary, &args, &log, VALIDATOR_START))
        .await?
        .context("starting the validator")?;
    Ok(validator)
}
