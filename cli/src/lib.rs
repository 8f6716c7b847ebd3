//! The `vellum` command line: `node`, `validator`, `deploy`, `devnet`, `upload`, `download`,
//! `prover` and `bench`. The binary (`src/main.rs`) only installs the allocator and calls
//! [`main`]; the node itself is the `node` library, which knows nothing of flags or terminals.
//!
//! Every flag can also come from a `VELLUM_*` environment variable or from the TOML file named
//! by `--config` (see [`config_file`]); the command line wins over the environment, which wins
//! over the file.

mod bench;
mod bench_erasure;
mod bench_hash;
mod bench_prove;
mod bench_validator;
mod client;
pub mod config_file;
mod deploy;
mod devnet;
mod durability_cmd;
mod logging;
mod prover_cmd;
mod size;
mod validator_net;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use self::size::parse_size;
use node::api::API_PREFIX;
use node::service::{self, NodeConfig};
use vellum_testkit::process::{METRICS_PREFIX, READY_PREFIX, VALIDATOR_PREFIX};

/// Vellum: a decentralized storage network with erasure coding and SNARK storage proofs.
#[derive(Debug, Parser)]
#[command(name = "vellum", version, about, args_override_self = true)]
pub struct Cli {
    /// TOML file with flag values (keys are the long flag names, e.g. `data-dir = "D1"`).
    #[arg(long, global = true, env = "VELLUM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a storage node.
    Node(Box<NodeArgs>),
    /// Upload a file to a node; prints its CID.
    Upload(UploadArgs),
    /// Download a dataset by CID from a node (which fetches it from the network if needed).
    Download(DownloadArgs),
    /// Benchmarks that print tables.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Storage-proof keys, proofs and their verification.
    #[command(subcommand)]
    Prover(prover_cmd::ProverCommand),
    /// Run a validator: follow the marketplace, anchor period seeds, mark missed proofs.
    Validator(ValidatorArgs),
    /// Deploy the contracts (a test token unless --token, the verifier of a prover key, the
    /// marketplace) to any EVM chain and write the deployment file nodes and validators start from.
    Deploy(deploy::DeployArgs),
    /// Run a whole network on this machine (anvil, contracts, client, hosts, validator) through
    /// a storage request, lost hosts and lazy repair; prints a timeline and a summary.
    Devnet(devnet::DevnetArgs),
    /// From a loss target to erasure parameters (K, M), samples per proof and repair traffic,
    /// by Vellum's durability model; `--table` prints the reference whitepaper's Table 1.
    Durability(durability_cmd::DurabilityArgs),
}

