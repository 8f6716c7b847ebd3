//! `vellum deploy`: the token (unless one is reused), the verifier and the marketplace on any EVM
//! chain in one command, recorded in a deployment file; and the checks that `vellum node` and
//! `vellum validator` run on a deployment file they are given.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::primitives::aliases::U96;
use anyhow::Context;
use clap::Args;
use contracts::Marketplace::MarketplaceConfig;
use contracts::VerifyingKeyWords;
use contracts::deployment::{self, DeploymentError, DeploymentFile};
use prover::EvmVerifyingKey;

/// Flags of `vellum deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the chain to deploy to (http(s):// or ws(s)://).
    #[arg(long, env = "VELLUM_ETH_PROVIDER", value_name = "URL")]
    pub eth_provider: String,
    /// File with the deploying wallet's private key in hex (it pays the gas); refused unless only
    /// its owner may read it.
    #[arg(long, env = "VELLUM_ETH_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub eth_private_key_file: PathBuf,
    /// Proving key from `vellum prover setup`: the verifier is deployed with the verifying key
    /// inside it, and nodes must prove with this key.
    #[arg(long, env = "VELLUM_PROVER_KEY", value_name = "FILE")]
    pub prover_key: PathBuf,
    /// An existing ERC-20 the marketplace is paid in; without it a TestToken (anyone may mint)
    /// is deployed.
    #[arg(long, value_name = "ADDRESS")]
    pub token: Option<Address>,
    /// Where to write the deployment file that `vellum node` and `vellum validator` take with
    /// `--deployment`.
    #[arg(long, default_value = "deployment.json", value_name = "FILE")]
    pub out: PathBuf,
    /// Replace the deployment file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Seconds per proof period; at least 4 and twice the chain's block interval.
    #[arg(long, value_name = "SECONDS")]
    pub period: u32,
    /// Seconds after a period during which its missing proofs can be accused [default: half the
    /// period].
    #[arg(long, value_name = "SECONDS")]
    pub proof_timeout: Option<u32>,
    /// Seconds an accused host has to defend with its proof [default: half the period].
    #[arg(long, value_name = "SECONDS")]
    pub response_window: Option<u32>,
    /// Missed proofs after which a slot is lost [default: 3].
    #[arg(long)]
    pub max_missed_proofs: Option<u8>,
    /// % of a slot's collateral slashed per missed proof [default: 10].
    #[arg(long, value_name = "PERCENT")]
    pub slash_percentage: Option<u8>,
    /// % of a slashed amount paid to the validator that accused the miss [default: 50].
    #[arg(long, value_name = "PERCENT")]
    pub validator_reward_percentage: Option<u8>,
    /// % of forfeited collateral credited to the host that repairs the slot [default: 10].
    #[arg(long, value_name = "PERCENT")]
    pub repair_reward_percentage: Option<u8>,
    /// % of the collateral a reservation takes as a deposit [default: 10].
    #[arg(long, value_name = "PERCENT")]
    pub reservation_deposit_percentage: Option<u8>,
    /// Seconds a reservation holds a slot for its host [default: ten periods].
    #[arg(long, value_name = "SECONDS")]
    pub reservation_duration: Option<u32>,
    /// Seconds after a slot opens until every host may reserve it (0: at once) [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub dispersal_window: Option<u32>,
    /// Longest storage request expiry accepted, in seconds [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    pub max_request_expiry: Option<u32>,
    /// Wei a validator deposits per accusation (below 2^96) [default: 10^15, 0.001 ether].
    #[arg(long, value_name = "WEI")]
    pub accusation_bond: Option<u128>,
    /// % of the accusation bond paid to a host that defends [default: 50].
    #[arg(long, value_name = "PERCENT")]
    pub defence_share_percentage: Option<u8>,
}

impl DeployArgs {
    /// `--accusation-bond` as the contract's `uint96`.
    fn accusation_bond(&self) -> anyhow::Result<Option<U96>> {
        self.accusation_bond
            .map(|wei| {
                U96::try_from(wei).map_err(|_| anyhow::anyhow!("--accusation-bond {wei} does not fit in 96 bits"))
            })
            .transpose()
    }

    /// The configuration: `dev_config` scaled to the period, with the flags given (the bond
    /// from [`DeployArgs::accusation_bond`]).
    fn config(&self, token: Address, verifier: Address, accusation_bond: Option<U96>) -> MarketplaceConfig {
        let base = contracts::dev_config_with_period(token, verifier, u64::from(self.period), 0);
        MarketplaceConfig {
            proofTimeout: self.proof_timeout.unwrap_or(base.proofTimeout),
            responseWindow: self.response_window.unwrap_or(base.responseWindow),
            maxMissedProofs: self.max_missed_proofs.unwrap_or(base.maxMissedProofs),
            slashPercentage: self.slash_percentage.unwrap_or(base.slashPercentage),
            validatorRewardPercentage: self.validator_reward_percentage.unwrap_or(base.validatorRewardPercentage),
            repairRewardPercentage: self.repair_reward_percentage.unwrap_or(base.repairRewardPercentage),
            reservationDepositPercentage: self
                .reservation_deposit_percentage
                .unwrap_or(base.reservationDepositPercentage),
            reservationDuration: self.reservation_duration.unwrap_or(base.reservationDuration),
            dispersalWindow: self.dispersal_window.unwrap_or(base.dispersalWindow),
            maxRequestExpiry: self.max_request_expiry.unwrap_or(base.maxRequestExpiry),
            accusationBond: accusation_bond.unwrap_or(base.accusationBond),
            defenceSharePercentage: self.defence_share_percentage.unwrap_or(base.defenceSharePercentage),
            ..base
        }
    }
}

