//! A local marketplace: anvil mining a block a second, the contracts deployed, funded wallets
//! whose keys sit in 0600 files, and the flags that put a `vellum node` or a `vellum validator` on
//! it.
//!
//! The scenarios deploy in-process with a small proof shape's key and short periods
//! ([`MarketNet::start`]); the devnet deploys with `vellum deploy` and hands the file it wrote to
//! [`MarketNet::from_deployment_file`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use circuits::r1cs::ProofShape;
use contracts::{Anvil, Deployment, DeploymentFile, Marketplace, TestToken, deploy, dev_config_with_period};
use prover::EvmVerifyingKey;

use crate::process::ValidatorProcess;
use crate::vellum_binary;

/// Seconds per proof period in the scenarios.
pub const PERIOD: u64 = 6;

/// The scenarios' proof shape: 64 cells of 64 bytes per slot (4 KiB slots), 3 samples.
pub const SHAPE: ProofShape = ProofShape { samples: 3, slot_depth: 6, dataset_levels: 1, cell_size: 64 };

/// The log level [`MarketNet::node_flags`] gives a node (the market and the chain in detail).
const NODE_LOG_LEVEL: &str = "info,vellum::market=debug,vellum::chain=debug";

/// Lines of each log printed when a scenario fails.
const LOG_TAIL_LINES: usize = 60;

/// Anvil, the deployment and the wallets (anvil's ten dev accounts; 0 deployed the contracts).
pub struct MarketNet {
    /// The chain.
    pub anvil: Anvil,
    /// The contracts' addresses.
    pub deployment: Deployment,
    /// The deployment file nodes and validators start from, when the contracts went up by
    /// `vellum deploy`; without one they are given the marketplace's address.
    pub deployment_file: Option<PathBuf>,
    /// The proving key whose verifying key the verifier holds.
    pub prover_key: PathBuf,
    /// A provider sending from wallet 0, the deployer (it may mint test tokens).
    pub deployer: DynProvider,
    dir: PathBuf,
    /// The temporary directory `dir` is, removed when the net is dropped.
    _tmp: Option<tempfile::TempDir>,
}

