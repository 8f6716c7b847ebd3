//! Deploying to any EVM chain and the deployment file that records it.
//!
//! [`deploy_to_chain`] deploys the Groth16 verifier and the marketplace (and a test token unless
//! an existing ERC-20 is reused) and returns a [`DeploymentFile`]: the chain id, the contracts'
//! addresses, the block the marketplace was created in (nodes and validators read its logs from
//! there), its whole configuration and the hash of the verifying key the verifier holds. The
//! file is JSON, written atomically (temporary file, fsync, rename); [`DeploymentFile::check_chain`]
//! refuses a file meant for another chain or pointing at an address without code, and
//! [`DeploymentFile::check_verifying_key`] one whose verifier holds another key than a prover's.

use std::io::Write;
use std::path::{Path, PathBuf};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::bindings::Marketplace::MarketplaceConfig;
use crate::bindings::{BandwidthChannels, Marketplace, TestToken};
use crate::deploy::{DeployError, VerifyingKeyWords, deploy_token, deploy_verifier};

/// The version of the deployment file format written by this code.
pub const DEPLOYMENT_FILE_VERSION: u32 = 1;

/// How [`verifying_key_hash`] hashes a key (recorded in the file beside the hash).
pub const VERIFYING_KEY_HASH_ALGORITHM: &str = "keccak256(alpha|beta|gamma|delta|ic as 32-byte big-endian words)";

/// The contract's smallest period (`MIN_PERIOD_LENGTH` in `MarketplaceCore.sol`).
pub const MIN_PERIOD_LENGTH: u32 = 4;

/// Blocks between the two blocks whose timestamps give a chain's block interval.
const INTERVAL_BLOCKS: u64 = 10;

/// Why deploying, or reading, writing or checking a deployment file, failed.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// Reading or writing the file.
    #[error("deployment file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a deployment file.
    #[error("deployment file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The file is of a format version this code does not read.
    #[error("deployment file {path}: format version {found}, this vellum reads version {DEPLOYMENT_FILE_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it says.
        found: u32,
    },
    /// The file exists and was not to be replaced.
    #[error("deployment file {0} exists; pass --force to replace it")]
    Exists(PathBuf),
    /// The endpoint serves another chain than the deployment's.
    #[error("the deployment is for chain id {file} but the endpoint serves chain id {endpoint}")]
    WrongChain {
        /// The chain id in the file.
        file: u64,
        /// The endpoint's `eth_chainId`.
        endpoint: u64,
    },
    /// An address that should hold a contract holds no code.
    #[error("no contract at {address} on chain {chain_id}")]
    NoContract {
        /// The address.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// The token to reuse does not answer as an ERC-20.
    #[error("{address} on chain {chain_id} does not answer as an ERC-20 (totalSupply): {reason}")]
    NotErc20 {
        /// The address.
        address: Address,
        /// The chain.
        chain_id: u64,
        /// What the call said.
        reason: String,
    },
    /// The verifier of the deployment holds another key than the prover key's.
    #[error(
        "the prover key's verifying key hashes to {key} but the deployment's verifier was deployed with {file}: \
         use the prover key the contracts were deployed with"
    )]
    VerifyingKey {
        /// The hash in the file.
        file: B256,
        /// The hash of the prover key's verifying key.
        key: B256,
    },
    /// The configuration breaks a rule of the contract's constructor.
    #[error("invalid marketplace configuration: {0}")]
    Config(String),
    /// The period is too short for the chain's blocks.
    #[error(
        "a period of {period} s is shorter than twice the chain's block interval ({interval:.1} s over the last \
         {INTERVAL_BLOCKS} blocks): proofs could not be mined in time; choose at least {min} s"
    )]
    PeriodTooShort {
        /// The period asked for.
        period: u32,
        /// Seconds per block observed.
        interval: f64,
        /// The shortest period accepted.
        min: u64,
    },
    /// The endpoint URL is unusable.
    #[error("eth provider {endpoint}: {reason}")]
    Endpoint {
        /// The URL.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// An RPC call failed.
    #[error("{call}: {reason}")]
    Rpc {
        /// The call.
        call: &'static str,
        /// What the endpoint said.
        reason: String,
    },
    /// A contract creation failed.
    #[error(transparent)]
    Deploy(Box<DeployError>),
}