/// Flags of `vellum validator`.
#[derive(Debug, Args)]
pub struct ValidatorArgs {
    /// Directory for the validator's state (its cursor, the slots it watches, its counters).
    #[arg(long, env = "VELLUM_DATA_DIR", default_value = "vellum-validator")]
    pub data_dir: PathBuf,
    /// JSON-RPC endpoint of the chain holding the marketplace (http(s):// or ws(s)://).
    #[arg(long, env = "VELLUM_ETH_PROVIDER", value_name = "URL")]
    pub eth_provider: String,
    /// File with the validator wallet's private key in hex; refused unless only its owner may read it.
    #[arg(long, env = "VELLUM_ETH_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub eth_private_key_file: PathBuf,
    /// Deployment file from `vellum deploy`: the marketplace, and the block to read its events
    /// from; refused when it is for another chain or its marketplace has no code there.
    #[arg(long, env = "VELLUM_DEPLOYMENT", value_name = "FILE")]
    pub deployment: Option<PathBuf>,
    /// Address of the Marketplace contract (instead of --deployment).
    #[arg(long, env = "VELLUM_MARKETPLACE_ADDRESS", value_name = "ADDRESS")]
    pub marketplace_address: Option<String>,
    /// Validators sharing the work: each watches the slots with slot id mod groups = its index.
    #[arg(long, env = "VELLUM_VALIDATOR_GROUPS", default_value_t = 1)]
    pub validator_groups: u64,
    /// This validator's group (0 ≤ index < groups).
    #[arg(long, env = "VELLUM_VALIDATOR_GROUP_INDEX", default_value_t = 0)]
    pub validator_group_index: u64,
    /// Most missed proofs marked in one batch of transactions.
    #[arg(long, env = "VELLUM_VALIDATOR_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,
    /// First block whose marketplace events are read on the first start [default: the
    /// deployment file's start block, else 0].
    #[arg(long, env = "VELLUM_MARKETPLACE_START_BLOCK")]
    pub marketplace_start_block: Option<u64>,
    /// Log level or filter, as for `vellum node`.
    #[arg(long, env = "VELLUM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Serve Prometheus metrics (slots watched, periods checked, proofs missed, marks, rewards).
    #[arg(long, env = "VELLUM_METRICS")]
    pub metrics: bool,
    /// Address the metrics endpoint binds to.
    #[arg(long, env = "VELLUM_METRICS_ADDRESS", default_value = "127.0.0.1")]
    pub metrics_address: IpAddr,
    /// Port of the metrics endpoint (0 picks a free one).
    #[arg(long, env = "VELLUM_METRICS_PORT", default_value_t = 8009)]
    pub metrics_port: u16,
    /// The deployment's verifying key, to check proofs published off the chain: the `.vk` file
    /// from `vellum prover setup` (or the proving key, which holds it); checked against the
    /// deployment file's key hash when one is given.
    #[arg(long, env = "VELLUM_VERIFYING_KEY", value_name = "FILE")]
    pub verifying_key: PathBuf,
    /// IP address the validator's libp2p peer listens on (it receives proofs over libp2p).
    #[arg(short = 'i', long, env = "VELLUM_LISTEN_IP", default_value = "0.0.0.0")]
    pub listen_ip: IpAddr,
    /// TCP port for libp2p (0 picks a free one).
    #[arg(long, env = "VELLUM_TCP_PORT", default_value_t = 0)]
    pub tcp_port: u16,
    /// UDP port for QUIC (0 picks a free one).
    #[arg(long, env = "VELLUM_UDP_PORT", default_value_t = 0)]
    pub udp_port: u16,
    /// A node to join the network through (`spr:…` or a multiaddr ending in `/p2p/<peer id>`);
    /// repeatable.
    #[arg(long = "bootstrap-node", env = "VELLUM_BOOTSTRAP_NODE", value_delimiter = ',')]
    pub bootstrap_node: Vec<String>,
    /// Fault injection for tests: accuse every required proof, proven or not (a validator that
    /// griefs honest hosts, and loses its bonds' shares for it).
    #[arg(long, env = "VELLUM_FAULT_ACCUSE_PROVEN", hide = true)]
    pub fault_accuse_proven: bool,
}