/// The verifying key inside a proving key file (read off the main thread).
async fn verifying_key(key_file: &Path) -> anyhow::Result<VerifyingKeyWords> {
    Ok(node::market::verifying_key_words(&EvmVerifyingKey::new(&read_vk(key_file).await?)))
}

/// The verifying key in a `.vk` file from `vellum prover setup`, or in a proving key.
pub(super) async fn read_vk(key_file: &Path) -> anyhow::Result<prover::VerifyingKey> {
    let path = key_file.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        prover::read_verifying_key(&path).or_else(|_| prover::read_proving_key_vk(&path))
    })
    .await?;
    // (the key error names the file and its cause already)
    Ok(read.map_err(|e| anyhow::anyhow!("{e}"))?.1)
}

/// Runs `vellum deploy`.
pub(super) async fn run(args: DeployArgs) -> anyhow::Result<()> {
    if !args.force && args.out.exists() {
        return Err(DeploymentError::Exists(args.out.clone()).into());
    }
    // Everything that can be refused is, before any gas is spent.
    let signer = contracts::client::read_key_file(&args.eth_private_key_file)?;
    let vk = verifying_key(&args.prover_key).await?;
    let bond = args.accusation_bond()?;
    let placeholder = Address::repeat_byte(1);
    deployment::check_config(&args.config(placeholder, placeholder, bond))?;
    let provider = deployment::connect(&args.eth_provider, Some(signer)).await?;
    let on = || format!("on {}", args.eth_provider);
    let interval = deployment::block_interval(&provider).await.with_context(on)?;
    deployment::check_period(args.period, interval)?;

    let file =
        deployment::deploy_to_chain(&provider, &vk, args.token, |token, verifier| args.config(token, verifier, bond))
            .await
            .with_context(on)?;
    file.write(&args.out)?;
    let c = &file.contracts;
    println!("chain id     {}", file.chain_id);
    println!("token        {:#x}{}", c.token, if args.token.is_some() { " (reused)" } else { " (TestToken)" });
    println!("verifier     {:#x}", c.verifier);
    println!("marketplace  {:#x} (block {})", c.marketplace, file.start_block);
    println!("settlement   {:#x}", c.settlement);
    if let Some(channels) = c.bandwidth_channels {
        println!("bandwidth    {channels:#x} (payment channels)");
    }
    println!("deployment file written to {}", args.out.display());
    Ok(())
}

/// The marketplace and the first block to read its events from, from `--marketplace-address`
/// or `--deployment` (exactly one of them): a deployment file is checked against the endpoint
/// (its chain id, code at its marketplace) and, when a prover key is given, against the key.
/// `start_block` (the flag, when given) wins over the file's.
pub(super) async fn marketplace(
    endpoint: &str,
    address: Option<&str>,
    deployment: Option<&Path>,
    start_block: Option<u64>,
    prover_key: Option<&Path>,
) -> anyhow::Result<(Address, u64)> {
    match (address, deployment) {
        (Some(_), Some(_)) => anyhow::bail!("give --deployment or --marketplace-address, not both"),
        (None, None) => anyhow::bail!("the marketplace is unknown: give --deployment (or --marketplace-address)"),
        (Some(address), None) => {
            let marketplace =
                address.parse::<Address>().map_err(|e| anyhow::anyhow!("--marketplace-address {address:?}: {e}"))?;
            Ok((marketplace, start_block.unwrap_or(0)))
        }
        (None, Some(path)) => {
            let context = || format!("--deployment {} on {endpoint}", path.display());
            let file = DeploymentFile::read(path)?;
            let provider = deployment::connect(endpoint, None).await;
            match provider {
                Ok(provider) => match file.check_chain(&provider).await {
                    // The endpoint is away: the node starts and joins the chain when it answers
                    // (the marketplace's configuration is read from the file's address then).
                    Err(DeploymentError::Rpc { call, reason }) => tracing::warn!(
                        target: "vellum::node",
                        call,
                        %reason,
                        "chain endpoint not answering; the deployment is not checked against it"
                    ),
                    other => other.with_context(context)?,
                },
                Err(e @ DeploymentError::Endpoint { .. }) if !endpoint.starts_with("ws") => {
                    return Err(e).with_context(context);
                }
                Err(e) => tracing::warn!(target: "vellum::node", error = %e, "chain endpoint not answering"),
            }
            if let Some(prover_key) = prover_key {
                file.check_verifying_key(&verifying_key(prover_key).await?).with_context(context)?;
            }
            Ok((file.contracts.marketplace, start_block.unwrap_or(file.start_block)))
        }
    }
}