impl MarketNet {
    /// Starts anvil (a block a second), makes keys for [`SHAPE`] and deploys with
    /// [`PERIOD`]-second periods and a dispersal window of one period, all in a temporary
    /// directory.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&SHAPE, PERIOD).await
    }

    /// Like [`MarketNet::start`] with another proof shape and period length.
    pub async fn start_with(shape: &ProofShape, period: u64) -> anyhow::Result<Self> {
        let anvil = Anvil::start_with(Some(1))?;
        let tmp = tempfile::tempdir()?;
        let keys = prover::setup(shape)?;
        let vk = node::market::verifying_key_words(&EvmVerifyingKey::new(&keys.pk.vk));
        let (prover_key, _) = prover::write_keys(&keys, &tmp.path().join("keys"))?;
        let deployer = provider(&anvil.endpoint(), signer(&anvil, 0)?)?;
        // Fair dispersal over one period: hosts reserve a new slot one after the other.
        let deployment = deploy(&deployer, &vk, |t, v| dev_config_with_period(t, v, period, period)).await?;
        let dir = tmp.path().to_path_buf();
        Ok(Self { anvil, deployment, deployment_file: None, prover_key, deployer, dir, _tmp: Some(tmp) })
    }

    /// The net of contracts that `vellum deploy` put on `anvil` and described in `file`; key
    /// files go under `dir`, which stays when the net is dropped.
    pub fn from_deployment_file(anvil: Anvil, dir: &Path, file: &Path, prover_key: PathBuf) -> anyhow::Result<Self> {
        let written = DeploymentFile::read(file)?;
        let deployment = Deployment {
            token: written.contracts.token,
            verifier: written.contracts.verifier,
            marketplace: written.contracts.marketplace,
        };
        let deployer = provider(&anvil.endpoint(), signer(&anvil, 0)?)?;
        Ok(Self {
            anvil,
            deployment,
            deployment_file: Some(file.to_path_buf()),
            prover_key,
            deployer,
            dir: dir.to_path_buf(),
            _tmp: None,
        })
    }

    /// The directory of the net's keys, key files and (by convention) its nodes' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dev wallet `i`'s signer.
    pub fn signer(&self, i: usize) -> anyhow::Result<PrivateKeySigner> {
        signer(&self.anvil, i)
    }

    /// Dev wallet `i`'s address.
    ///
    /// # Panics
    /// When anvil has no dev account `i` (it has ten).
    pub fn address(&self, i: usize) -> Address {
        self.signer(i).expect("a dev account of anvil").address()
    }

    /// Mints `amount` tokens to wallet `i`.
    pub async fn fund(&self, i: usize, amount: U256) -> anyhow::Result<()> {
        let token = TestToken::new(self.deployment.token, self.deployer.clone());
        token.mint(self.signer(i)?.address(), amount).send().await?.get_receipt().await?;
        Ok(())
    }

    /// `who`'s token balance.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(TestToken::new(self.deployment.token, self.deployer.clone()).balanceOf(who).call().await?)
    }

    /// Every marketplace event so far, decoded, with its log (block, transaction).
    pub async fn events(&self) -> anyhow::Result<Vec<(contracts::MarketEvent, alloy::rpc::types::Log)>> {
        let filter = alloy::rpc::types::Filter::new().address(self.deployment.marketplace).from_block(0u64);
        let logs = self.deployer.get_logs(&filter).await?;
        Ok(logs.into_iter().filter_map(|l| Some((contracts::MarketEvent::decode(&l)?, l))).collect())
    }

    /// The marketplace, read through the deployer's provider.
    pub fn market(&self) -> Marketplace::MarketplaceInstance<DynProvider> {
        Marketplace::new(self.deployment.marketplace, self.deployer.clone())
    }

    /// A provider sending from wallet `i`.
    ///
    /// # Panics
    /// When anvil has no dev account `i` (it has ten).
    pub fn wallet(&self, i: usize) -> DynProvider {
        let signer = self.signer(i).expect("a dev account of anvil");
        provider(&self.anvil.endpoint(), signer).expect("anvil's endpoint is a URL")
    }

    /// Wallet `i`'s key in a 0600 file (see [`write_key_file`]).
    pub fn key_file(&self, i: usize) -> anyhow::Result<PathBuf> {
        write_key_file(&self.dir, &self.anvil, i)
    }

    /// The flags that name the marketplace: `--deployment FILE` when the net has a deployment
    /// file, else `--marketplace-address ADDRESS`.
    fn marketplace_flags(&self) -> Vec<String> {
        match &self.deployment_file {
            Some(file) => vec!["--deployment".into(), file.display().to_string()],
            None => vec!["--marketplace-address".into(), format!("{:#x}", self.deployment.marketplace)],
        }
    }

    /// The flags that put a node in persistence mode with wallet `i` on `endpoint` (anvil's, or
    /// a proxy's): the endpoint, the key file, the marketplace and the prover key.
    pub fn market_flags(&self, i: usize, endpoint: &str) -> anyhow::Result<Vec<String>> {
        let mut flags = vec![
            "--eth-provider".into(),
            endpoint.into(),
            "--eth-private-key-file".into(),
            self.key_file(i)?.display().to_string(),
        ];
        flags.extend(self.marketplace_flags());
        flags.extend(["--prover-key".into(), self.prover_key.display().to_string()]);
        Ok(flags)
    }

    /// The scenarios' node flags: [`MarketNet::market_flags`] and a log level with the market
    /// and the chain in detail.
    pub fn node_flags(&self, i: usize, endpoint: &str) -> anyhow::Result<Vec<String>> {
        let mut flags = self.market_flags(i, endpoint)?;
        flags.extend(["--log-level".into(), NODE_LOG_LEVEL.into()]);
        Ok(flags)
    }

    /// The flags that put a validator with wallet `i` on the marketplace through anvil, its
    /// libp2p peer on loopback, checking proofs with the net's verifying key.
    pub fn validator_flags(&self, i: usize) -> anyhow::Result<Vec<String>> {
        let mut flags = vec![
            "--eth-provider".into(),
            self.anvil.endpoint(),
            "--eth-private-key-file".into(),
            self.key_file(i)?.display().to_string(),
            "--verifying-key".into(),
            self.prover_key.display().to_string(),
            "--listen-ip".into(),
            "127.0.0.1".into(),
        ];
        flags.extend(self.marketplace_flags());
        Ok(flags)
    }

    /// A data directory (or a log file) for a node, in the net's directory.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Passes a scenario's outcome through; when it failed or ran out of time, first prints the
    /// last lines of every log the nodes and validators wrote, so a failure in CI can be read.
    pub fn report(&self, outcome: Result<anyhow::Result<()>, tokio::time::error::Elapsed>) -> anyhow::Result<()> {
        let outcome = outcome.map_err(anyhow::Error::from).and_then(|r| r);
        if outcome.is_err() {
            crate::logs::print_log_tails(&self.dir, LOG_TAIL_LINES);
        }
        outcome
    }
}

impl ValidatorProcess {
    /// Starts `vellum validator` on `net` with wallet `wallet`, in group `groups.1` of
    /// `groups.0`, its state in `dir` and its log in `log`, serving metrics on a free port.
    pub fn start(net: &MarketNet, wallet: usize, groups: (u64, u64), dir: &Path, log: &Path) -> anyhow::Result<Self> {
        Self::start_with(net, wallet, groups, dir, log, &[])
    }