impl From<DeployError> for DeploymentError {
    fn from(e: DeployError) -> Self {
        DeploymentError::Deploy(Box::new(e))
    }
}

/// The contracts of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployedContracts {
    /// The ERC-20 the marketplace is paid in.
    pub token: Address,
    /// The Groth16 verifier of the storage proofs.
    pub verifier: Address,
    /// The marketplace (the address nodes and validators use).
    pub marketplace: Address,
    /// The settlement module the marketplace delegates to (its `settlement()`).
    pub settlement: Address,
    /// The bandwidth payment channels, in the marketplace's token (absent from files written
    /// before they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_channels: Option<Address>,
}

/// Seconds a provider has to redeem its vouchers once a payer asks to close a bandwidth
/// channel: a day, so that a provider that checks its channels daily loses nothing.
pub const BANDWIDTH_CLOSE_DELAY: u64 = 86_400;

/// A marketplace configuration as the file records it: the contract's field names, the bond in
/// wei as a decimal string (it may exceed what JSON numbers hold exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRecord {
    /// The ERC-20 the marketplace is paid in.
    pub token: Address,
    /// The Groth16 verifier.
    pub verifier: Address,
    /// Seconds per proof period.
    pub period_length: u32,
    /// Seconds after a period during which its missing proofs can be accused.
    pub proof_timeout: u32,
    /// Seconds an accused host has to defend with its proof.
    pub response_window: u32,
    /// Missed proofs after which a slot is lost.
    pub max_missed_proofs: u8,
    /// % of a slot's collateral slashed per missed proof.
    pub slash_percentage: u8,
    /// % of a slashed amount paid to the accuser.
    pub validator_reward_percentage: u8,
    /// % of forfeited collateral credited to the repairing host.
    pub repair_reward_percentage: u8,
    /// % of the collateral a reservation takes.
    pub reservation_deposit_percentage: u8,
    /// Seconds a reservation holds a slot.
    pub reservation_duration: u32,
    /// Seconds after a slot opens until every host may reserve it.
    pub dispersal_window: u32,
    /// Longest request expiry accepted, in seconds.
    pub max_request_expiry: u32,
    /// Wei an accuser deposits per accusation.
    #[serde(with = "decimal")]
    pub accusation_bond: u128,
    /// % of the bond paid to a host that defends.
    pub defence_share_percentage: u8,
}

impl From<&MarketplaceConfig> for ConfigRecord {
    fn from(c: &MarketplaceConfig) -> Self {
        ConfigRecord {
            token: c.token,
            verifier: c.verifier,
            period_length: c.periodLength,
            proof_timeout: c.proofTimeout,
            response_window: c.responseWindow,
            max_missed_proofs: c.maxMissedProofs,
            slash_percentage: c.slashPercentage,
            validator_reward_percentage: c.validatorRewardPercentage,
            repair_reward_percentage: c.repairRewardPercentage,
            reservation_deposit_percentage: c.reservationDepositPercentage,
            reservation_duration: c.reservationDuration,
            dispersal_window: c.dispersalWindow,
            max_request_expiry: c.maxRequestExpiry,
            accusation_bond: c.accusationBond.to::<u128>(),
            defence_share_percentage: c.defenceSharePercentage,
        }
    }
}

impl TryFrom<&ConfigRecord> for MarketplaceConfig {
    type Error = DeploymentError;