/// Flags of `vellum node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Directory for the node's key, metadata and data.
    #[arg(long, env = "VELLUM_DATA_DIR", default_value = "vellum-data")]
    pub data_dir: PathBuf,
    /// IP address to listen on and announce.
    #[arg(short = 'i', long, env = "VELLUM_LISTEN_IP", default_value = "0.0.0.0")]
    pub listen_ip: IpAddr,
    /// REST API port (0 picks a free one).
    #[arg(long, env = "VELLUM_API_PORT", default_value_t = 8080)]
    pub api_port: u16,
    /// Address the REST API binds to; keep it on loopback unless the API must be reachable.
    #[arg(long, env = "VELLUM_API_BINDADDR", default_value = "127.0.0.1")]
    pub api_bindaddr: IpAddr,
    /// A browser origin allowed to use the REST API (`https://app.example`, or `*` for any);
    /// repeatable. Without one, requests from web pages of other origins are refused.
    #[arg(long, env = "VELLUM_API_CORS_ORIGIN", value_delimiter = ',')]
    pub api_cors_origin: Vec<String>,
    /// A host name the REST API answers to besides loopback and its bound address (the `Host`
    /// header of other names is refused, against DNS rebinding); repeatable.
    #[arg(long, env = "VELLUM_API_ALLOWED_HOST", value_delimiter = ',')]
    pub api_allowed_host: Vec<String>,
    /// REST API connections served at once (more get 503 with Retry-After); at most half the
    /// open-file limit.
    #[arg(long, env = "VELLUM_API_MAX_CONNECTIONS", default_value_t = 4096)]
    pub api_max_connections: usize,
    /// Uploads accepted at once (more get 503 with Retry-After).
    #[arg(long, env = "VELLUM_API_MAX_UPLOADS", default_value_t = 64)]
    pub api_max_uploads: usize,
    /// Seconds an upload may take to send each 64 KiB of its body before it is cut (408).
    #[arg(long, env = "VELLUM_API_UPLOAD_BLOCK_TIMEOUT", default_value_t = 30, hide = true)]
    pub api_upload_block_timeout: u64,
    /// Seconds a client may take to send a request's headers (and the longest a kept-alive
    /// connection may sit idle).
    #[arg(long, env = "VELLUM_API_HEADER_TIMEOUT", default_value_t = 10, hide = true)]
    pub api_header_timeout: u64,
    /// UDP port for QUIC and discovery (0 picks a free one).
    #[arg(long, env = "VELLUM_UDP_PORT", default_value_t = 8090)]
    pub udp_port: u16,
    /// TCP port for libp2p (0 picks a free one).
    #[arg(long, env = "VELLUM_TCP_PORT", default_value_t = 0)]
    pub tcp_port: u16,
    /// A node to join the network through: `spr:…` or a multiaddr ending in `/p2p/<peer id>`.
    /// Repeatable; in the environment, separate entries with commas.
    #[arg(long = "bootstrap-node", env = "VELLUM_BOOTSTRAP_NODE", value_delimiter = ',')]
    pub bootstrap_node: Vec<String>,
    /// Log level (TRACE, DEBUG, INFO, NOTICE, WARN, ERROR) or a filter like `info,vellum::net=debug`.
    #[arg(long, env = "VELLUM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Serve Prometheus metrics.
    #[arg(long, env = "VELLUM_METRICS")]
    pub metrics: bool,
    /// Address the metrics endpoint binds to.
    #[arg(long, env = "VELLUM_METRICS_ADDRESS", default_value = "127.0.0.1")]
    pub metrics_address: IpAddr,
    /// Port of the metrics endpoint.
    #[arg(long, env = "VELLUM_METRICS_PORT", default_value_t = 8008)]
    pub metrics_port: u16,
    /// Storage quota, e.g. `20GiB`.
    #[arg(long, env = "VELLUM_STORAGE_QUOTA", default_value = "20GiB", value_parser = parse_size)]
    pub storage_quota: u64,
    /// Space left free on the data dir's disk whatever the quota; uploads and fetches that would
    /// use it are refused (507), keeping room for the metadata database.
    #[arg(long, env = "VELLUM_STORAGE_MIN_FREE", default_value = "1MiB", value_parser = parse_size)]
    pub storage_min_free: u64,
    /// Sales a host takes from reservation to fill at once (each waits on its own fetch,
    /// hand-off and fill; proofs are made one at a time whatever this is).
    #[arg(long, env = "VELLUM_MAX_CONCURRENT_SALES", value_name = "N", default_value_t = node::market::DEFAULT_CONCURRENT_SALES)]
    pub max_concurrent_sales: usize,
    /// Storage requests by target (`durability` in `POST /storage/request/{cid}`): the mean time
    /// to failure assumed of a host (`1y`, `180d`, `24h`).
    #[arg(long, env = "VELLUM_DURABILITY_MTTF", value_name = "DURATION", default_value = "1y", value_parser = durability::parse_hours)]
    pub durability_mttf: f64,
    /// Storage requests by target: the mean time assumed from repair opening to the dataset's
    /// slots being filled again.
    #[arg(long, env = "VELLUM_DURABILITY_MTTR", value_name = "DURATION", default_value = "24h", value_parser = durability::parse_hours)]
    pub durability_mttr: f64,
    /// Where periodic proofs go: `off-chain` (published to validators over libp2p; on chain only
    /// to answer an accusation, so an honest host pays no gas per proof) or `on-chain`
    /// (`submitProof` every time one is required, as before).
    #[arg(long, env = "VELLUM_PROOFS", value_name = "WHERE", default_value = "off-chain", value_parser = parse_proof_mode)]
    pub proofs: node::market::ProofMode,
    /// Fault injection for tests: publish no periodic proof off the chain and answer no request
    /// for one (accusations are still answered on chain).
    #[arg(long, env = "VELLUM_FAULT_WITHHOLD_PROOFS", hide = true)]
    pub fault_withhold_proofs: bool,
    /// Fault injection for tests: every periodic proof is wrong (published, served and sent).
    #[arg(long, env = "VELLUM_FAULT_WRONG_PROOFS", hide = true)]
    pub fault_wrong_proofs: bool,
    /// Fault injection for tests: broadcast this many junk proofs a second on the proof topic.
    #[arg(long, env = "VELLUM_FAULT_FLOOD_PROOFS", value_name = "PER_SECOND", default_value_t = 0, hide = true)]
    pub fault_flood_proofs: u32,
    /// Fault injection for tests: corrupt every block served to peers.
    #[arg(long, env = "VELLUM_FAULT_CORRUPT_SERVED_BLOCKS", hide = true)]
    pub fault_corrupt_served_blocks: bool,
    /// Fault injection for tests: once a slot is filled, corrupt one byte in this percentage of
    /// its cells on disk (a host that lost or damaged part of what it is paid to keep).
    #[arg(long, env = "VELLUM_FAULT_CORRUPT_SLOT_CELLS", value_name = "PERCENT", hide = true)]
    pub fault_corrupt_slot_cells: Option<u8>,
    /// Paid bandwidth: tokens (base units) per byte served to a peer beyond its free allowance;
    /// needs --eth-provider, --eth-private-key-file and the channels contract (--deployment or
    /// --bandwidth-channels-address). Without it, serving is free.
    #[arg(long, env = "VELLUM_BANDWIDTH_PRICE", value_name = "TOKENS", value_parser = parse_tokens)]
    pub bandwidth_price: Option<alloy::primitives::U256>,
    /// Paid bandwidth: bytes served free to each peer.
    #[arg(long, env = "VELLUM_BANDWIDTH_FREE", default_value = "64MiB", value_parser = parse_size)]
    pub bandwidth_free: u64,
    /// Paid bandwidth: bytes a peer may be served beyond what its vouchers cover.
    #[arg(long, env = "VELLUM_BANDWIDTH_CREDIT", default_value = "8MiB", value_parser = parse_size)]
    pub bandwidth_credit: u64,
    /// Paid bandwidth: a channel's vouchers are redeemed on chain once this many bytes' worth is
    /// unredeemed (and at once when its payer asks to close it).
    #[arg(long, env = "VELLUM_BANDWIDTH_REDEEM_EVERY", default_value = "1GiB", value_parser = parse_size)]
    pub bandwidth_redeem_every: u64,
    /// Paid bandwidth: peers past their allowance and credit that do not pay are `refuse`d, or
    /// served after every paying peer (`serve-last`).
    #[arg(long, env = "VELLUM_BANDWIDTH_UNPAID", default_value = "refuse", value_parser = parse_unpaid)]
    pub bandwidth_unpaid: node::bandwidth::Unpaid,
    /// Paid bandwidth: the highest price per byte this node pays providers that charge (it
    /// opens a channel to each, within --bandwidth-budget). Without it, such providers are left.
    #[arg(long, env = "VELLUM_MAX_PRICE", value_name = "TOKENS", value_parser = parse_tokens)]
    pub max_price: Option<alloy::primitives::U256>,
    /// Paid bandwidth: tokens this node may deposit in channels in all.
    #[arg(long, env = "VELLUM_BANDWIDTH_BUDGET", value_name = "TOKENS", value_parser = parse_tokens)]
    pub bandwidth_budget: Option<alloy::primitives::U256>,
    /// Paid bandwidth: tokens deposited in each channel (at most what is left of the budget; a
    /// spent channel is followed by another) [default: a quarter of the budget].
    #[arg(long, env = "VELLUM_BANDWIDTH_DEPOSIT", value_name = "TOKENS", value_parser = parse_tokens)]
    pub bandwidth_deposit: Option<alloy::primitives::U256>,
    /// Paid bandwidth: bytes paid for ahead of what arrived, at most (the most a provider that
    /// stops serving can keep).
    #[arg(long, env = "VELLUM_BANDWIDTH_PREPAY", default_value = "16MiB", value_parser = parse_size)]
    pub bandwidth_prepay: u64,
    /// Paid bandwidth: the BandwidthChannels contract (instead of the deployment file's).
    #[arg(long, env = "VELLUM_BANDWIDTH_CHANNELS_ADDRESS", value_name = "ADDRESS")]
    pub bandwidth_channels_address: Option<alloy::primitives::Address>,
    /// Fault injection for tests: pay providers with `forge`d, `replay`ed or `over-budget`
    /// vouchers, or sign none after opening the channel (`no-pay`).
    #[arg(long, env = "VELLUM_FAULT_BANDWIDTH_VOUCHERS", value_parser = parse_voucher_fault, hide = true)]
    pub fault_bandwidth_vouchers: Option<node::bandwidth::VoucherFault>,
    /// Fault injection for tests: once a peer has paid, serve it nothing more.
    #[arg(long, env = "VELLUM_FAULT_BANDWIDTH_STOP_AFTER_PAYMENT", hide = true)]
    pub fault_bandwidth_stop_after_payment: bool,
    /// Persistence mode: JSON-RPC endpoint of the chain holding the marketplace (http(s):// or ws(s)://).
    #[arg(long, env = "VELLUM_ETH_PROVIDER", value_name = "URL")]
    pub eth_provider: Option<String>,
    /// Persistence mode: file with the wallet's private key in hex; refused unless only its owner may read it.
    #[arg(long, env = "VELLUM_ETH_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub eth_private_key_file: Option<PathBuf>,
    /// Persistence mode: deployment file from `vellum deploy` (the marketplace, the block to read
    /// its events from, the verifying key's hash); refused when it is for another chain, its
    /// marketplace has no code there, or its verifier holds another key than --prover-key's.
    #[arg(long, env = "VELLUM_DEPLOYMENT", value_name = "FILE")]
    pub deployment: Option<PathBuf>,
    /// Persistence mode: address of the Marketplace contract (instead of --deployment).
    #[arg(long, env = "VELLUM_MARKETPLACE_ADDRESS", value_name = "ADDRESS")]
    pub marketplace_address: Option<String>,
    /// Persistence mode: proving key from `vellum prover setup` (the verifier on chain must hold its key).
    #[arg(long, env = "VELLUM_PROVER_KEY", value_name = "FILE")]
    pub prover_key: Option<PathBuf>,
    /// Persistence mode: first block whose marketplace events are read on the first start
    /// [default: the deployment file's start block, else 0].
    #[arg(long, env = "VELLUM_MARKETPLACE_START_BLOCK")]
    pub marketplace_start_block: Option<u64>,
}