    /// [`ValidatorProcess::start`] with more flags (`--bootstrap-node SPR`, a fault switch).
    pub fn start_with(
        net: &MarketNet,
        wallet: usize,
        groups: (u64, u64),
        dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--data-dir".to_owned(), dir.display().to_string()];
        args.extend_from_slice(extra);
        args.extend(net.validator_flags(wallet)?);
        args.extend(["--validator-groups".into(), groups.0.to_string()]);
        args.extend(["--validator-group-index".into(), groups.1.to_string()]);
        args.extend(
            ["--log-level", "info,vellum::validator=debug", "--metrics", "--metrics-port", "0"].map(String::from),
        );
        Ok(Self::spawn(&vellum_binary(), &args, log, Duration::from_secs(30))?)
    }
}

/// Anvil's dev account `i` as a signer.
pub fn signer(anvil: &Anvil, i: usize) -> anyhow::Result<PrivateKeySigner> {
    let key = anvil.keys().get(i).with_context(|| format!("anvil has no dev account {i}"))?;
    Ok(key.parse()?)
}

/// A provider on `endpoint` (HTTP) that signs with `signer`.
pub fn provider(endpoint: &str, signer: PrivateKeySigner) -> anyhow::Result<DynProvider> {
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(endpoint.parse()?).erased())
}

/// Writes anvil dev account `i`'s key to `<dir>/wallets/wallet-<i>.key`, readable by its owner
/// only (as nodes and validators want it); returns the path.
pub fn write_key_file(dir: &Path, anvil: &Anvil, i: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("wallets").join(format!("wallet-{i}.key"));
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    let key = anvil.keys().get(i).with_context(|| format!("anvil has no dev account {i}"))?;
    std::fs::write(&path, key)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// Anvil's `host:port`.
pub fn anvil_address(anvil: &Anvil) -> String {
    anvil.endpoint().trim_start_matches("http://").to_owned()
}

/// Anvil with only a token and the bandwidth channels on it (no marketplace): the chain of a
/// paid-bandwidth scenario, with the flags that put a node's wallet on it.
pub struct ChannelsNet {
    /// The chain.
    pub anvil: Anvil,
    /// The test token channels are paid in.
    pub token: Address,
    /// The `BandwidthChannels` contract.
    pub channels: Address,
    /// A provider sending from wallet 0, the deployer (it may mint test tokens).
    pub deployer: DynProvider,
    dir: PathBuf,
}

impl ChannelsNet {
    /// Starts anvil (a block a second) and deploys a test token and the channels with
    /// `close_delay` seconds; key files go under `dir`.
    pub async fn start(dir: &Path, close_delay: u64) -> anyhow::Result<Self> {
        Self::start_with(dir, close_delay, Some(1)).await
    }

    /// Like [`ChannelsNet::start`], with a block every `block_time` seconds, or one per
    /// transaction when `None` (the benchmark's: a channel opens in milliseconds).
    pub async fn start_with(dir: &Path, close_delay: u64, block_time: Option<u64>) -> anyhow::Result<Self> {
        let anvil = Anvil::start_with(block_time)?;
        let deployer = provider(&anvil.endpoint(), signer(&anvil, 0)?)?;
        let token = TestToken::deploy(deployer.clone(), "Vellum test token".to_owned(), "VTT".to_owned()).await?;
        let channels = contracts::BandwidthChannels::deploy(deployer.clone(), *token.address(), close_delay).await?;
        Ok(Self { anvil, token: *token.address(), channels: *channels.address(), deployer, dir: dir.to_path_buf() })
    }

    /// Dev wallet `i`'s address.
    pub fn address(&self, i: usize) -> anyhow::Result<Address> {
        Ok(signer(&self.anvil, i)?.address())
    }

    /// Mints `amount` tokens to wallet `i`.
    pub async fn fund(&self, i: usize, amount: U256) -> anyhow::Result<()> {
        let token = TestToken::new(self.token, self.deployer.clone());
        token.mint(self.address(i)?, amount).send().await?.get_receipt().await?;
        Ok(())
    }

    /// `who`'s token balance.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(TestToken::new(self.token, self.deployer.clone()).balanceOf(who).call().await?)
    }

    /// The flags that put a node's wallet `i` on the channels: the endpoint, its key file and
    /// the contract.
    pub fn flags(&self, i: usize) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            "--eth-provider".into(),
            self.anvil.endpoint(),
            "--eth-private-key-file".into(),
            write_key_file(&self.dir, &self.anvil, i)?.display().to_string(),
            "--bandwidth-channels-address".into(),
            format!("{:#x}", self.channels),
        ])
    }
}