    fn try_from(c: &ConfigRecord) -> Result<Self, DeploymentError> {
        let bond = U96::try_from(c.accusation_bond).map_err(|_| {
            DeploymentError::Config(format!("accusation bond {} wei exceeds 96 bits", c.accusation_bond))
        })?;
        Ok(MarketplaceConfig {
            token: c.token,
            verifier: c.verifier,
            periodLength: c.period_length,
            proofTimeout: c.proof_timeout,
            responseWindow: c.response_window,
            maxMissedProofs: c.max_missed_proofs,
            slashPercentage: c.slash_percentage,
            validatorRewardPercentage: c.validator_reward_percentage,
            repairRewardPercentage: c.repair_reward_percentage,
            reservationDepositPercentage: c.reservation_deposit_percentage,
            reservationDuration: c.reservation_duration,
            dispersalWindow: c.dispersal_window,
            maxRequestExpiry: c.max_request_expiry,
            accusationBond: bond,
            defenceSharePercentage: c.defence_share_percentage,
        })
    }
}

/// A `u128` as a decimal string.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal amount of wei")))
    }
}

/// The hash of a verifying key recorded in a deployment file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyingKeyHash {
    /// How it was computed ([`VERIFYING_KEY_HASH_ALGORITHM`]).
    pub algorithm: String,
    /// The hash.
    pub hash: B256,
}

/// What a deployment left on a chain, as nodes and validators need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentFile {
    /// The file format's version ([`DEPLOYMENT_FILE_VERSION`]).
    pub version: u32,
    /// The chain's `eth_chainId`.
    pub chain_id: u64,
    /// Where the contracts are.
    pub contracts: DeployedContracts,
    /// The block the marketplace was created in: its first events are there.
    pub start_block: u64,
    /// The marketplace's configuration.
    pub config: ConfigRecord,
    /// The verifying key the verifier was deployed with.
    pub verifying_key: VerifyingKeyHash,
}

impl DeploymentFile {
    /// Reads and parses a deployment file.
    pub fn read(path: &Path) -> Result<Self, DeploymentError> {
        let bytes = std::fs::read(path).map_err(|source| DeploymentError::Io { path: path.to_owned(), source })?;
        // The version first, so a newer format is named as such instead of failing on a field.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let parse = |source| DeploymentError::Parse { path: path.to_owned(), source };
        let Version { version } = serde_json::from_slice(&bytes).map_err(parse)?;
        if version != DEPLOYMENT_FILE_VERSION {
            return Err(DeploymentError::Version { path: path.to_owned(), found: version });
        }
        serde_json::from_slice(&bytes).map_err(parse)
    }