impl NodeArgs {
    /// The persistence-mode configuration: all four flags (the marketplace from --deployment or
    /// --marketplace-address), or none.
    async fn market(&self) -> anyhow::Result<Option<node::market::MarketConfig>> {
        let given = [
            self.eth_provider.is_some(),
            self.eth_private_key_file.is_some(),
            self.marketplace_address.is_some() || self.deployment.is_some(),
            self.prover_key.is_some(),
        ];
        if given.iter().all(|g| !g) {
            return Ok(None);
        }
        // A node that only pays or charges for bandwidth uses the wallet flags (and the
        // deployment file) without persistence mode.
        if self.prover_key.is_none()
            && self.marketplace_address.is_none()
            && (self.bandwidth_price.is_some() || self.max_price.is_some())
        {
            return Ok(None);
        }
        let (Some(endpoint), Some(key_file), true, Some(prover_key)) =
            (self.eth_provider.clone(), self.eth_private_key_file.clone(), given[2], self.prover_key.clone())
        else {
            anyhow::bail!(
                "persistence mode needs all of --eth-provider, --eth-private-key-file, --deployment (or \
                 --marketplace-address) and --prover-key"
            );
        };
        let (marketplace, start_block) = deploy::marketplace(
            &endpoint,
            self.marketplace_address.as_deref(),
            self.deployment.as_deref(),
            self.marketplace_start_block,
            Some(&prover_key),
        )
        .await?;
        Ok(Some(node::market::MarketConfig {
            chain: contracts::client::ChainConfig { endpoint, key_file, marketplace },
            prover_key,
            start_block,
            fault_corrupt_cells_percent: self.fault_corrupt_slot_cells.unwrap_or(0),
            max_concurrent_sales: self.max_concurrent_sales,
            proofs: self.proofs,
            fault_withhold_proofs: self.fault_withhold_proofs,
            fault_wrong_proofs: self.fault_wrong_proofs,
            fault_flood_proofs: self.fault_flood_proofs,
            durability: node::market::DurabilityAssumptions {
                mttf_hours: self.durability_mttf,
                mttr_hours: self.durability_mttr,
            },
        }))
    }