    /// Writes the file atomically: a temporary file beside it, flushed to disk, renamed over it.
    pub fn write(&self, path: &Path) -> Result<(), DeploymentError> {
        let io = |source| DeploymentError::Io { path: path.to_owned(), source };
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        text.push(b'\n');
        let name = path.file_name().ok_or_else(|| io(std::io::Error::other("not a file name")))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        // The rename itself lasts once the directory is on disk.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }

    /// The marketplace configuration recorded.
    pub fn marketplace_config(&self) -> Result<MarketplaceConfig, DeploymentError> {
        MarketplaceConfig::try_from(&self.config)
    }

    /// Refuses a file for another chain than the endpoint's, or whose marketplace has no code
    /// there.
    pub async fn check_chain<P: Provider>(&self, provider: &P) -> Result<(), DeploymentError> {
        let chain_id = chain_id(provider).await?;
        if chain_id != self.chain_id {
            return Err(DeploymentError::WrongChain { file: self.chain_id, endpoint: chain_id });
        }
        require_code(provider, self.contracts.marketplace, chain_id).await?;
        if let Some(channels) = self.contracts.bandwidth_channels {
            require_code(provider, channels, chain_id).await?;
        }
        Ok(())
    }

    /// Refuses a prover's verifying key other than the one the verifier was deployed with.
    pub fn check_verifying_key(&self, vk: &VerifyingKeyWords) -> Result<(), DeploymentError> {
        let key = verifying_key_hash(vk);
        if self.verifying_key.algorithm != VERIFYING_KEY_HASH_ALGORITHM || self.verifying_key.hash != key {
            return Err(DeploymentError::VerifyingKey { file: self.verifying_key.hash, key });
        }
        Ok(())
    }
}

/// The hash of a verifying key: keccak256 of its words in the order the verifier's constructor
/// takes them (α, β, γ, δ, then every input commitment), each a 32-byte big-endian word with G2
/// points imaginary part first ([`VERIFYING_KEY_HASH_ALGORITHM`]).
pub fn verifying_key_hash(vk: &VerifyingKeyWords) -> B256 {
    let mut bytes = Vec::with_capacity(32 * (14 + 2 * vk.ic.len()));
    for word in vk.alpha.iter().chain(&vk.beta).chain(&vk.gamma).chain(&vk.delta).chain(vk.ic.iter().flatten()) {
        bytes.extend_from_slice(word);
    }
    keccak256(&bytes)
}

/// Checks the rules the marketplace's constructor enforces (it reverts with a bare
/// `InvalidConfig`), naming the ones broken.
pub fn check_config(c: &MarketplaceConfig) -> Result<(), DeploymentError> {
    let mut broken = Vec::new();
    let mut rule = |ok: bool, what: String| {
        if !ok {
            broken.push(what);
        }
    };
    rule(c.token != Address::ZERO, "no token".into());
    rule(c.verifier != Address::ZERO, "no verifier".into());
    rule(c.periodLength >= MIN_PERIOD_LENGTH, format!("period {} s is below {MIN_PERIOD_LENGTH} s", c.periodLength));
    rule(
        c.proofTimeout > 0 && c.proofTimeout <= c.periodLength,
        format!("proof timeout {} s must be 1 to the period ({} s)", c.proofTimeout, c.periodLength),
    );
    rule(
        c.responseWindow > 0 && c.responseWindow <= c.periodLength,
        format!("response window {} s must be 1 to the period ({} s)", c.responseWindow, c.periodLength),
    );
    rule(c.maxMissedProofs > 0, "max missed proofs must be at least 1".into());
    rule(
        u32::from(c.maxMissedProofs) * u32::from(c.slashPercentage) <= 100,
        format!("max missed proofs × slash percentage ({} × {}) exceeds 100", c.maxMissedProofs, c.slashPercentage),
    );
    rule(c.validatorRewardPercentage <= 100, "validator reward percentage exceeds 100".into());
    rule(
        u32::from(c.repairRewardPercentage) + u32::from(c.reservationDepositPercentage) <= 100,
        "repair reward + reservation deposit percentages exceed 100".into(),
    );
    rule(c.reservationDuration > 0, "reservation duration must be at least 1 s".into());
    rule(c.maxRequestExpiry > 0, "max request expiry must be at least 1 s".into());
    rule(c.defenceSharePercentage <= 100, "defence share percentage exceeds 100".into());
    if broken.is_empty() { Ok(()) } else { Err(DeploymentError::Config(broken.join("; "))) }
}

/// Connects to a JSON-RPC endpoint (`http(s)://` or `ws(s)://`), sending from `signer` when one
/// is given.
pub async fn connect(endpoint: &str, signer: Option<PrivateKeySigner>) -> Result<DynProvider, DeploymentError> {
    let root = crate::client::connect_endpoint(endpoint)
        .await
        .map_err(|reason| DeploymentError::Endpoint { endpoint: endpoint.to_owned(), reason })?;
    Ok(match signer {
        Some(signer) => ProviderBuilder::new().wallet(signer).connect_provider(root).erased(),
        None => ProviderBuilder::new().connect_provider(root).erased(),
    })
}

/// The endpoint's chain id.
pub async fn chain_id<P: Provider>(provider: &P) -> Result<u64, DeploymentError> {
    provider.get_chain_id().await.map_err(|e| DeploymentError::Rpc { call: "eth_chainId", reason: e.to_string() })
}

/// Refuses an address without code.
async fn require_code<P: Provider>(provider: &P, address: Address, chain_id: u64) -> Result<(), DeploymentError> {
    let code = provider
        .get_code_at(address)
        .await
        .map_err(|e| DeploymentError::Rpc { call: "eth_getCode", reason: e.to_string() })?;
    if code.is_empty() { Err(DeploymentError::NoContract { address, chain_id }) } else { Ok(()) }
}

/// Seconds per block over the last [`INTERVAL_BLOCKS`] blocks, or `None` when the chain has
/// fewer.
pub async fn block_interval<P: Provider>(provider: &P) -> Result<Option<f64>, DeploymentError> {
    let block = |n: BlockNumberOrTag| async move {
        provider
            .get_block_by_number(n)
            .await
            .map_err(|e| DeploymentError::Rpc { call: "eth_getBlockByNumber", reason: e.to_string() })?
            .ok_or_else(|| DeploymentError::Rpc { call: "eth_getBlockByNumber", reason: format!("no block {n}") })
    };
    let latest = block(BlockNumberOrTag::Latest).await?;
    let Some(earlier) = latest.header.number.checked_sub(INTERVAL_BLOCKS) else { return Ok(None) };
    let earlier = block(BlockNumberOrTag::Number(earlier)).await?;
    let span = latest.header.timestamp.saturating_sub(earlier.header.timestamp);
    Ok(Some(span as f64 / INTERVAL_BLOCKS as f64))
}

/// Refuses a period shorter than twice the observed block interval (`None`: not known).
pub fn check_period(period: u32, interval: Option<f64>) -> Result<(), DeploymentError> {
    match interval {
        Some(interval) if f64::from(period) < 2.0 * interval => {
            Err(DeploymentError::PeriodTooShort { period, interval, min: (2.0 * interval).ceil() as u64 })
        }
        _ => Ok(()),
    }
}

/// Deploys the verifier for `vk` and a marketplace configured by `config` (given the token's
/// and the verifier's addresses), with a new test token or the existing ERC-20 `token`, from the
/// provider's default sender; returns what the deployment file records.
pub async fn deploy_to_chain<P: Provider + Clone>(
    provider: &P,
    vk: &VerifyingKeyWords,
    token: Option<Address>,
    config: impl FnOnce(Address, Address) -> MarketplaceConfig,
) -> Result<DeploymentFile, DeploymentError> {
    let chain_id = chain_id(provider).await?;
    let token = match token {
        Some(address) => {
            require_code(provider, address, chain_id).await?;
            TestToken::new(address, provider.clone())
                .totalSupply()
                .call()
                .await
                .map_err(|e| DeploymentError::NotErc20 { address, chain_id, reason: e.to_string() })?;
            address
        }
        None => deploy_token(provider).await?,
    };
    let verifier = deploy_verifier(provider, vk).await?;
    let config = config(token, verifier);
    check_config(&config)?;
    let created = |reason: String| DeploymentError::Rpc { call: "creating the Marketplace", reason };
    let receipt = Marketplace::deploy_builder(provider.clone(), config.clone())
        .send()
        .await
        .map_err(|source| DeployError::Contract { what: "Marketplace", source })?
        .get_receipt()
        .await
        .map_err(|e| created(e.to_string()))?;
    if !receipt.status() {
        return Err(created(format!("transaction {} reverted", receipt.transaction_hash)));
    }
    let marketplace = receipt.contract_address.ok_or_else(|| created("the receipt names no contract".into()))?;
    let start_block = receipt.block_number.ok_or_else(|| created("the receipt names no block".into()))?;
    let settlement = Marketplace::new(marketplace, provider.clone())
        .settlement()
        .call()
        .await
        .map_err(|e| DeploymentError::Rpc { call: "settlement()", reason: e.to_string() })?;
    let channels = BandwidthChannels::deploy(provider.clone(), token, BANDWIDTH_CLOSE_DELAY)
        .await
        .map_err(|source| DeployError::Contract { what: "BandwidthChannels", source })?;
    Ok(DeploymentFile {
        version: DEPLOYMENT_FILE_VERSION,
        chain_id,
        contracts: DeployedContracts {
            token,
            verifier,
            marketplace,
            settlement,
            bandwidth_channels: Some(*channels.address()),
        },
        start_block,
        config: ConfigRecord::from(&config),
        verifying_key: VerifyingKeyHash {
            algorithm: VERIFYING_KEY_HASH_ALGORITHM.to_owned(),
            hash: verifying_key_hash(vk),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_config;

    fn vk(seed: u8) -> VerifyingKeyWords {
        VerifyingKeyWords {
            alpha: [[seed; 32]; 2],
            beta: [[1; 32]; 4],
            gamma: [[2; 32]; 4],
            delta: [[3; 32]; 4],
            ic: vec![[[4; 32]; 2]; 3],
        }
    }

    fn sample() -> DeploymentFile {
        let (token, verifier) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut config = ConfigRecord::from(&dev_config(token, verifier));
        config.accusation_bond = u128::from(u64::MAX) * 1000; // beyond JSON's exact integers
        DeploymentFile {
            version: DEPLOYMENT_FILE_VERSION,
            chain_id: 31337,
            contracts: DeployedContracts {
                token,
                verifier,
                marketplace: Address::repeat_byte(3),
                settlement: Address::repeat_byte(4),
                bandwidth_channels: Some(Address::repeat_byte(5)),
            },
            start_block: 7,
            config,
            verifying_key: VerifyingKeyHash {
                algorithm: VERIFYING_KEY_HASH_ALGORITHM.into(),
                hash: verifying_key_hash(&vk(0)),
            },
        }
    }

    #[test]
    fn writes_and_reads_a_deployment_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("deployment.json");
        let file = sample();
        file.write(&path).expect("write");
        assert_eq!(DeploymentFile::read(&path).expect("read"), file);
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.contains("\"chainId\": 31337") && text.contains("\"periodLength\": 60"), "{text}");
        assert!(text.contains("\"accusationBond\": \"18446744073709551615000\""), "{text}");
        // Written again over itself, and no temporary file left behind.
        file.write(&path).expect("rewrite");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("deployment.json")]);
        // The configuration goes back to the contract's struct unchanged.
        let config = file.marketplace_config().expect("config");
        assert_eq!(ConfigRecord::from(&config), file.config);
    }