    /// Paid bandwidth's configuration: none unless --bandwidth-price or --max-price is given.
    fn bandwidth(&self) -> anyhow::Result<Option<node::bandwidth::BandwidthConfig>> {
        if self.bandwidth_price.is_none() && self.max_price.is_none() {
            if self.bandwidth_budget.is_some() {
                anyhow::bail!("--bandwidth-budget needs --max-price");
            }
            return Ok(None);
        }
        let (Some(endpoint), Some(key_file)) = (self.eth_provider.clone(), self.eth_private_key_file.clone()) else {
            anyhow::bail!("paid bandwidth needs --eth-provider and --eth-private-key-file");
        };
        let contract = match (self.bandwidth_channels_address, &self.deployment) {
            (Some(a), _) => a,
            (None, Some(path)) => contracts::deployment::DeploymentFile::read(path)?
                .contracts
                .bandwidth_channels
                .ok_or_else(|| anyhow::anyhow!("{} names no bandwidth channels contract", path.display()))?,
            (None, None) => anyhow::bail!("paid bandwidth needs --deployment or --bandwidth-channels-address"),
        };
        let provider = self.bandwidth_price.map(|price| node::bandwidth::ProviderConfig {
            price_per_byte: price,
            free_bytes: self.bandwidth_free,
            credit_bytes: self.bandwidth_credit,
            redeem_every_bytes: self.bandwidth_redeem_every,
            unpaid: self.bandwidth_unpaid,
            fault_stop_after_payment: self.fault_bandwidth_stop_after_payment,
        });
        let payer = match self.max_price {
            Some(max_price) => {
                let Some(budget) = self.bandwidth_budget else {
                    anyhow::bail!("--max-price needs --bandwidth-budget (the tokens it may deposit in channels)");
                };
                Some(node::bandwidth::PayerConfig {
                    max_price,
                    budget,
                    deposit: self.bandwidth_deposit.unwrap_or(
                        (budget / alloy::primitives::U256::from(4u64)).max(alloy::primitives::U256::from(1u64)),
                    ),
                    prepay_bytes: self.bandwidth_prepay,
                    fault: self.fault_bandwidth_vouchers,
                })
            }
            None => None,
        };
        Ok(Some(node::bandwidth::BandwidthConfig { endpoint, key_file, contract, provider, payer }))
    }
}