    #[test]
    fn refuses_other_versions_and_malformed_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("d.json");
        let mut value = serde_json::to_value(sample()).expect("json");
        value["version"] = 2.into();
        std::fs::write(&path, value.to_string()).expect("write");
        let e = DeploymentFile::read(&path).expect_err("version 2");
        assert!(e.to_string().contains("format version 2"), "{e}");
        std::fs::write(&path, "{\"version\": 1}").expect("write");
        assert!(matches!(DeploymentFile::read(&path), Err(DeploymentError::Parse { .. })));
        let mut value = serde_json::to_value(sample()).expect("json");
        value["config"]["accusationBond"] = "-1".into();
        std::fs::write(&path, value.to_string()).expect("write");
        assert!(matches!(DeploymentFile::read(&path), Err(DeploymentError::Parse { .. })));
        assert!(matches!(DeploymentFile::read(&dir.path().join("missing")), Err(DeploymentError::Io { .. })));
    }

    #[test]
    fn checks_the_verifying_key() {
        let file = sample();
        file.check_verifying_key(&vk(0)).expect("same key");
        let e = file.check_verifying_key(&vk(1)).expect_err("another key");
        assert!(e.to_string().contains(&verifying_key_hash(&vk(1)).to_string()), "{e}");
        assert_ne!(verifying_key_hash(&vk(0)), verifying_key_hash(&VerifyingKeyWords { ic: vec![], ..vk(0) }));
    }

    #[test]
    fn checks_configs_and_periods() {
        let (t, v) = (Address::repeat_byte(1), Address::repeat_byte(2));
        check_config(&dev_config(t, v)).expect("dev config");
        let bad = MarketplaceConfig { periodLength: 3, proofTimeout: 30, slashPercentage: 40, ..dev_config(t, v) };
        let e = check_config(&bad).expect_err("bad").to_string();
        assert!(e.contains("period 3 s is below 4 s") && e.contains("proof timeout") && e.contains("3 × 40"), "{e}");
        check_period(12, Some(6.0)).expect("twice the interval");
        check_period(4, None).expect("no interval known");
        let e = check_period(11, Some(6.0)).expect_err("too short").to_string();
        assert!(e.contains("choose at least 12 s"), "{e}");
    }
}