fn parse_tokens(text: &str) -> Result<alloy::primitives::U256, String> {
    text.trim().parse().map_err(|e| format!("`{text}`: not a token amount in base units ({e})"))
}

fn parse_unpaid(text: &str) -> Result<node::bandwidth::Unpaid, String> {
    match text {
        "refuse" => Ok(node::bandwidth::Unpaid::Refuse),
        "serve-last" => Ok(node::bandwidth::Unpaid::ServeLast),
        other => Err(format!("`{other}`: expected `refuse` or `serve-last`")),
    }
}

fn parse_voucher_fault(text: &str) -> Result<node::bandwidth::VoucherFault, String> {
    use node::bandwidth::VoucherFault;
    match text {
        "forge" => Ok(VoucherFault::Forge),
        "replay" => Ok(VoucherFault::Replay),
        "over-budget" => Ok(VoucherFault::OverBudget),
        "no-pay" => Ok(VoucherFault::NoPay),
        other => Err(format!("`{other}`: expected forge, replay, over-budget or no-pay")),
    }
}

fn parse_proof_mode(text: &str) -> Result<node::market::ProofMode, String> {
    match text {
        "off-chain" => Ok(node::market::ProofMode::OffChain),
        "on-chain" => Ok(node::market::ProofMode::OnChain),
        other => Err(format!("`{other}`: expected `off-chain` or `on-chain`")),
    }
}

/// Where the client commands find the node.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Base URL of the node's REST API.
    #[arg(long, env = "VELLUM_API", default_value = "http://127.0.0.1:8080/api/codex/v1")]
    pub api: String,
}

/// Flags of `vellum upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The file to upload.
    pub file: PathBuf,
    /// Encrypt it (on the node, before it is stored or encoded) under a fresh key, printed on
    /// the second line: keep it, the node keeps no copy (unless --keep-key) and the data cannot
    /// be read without it. Hosts only ever hold ciphertext.
    #[arg(long)]
    pub encrypt: bool,
    /// With --encrypt: the node keeps the key in a file only its user can read, so downloads
    /// from that node need no key.
    #[arg(long, requires = "encrypt")]
    pub keep_key: bool,
    /// The node.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `vellum download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The dataset's CID.
    pub cid: String,
    /// Where to write it.
    #[arg(short, long, env = "VELLUM_OUTPUT")]
    pub output: PathBuf,
    /// The key of an encrypted dataset (64 hex digits; sent in a request header, never in the
    /// URL). Prefer --key-file or the environment: command lines are visible to other users.
    #[arg(long, env = "VELLUM_KEY", hide_env_values = true, conflicts_with = "key_file")]
    pub key: Option<String>,
    /// A file holding the key of an encrypted dataset.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The node.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Upload through one node's REST API and download node-to-node on loopback.
    Transfer(bench::TransferArgs),
    /// Reed–Solomon encode and decode: raw library against the slot pipeline.
    Erasure(bench_erasure::ErasureArgs),
    /// Poseidon2 slot-tree hashing on one and two cores, and protecting a dataset end to end.
    Hash(bench_hash::HashArgs),
    /// Storage proofs: constraints, setup, proving and verifying times, key sizes, memory.
    Prove(bench_prove::ProveArgs),
    /// A validator's wall time and RPC calls per period with thousands of filled slots on anvil.
    Validator(bench_validator::ValidatorBenchArgs),
    /// The durability simulator: dataset-years simulated per second.
    Durability(durability_cmd::BenchDurabilityArgs),
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let args = match config_file::args_with_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vellum: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if !matches!(cli.command, Command::Node(_) | Command::Validator(_)) {
        // Commands other than the node log warnings, or what `VELLUM_LOG` asks for.
        let level = std::env::var("VELLUM_LOG").unwrap_or_else(|_| "warn".to_owned());
        if let Err(e) = logging::init(&level) {
            eprintln!("vellum: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vellum: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => run_node(*args).await,
            Command::Upload(args) => client::upload(args).await,
            Command::Download(args) => client::download(args).await,
            Command::Bench(BenchCommand::Transfer(args)) => bench::transfer(args).await,
            Command::Bench(BenchCommand::Erasure(args)) => tokio::task::block_in_place(|| bench_erasure::erasure(args)),
            Command::Bench(BenchCommand::Hash(args)) => tokio::task::block_in_place(|| bench_hash::hash(args)),
            Command::Bench(BenchCommand::Prove(args)) => tokio::task::block_in_place(|| bench_prove::prove(args)),
            Command::Bench(BenchCommand::Validator(args)) => bench_validator::validator(args).await,
            Command::Prover(command) => tokio::task::block_in_place(|| prover_cmd::run(command)),
            Command::Validator(args) => run_validator(args).await,
            Command::Deploy(args) => deploy::run(args).await,
            Command::Devnet(args) => devnet::run(args).await,
            Command::Durability(args) => tokio::task::block_in_place(|| durability_cmd::run(args)),
            Command::Bench(BenchCommand::Durability(args)) => {
                tokio::task::block_in_place(|| durability_cmd::bench(args))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vellum: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_validator(args: ValidatorArgs) -> anyhow::Result<()> {
    service::private_umask();
    logging::init(&args.log_level)?;
    std::fs::create_dir_all(&args.data_dir)?;
    let (marketplace, start_block) = deploy::marketplace(
        &args.eth_provider,
        args.marketplace_address.as_deref(),
        args.deployment.as_deref(),
        args.marketplace_start_block,
        Some(&args.verifying_key),
    )
    .await?;
    let checker = validator::Checker::new(&deploy::read_vk(&args.verifying_key).await?);
    let (net, proofs) = validator_net::ValidatorNet::start(
        validator_net::NetFlags {
            data_dir: &args.data_dir,
            listen_ip: args.listen_ip,
            tcp_port: args.tcp_port,
            udp_port: args.udp_port,
            bootstrap: &args.bootstrap_node,
        },
        marketplace,
    )
    .await?;
    let config = validator::ValidatorConfig {
        chain: contracts::client::ChainConfig {
            endpoint: args.eth_provider,
            key_file: args.eth_private_key_file,
            marketplace,
        },
        groups: args.validator_groups,
        group_index: args.validator_group_index,
        state_file: args.data_dir.join("validator.json"),
        start_block,
        max_batch: args.max_batch,
        fault_accuse_proven: args.fault_accuse_proven,
    };
    let validator = validator::Validator::connect(config).await?.with_proofs(net, checker, proofs);
    if args.metrics {
        let metrics = validator.metrics();
        let addr = std::net::SocketAddr::new(args.metrics_address, args.metrics_port);
        let bound = node::metrics::serve_text(addr, std::sync::Arc::new(move || metrics.render()))
            .await
            .map_err(|e| anyhow::anyhow!("metrics on {addr}: {e}"))?;
        println!("{METRICS_PREFIX}http://{bound}/metrics");
    }
    println!("{VALIDATOR_PREFIX}{}", validator_address(&validator));
    tokio::select! {
        r = validator.run() => Ok(r?),
        signal = stop_signal() => {
            tracing::info!(target: "vellum::validator", signal, "stopping");
            Ok(())
        }
    }
}

/// Resolves with the signal's name when the process is asked to stop (SIGINT or SIGTERM).
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(e) => {
            tracing::warn!(target: "vellum::node", error = %e, "SIGTERM not handled");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn validator_address<N: validator::ProofNet>(v: &validator::Validator<contracts::client::Chain, N>) -> String {
    format!("{:#x}", v.address())
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    service::private_umask();
    let control = logging::init(&args.log_level)?;
    let market = args.market().await?;
    let bandwidth = args.bandwidth()?;
    let config = NodeConfig {
        data_dir: args.data_dir,
        listen_ip: args.listen_ip,
        api_bindaddr: args.api_bindaddr,
        api_port: args.api_port,
        tcp_port: args.tcp_port,
        udp_port: args.udp_port,
        bootstrap: args.bootstrap_node,
        metrics: args.metrics.then_some(std::net::SocketAddr::new(args.metrics_address, args.metrics_port)),
        quota: args.storage_quota,
        min_free_bytes: args.storage_min_free,
        corrupt_served_blocks: args.fault_corrupt_served_blocks,
        market,
        api_policy: node::server::guard::ApiPolicyConfig {
            allowed_hosts: args.api_allowed_host,
            cors_origins: args.api_cors_origin,
            max_uploads: args.api_max_uploads,
            upload_block_timeout: std::time::Duration::from_secs(args.api_upload_block_timeout.max(1)),
            ..Default::default()
        },
        api_limits: node::server::ServerLimits {
            max_connections: args.api_max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(args.api_header_timeout.max(1)),
        },
        bandwidth,
    };
    let node = service::start(config, Some(control)).await?;
    println!("Vellum node {}", node.net.peer_id());
    if let Some(spr) = node.net.spr() {
        println!("SPR {spr}");
    }
    if let Some(m) = node.metrics_addr {
        println!("{METRICS_PREFIX}http://{m}/metrics");
    }
    println!("{READY_PREFIX}http://{}{API_PREFIX}", node.api_addr);
    tokio::select! {
        r = node.wait() => r,
        signal = stop_signal() => {
            // Every record is written (and synced) when it changes: nothing is left to flush.
            tracing::info!(target: "vellum::node", signal, "stopping");
            Ok(())
        }
    }
}
