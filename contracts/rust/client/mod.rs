//! A wallet's access to the marketplace on an EVM chain, shared by the node and the validator:
//! one wallet (its key read from a file only its owner may read), one JSON-RPC endpoint, and the
//! contract's typed bindings.
//!
//! Every call goes through [`Chain::read`] or [`Chain::send`]: a bounded number at a time,
//! retried with back-off while the endpoint is unreachable (logged once when it goes down and
//! once when it returns, see [`health`]), transactions with a gas estimate plus a margin, sent
//! one at a time from this wallet. A call's nonce is read once, when it is first sent, and every
//! resend of that call carries the same nonce (and, as long as the node took no decision on it,
//! the same signed transaction), so a resend after a send whose answer was lost can never make
//! the call happen twice; a call whose transaction never left reads a fresh nonce next time, so
//! it leaves no gap that stalls the ones after it. Reverts are never retried: they come back as
//! [`ChainError::Reverted`] with the contract error's name.

mod health;
mod key;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{Marketplace, TestToken};
use alloy::consensus::TxEnvelope;
use alloy::contract::SolCallBuilder;
use alloy::eips::BlockNumberOrTag;
use alloy::network::{Ethereum, EthereumWallet};
use alloy::primitives::{Address, TxHash, U256};
use alloy::providers::fillers::{FillProvider, JoinFill, RecommendedFillers, WalletFiller};
use alloy::providers::{DynProvider, Identity, Provider, ProviderBuilder, RootProvider, SendableTx};
use alloy::rpc::types::{Filter, Log, TransactionReceipt};
use alloy::sol_types::SolCall;
use tokio::sync::{Mutex, Semaphore};
use tracing::debug;

pub use self::health::{Health, backoff};
pub use self::key::read_key_file;

const LOG: &str = "vellum::chain";

/// Attempts per call before giving up (the caller's loop tries again later).
const ATTEMPTS: u32 = 5;
/// Calls in flight at once.
const MAX_CONCURRENT_CALLS: usize = 8;
/// How long a sent transaction may take to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a sent transaction's receipt is asked for.
const RECEIPT_POLL: Duration = Duration::from_millis(250);
/// How long the receipt of an earlier send is looked for once the node says its nonce is used
/// (it was mined, so its receipt is there unless the endpoint lags).
const NONCE_USED_GRACE: Duration = Duration::from_secs(3);
/// Blocks per `eth_getLogs` query.
pub const LOG_RANGE: u64 = 2_000;

/// Where the chain is and who we are on it.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (`http(s)://…` or `ws(s)://…`).
    pub endpoint: String,
    /// File holding the wallet's private key (hex), mode 0600.
    pub key_file: PathBuf,
    /// The marketplace contract.
    pub marketplace: Address,
}

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The key file is unusable.
    #[error("eth private key file {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The endpoint URL is unusable.
    #[error("eth provider {endpoint}: {reason}")]
    Endpoint {
        /// The URL given.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The endpoint did not answer, after retries.
    #[error("{call}: chain endpoint unreachable: {reason}")]
    Unreachable {
        /// The call.
        call: &'static str,
        /// The last error.
        reason: String,
    },
    /// The contract refused the call.
    #[error("{call} reverted: {reason}")]
    Reverted {
        /// The call.
        call: &'static str,
        /// The contract error's name, or what is known.
        reason: String,
    },
    /// The endpoint answered with an error that is not a revert.
    #[error("{call}: {reason}")]
    Rpc {
        /// The call.
        call: &'static str,
        /// The error.
        reason: String,
    },
}

impl ChainError {
    /// The contract error's name when the call reverted (e.g. `ProofAlreadySubmitted`).
    pub fn revert_reason(&self) -> Option<&str> {
        match self {
            ChainError::Reverted { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The marketplace error the call reverted with, if it reverted with one of them.
    pub fn market_error(&self) -> Option<crate::MarketError> {
        self.revert_reason().and_then(crate::MarketError::from_name)
    }

    /// Whether the endpoint was unreachable (worth trying again later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ChainError::Unreachable { .. })
    }
}

/// How an alloy error is handled.
enum Failure {
    /// The endpoint did not answer: retry.
    Transient(String),
    /// The contract refused: report.
    Revert(String),
    /// Anything else: report.
    Other(String),
}

fn classify(e: &alloy::contract::Error) -> Failure {
    use alloy::contract::Error as E;
    if let Some(decoded) = e.as_decoded_interface_error::<Marketplace::MarketplaceErrors>() {
        let name = format!("{decoded:?}");
        return Failure::Revert(name.split(['(', ' ', '{']).next().unwrap_or_default().to_owned());
    }
    if let Some(data) = e.as_revert_data() {
        return Failure::Revert(format!("revert data 0x{}", alloy::primitives::hex::encode(&data)));
    }
    match e {
        E::TransportError(t) if t.is_transport_error() => Failure::Transient(t.to_string()),
        E::TransportError(alloy::transports::RpcError::ErrorResp(p)) if p.message.contains("revert") => {
            Failure::Revert(p.message.to_string())
        }
        E::TransportError(t) => Failure::Transient(t.to_string()),
        E::PendingTransactionError(p) => Failure::Transient(p.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

fn classify_transport(e: &alloy::transports::TransportError) -> Failure {
    if e.is_transport_error() { Failure::Transient(e.to_string()) } else { Failure::Other(e.to_string()) }
}

/// What a node's refusal of a signed transaction says about its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The node has this very transaction already (in its pool or mined).
    Known,
    /// The nonce is taken: a transaction with it was mined, or another one waits in the pool.
    NonceUsed,
}

/// The refusal an error message of a node reports, if it is one about the nonce (geth, erigon,
/// reth, anvil, besu and nethermind spell them differently; case, spaces and underscores aside).
fn refusal(message: &str) -> Option<Refusal> {
    const KNOWN: &[&str] = &["alreadyknown", "knowntransaction", "alreadyimported", "alreadyinmempool"];
    const NONCE_USED: &[&str] =
        &["noncetoolow", "nonceistoolow", "oldnonce", "replacementtransactionunderpriced", "replacementunderpriced"];
    let compact: String = message.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    if KNOWN.iter().any(|k| compact.contains(k)) {
        Some(Refusal::Known)
    } else if NONCE_USED.iter().any(|k| compact.contains(k)) {
        Some(Refusal::NonceUsed)
    } else {
        None
    }
}

/// How a failed `eth_sendRawTransaction` is handled.
enum SendFailure {
    /// No answer: the transaction may have reached the node; resend it.
    Lost(String),
    /// The node refused it for its nonce.
    Refused(Refusal, String),
    /// The node refused it for another reason: sign it again (same nonce) and retry.
    Rejected(String),
    /// The node says it reverts.
    Revert(String),
    /// Anything else: report.
    Other(String),
}

fn classify_send(e: &alloy::transports::TransportError) -> SendFailure {
    use alloy::transports::RpcError;
    match e {
        RpcError::ErrorResp(p) => match refusal(&p.message) {
            Some(r) => SendFailure::Refused(r, p.message.to_string()),
            None if p.message.contains("revert") => SendFailure::Revert(p.message.to_string()),
            None => SendFailure::Rejected(p.message.to_string()),
        },
        t if t.is_transport_error() => SendFailure::Lost(t.to_string()),
        RpcError::LocalUsageError(_) => SendFailure::Other(e.to_string()),
        other => SendFailure::Lost(other.to_string()),
    }
}

/// Transaction hashes for a message.
fn hash_list(hashes: &[TxHash]) -> String {
    hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
}

/// Connects to a JSON-RPC endpoint, `http(s)://…` or `ws(s)://…` (a WebSocket is opened at
/// once, HTTP connects on its first call); anything else is refused with the reason. Chains and
/// deployments connect through it alone.
pub(crate) async fn connect_endpoint(endpoint: &str) -> Result<RootProvider, String> {
    const SCHEMES: &str = "use an http(s):// or ws(s):// URL";
    let url = endpoint.parse::<alloy::transports::http::reqwest::Url>().map_err(|e| format!("{e}: {SCHEMES}"))?;
    let bare = ProviderBuilder::new().disable_recommended_fillers();
    match url.scheme() {
        "http" | "https" => Ok(bare.connect_http(url)),
        "ws" | "wss" => {
            bare.connect_ws(alloy::providers::WsConnect::new(url.as_str())).await.map_err(|e| e.to_string())
        }
        other => Err(format!("unsupported scheme {other}: {SCHEMES}")),
    }
}

/// The wallet's provider: alloy's recommended fillers (gas, nonce, chain id) and the wallet's
/// signer over the endpoint. [`Chain::send`] signs with it before sending, so that it knows each
/// transaction's hash even when the send's answer is lost.
type WalletProvider = FillProvider<
    JoinFill<JoinFill<Identity, <Ethereum as RecommendedFillers>::RecommendedFillers>, WalletFiller<EthereumWallet>>,
    RootProvider,
>;

/// Amounts derived from the marketplace's configuration.
#[derive(Debug, Clone, Copy)]
pub struct MarketParams {
    /// Seconds per proof period.
    pub period_length: u64,
    /// Seconds after a period during which its missing proofs can be accused.
    pub proof_timeout: u64,
    /// Seconds an accused host has to defend with its proof.
    pub response_window: u64,
    /// Longest request expiry accepted.
    pub max_request_expiry: u64,
    /// Consecutive missed proofs after which a host loses its slot.
    pub max_missed_proofs: u64,
    /// % of a slot's collateral slashed per missed proof.
    pub slash_percentage: u64,
    /// % of a slashed amount paid to whoever accused the miss.
    pub validator_reward_percentage: u64,
    /// % of a slot's collateral a reservation takes as its deposit.
    pub reservation_deposit_percentage: u64,
    /// Seconds a reservation holds a slot for its host (capped by the request's expiry).
    pub reservation_duration: u64,
    /// Seconds after a slot opens until every host may reserve it.
    pub dispersal_window: u64,
    /// Wei an accuser deposits per accusation.
    pub accusation_bond: U256,
}

impl MarketParams {
    /// The deposit a reservation of a slot with `collateral` takes (rounded down, as the
    /// contract does).
    pub fn deposit(&self, collateral: U256) -> U256 {
        collateral.saturating_mul(U256::from(self.reservation_deposit_percentage)) / U256::from(100u64)
    }
}

struct Inner {
    endpoint: String,
    provider: DynProvider,
    signing: WalletProvider,
    signer: alloy::signers::local::PrivateKeySigner,
    address: Address,
    marketplace: Address,
    token: Address,
    params: MarketParams,
    health: Health,
    calls: Semaphore,
    /// Held while a transaction is sent; shared by handles on one wallet (see
    /// [`Chain::connect_sharing`]) so that their nonces never collide.
    sending: Arc<Mutex<()>>,
}

/// A cloneable handle on the chain, the wallet and the marketplace.
#[derive(Clone)]
pub struct Chain(Arc<Inner>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("endpoint", &self.0.endpoint)
            .field("address", &self.0.address)
            .field("marketplace", &self.0.marketplace)
            .finish()
    }
}

impl Chain {
    /// Reads the key, connects, and reads the marketplace's configuration (retrying while the
    /// endpoint does not answer, up to the usual attempts).
    pub async fn connect(config: &ChainConfig) -> Result<Self, ChainError> {
        Self::connect_sharing(config, None).await
    }

    /// As [`Chain::connect`], sending one transaction at a time together with `wallet` (another
    /// handle on the same key, such as the bandwidth channels'), so that the two never pick the
    /// same nonce.
    pub async fn connect_sharing(config: &ChainConfig, wallet: Option<&Chain>) -> Result<Self, ChainError> {
        let mut chain = Self::wallet_inner(&config.endpoint, &config.key_file, config.marketplace).await?;
        if let Some(w) = wallet
            && w.0.address == chain.address
        {
            chain.sending = Arc::clone(&w.0.sending);
        }
        let probe = Chain(Arc::new(chain));
        let market = probe.market();
        let c = probe.read("config", market.config()).await?;
        chain = match Arc::try_unwrap(probe.0) {
            Ok(inner) => inner,
            Err(_) => {
                return Err(ChainError::Endpoint {
                    endpoint: config.endpoint.clone(),
                    reason: "internal: chain handle shared during start".into(),
                });
            }
        };
        chain.token = c.token;
        chain.params = MarketParams {
            period_length: u64::from(c.periodLength.max(1)),
            proof_timeout: u64::from(c.proofTimeout),
            response_window: u64::from(c.responseWindow),
            max_request_expiry: u64::from(c.maxRequestExpiry),
            max_missed_proofs: u64::from(c.maxMissedProofs.max(1)),
            slash_percentage: u64::from(c.slashPercentage),
            validator_reward_percentage: u64::from(c.validatorRewardPercentage),
            reservation_deposit_percentage: u64::from(c.reservationDepositPercentage),
            reservation_duration: u64::from(c.reservationDuration),
            dispersal_window: u64::from(c.dispersalWindow),
            accusation_bond: U256::from(c.accusationBond),
        };
        Ok(Chain(Arc::new(chain)))
    }

    /// A wallet on an endpoint, with no marketplace: for the bandwidth channels of a node that
    /// does not sell or buy storage. Its marketplace calls fail; [`Chain::channels`] works.
    pub async fn connect_wallet(endpoint: &str, key_file: &std::path::Path) -> Result<Self, ChainError> {
        Ok(Chain(Arc::new(Self::wallet_inner(endpoint, key_file, Address::ZERO).await?)))
    }

    async fn wallet_inner(
        endpoint: &str,
        key_file: &std::path::Path,
        marketplace: Address,
    ) -> Result<Inner, ChainError> {
        let signer = read_key_file(key_file)?;
        let address = signer.address();
        let endpoint_err = |reason: String| ChainError::Endpoint { endpoint: endpoint.to_string(), reason };
        let root = connect_endpoint(endpoint).await.map_err(endpoint_err)?;
        let signing = ProviderBuilder::new().wallet(signer.clone()).connect_provider(root);
        Ok(Inner {
            endpoint: endpoint.to_string(),
            provider: signing.clone().erased(),
            signing,
            signer,
            address,
            marketplace,
            token: Address::ZERO,
            params: MarketParams {
                period_length: 1,
                proof_timeout: 1,
                response_window: 1,
                max_request_expiry: 0,
                max_missed_proofs: 1,
                slash_percentage: 0,
                validator_reward_percentage: 0,
                reservation_deposit_percentage: 0,
                reservation_duration: 0,
                dispersal_window: 0,
                accusation_bond: U256::ZERO,
            },
            health: Health::default(),
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
            sending: Arc::new(Mutex::new(())),
        })
    }

    /// The bandwidth channels contract at `address`, on this wallet's provider.
    pub fn channels(&self, address: Address) -> crate::BandwidthChannels::BandwidthChannelsInstance<DynProvider> {
        crate::BandwidthChannels::new(address, self.0.provider.clone())
    }

    /// An ERC-20 at `address` (a channel contract's token), on this wallet's provider.
    pub fn erc20(&self, address: Address) -> TestToken::TestTokenInstance<DynProvider> {
        TestToken::new(address, self.0.provider.clone())
    }

    /// The chain's id.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.provider_call("eth_chainId", || self.0.provider.get_chain_id()).await
    }

    /// This wallet's signature of a bandwidth voucher (see [`crate::bandwidth`]).
    pub fn sign_voucher(
        &self,
        domain: &crate::bandwidth::VoucherDomain,
        channel: alloy::primitives::B256,
        cumulative: U256,
    ) -> Result<[u8; crate::bandwidth::SIGNATURE_BYTES], ChainError> {
        domain.sign(&self.0.signer, channel, cumulative).map_err(|e| ChainError::Key {
            path: std::path::PathBuf::from("(wallet)"),
            reason: format!("could not sign a voucher: {e}"),
        })
    }

    /// The wallet's signature binding `peer` (a libp2p peer id's bytes) to this wallet in this
    /// marketplace, for the DHT (see [`crate::offchain::HostRecord`]).
    pub fn host_record(&self, peer: &[u8]) -> Result<crate::offchain::HostRecord, crate::offchain::HostRecordError> {
        crate::offchain::HostRecord::sign(&self.0.signer, self.0.marketplace, peer)
    }

    /// The wallet's address.
    pub fn address(&self) -> Address {
        self.0.address
    }

    /// The marketplace's address.
    pub fn marketplace_address(&self) -> Address {
        self.0.marketplace
    }

    /// The marketplace's configuration.
    pub fn params(&self) -> MarketParams {
        self.0.params
    }

    /// The endpoint's health.
    pub fn health(&self) -> &Health {
        &self.0.health
    }

    /// The marketplace's bindings on this wallet's provider.
    pub fn market(&self) -> Marketplace::MarketplaceInstance<DynProvider> {
        Marketplace::new(self.0.marketplace, self.0.provider.clone())
    }

    /// The payment token's bindings (an ERC-20).
    pub fn token(&self) -> TestToken::TestTokenInstance<DynProvider> {
        TestToken::new(self.0.token, self.0.provider.clone())
    }

    /// A read-only contract call, retried while the endpoint does not answer.
    pub async fn read<C: SolCall>(
        &self,
        what: &'static str,
        call: SolCallBuilder<&DynProvider, C>,
    ) -> Result<C::Return, ChainError> {
        let _permit = self.0.calls.acquire().await;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
            match call.call().await {
                Ok(v) => {
                    self.0.health.answered(&self.0.endpoint);
                    return Ok(v);
                }
                Err(e) => match classify(&e) {
                    Failure::Transient(m) => {
                        self.0.health.failed(&self.0.endpoint, &m);
                        last = m;
                    }
                    Failure::Revert(reason) => {
                        self.0.health.answered(&self.0.endpoint);
                        return Err(ChainError::Reverted { call: what, reason });
                    }
                    Failure::Other(reason) => return Err(ChainError::Rpc { call: what, reason }),
                },
            }
        }
        Err(ChainError::Unreachable { call: what, reason: last })
    }

    /// A transaction: estimated (a revert there is reported, not sent), signed with the gas
    /// estimate plus a quarter and the wallet's next nonce, sent, and awaited until mined.
    /// Transactions from this wallet go one at a time.
    ///
    /// Attempts that follow a send whose answer was lost resend the same signed transaction (a
    /// node that refused it outright gets it signed again with fresh fees, but always with the
    /// nonce read for the call's first send), so at most one of them can be mined. When the node
    /// refuses a resend because it knows it or because its nonce is used, the earlier sends'
    /// receipts tell the outcome: a success is returned as such, a revert as
    /// [`ChainError::Reverted`].
    ///
    /// [`ChainError::Unreachable`] after a send means the outcome is unknown: the transaction
    /// (its hash in the reason: "transaction … sent: …" when no receipt came in time) may still
    /// be mined. The caller must then ask the chain what happened (a view of the state the call
    /// changes) before it acts as though the call did not take effect.
    pub async fn send<C: SolCall>(
        &self,
        what: &'static str,
        call: SolCallBuilder<&DynProvider, C>,
    ) -> Result<TransactionReceipt, ChainError> {
        let _permit = self.0.calls.acquire().await;
        let _turn = self.0.sending.lock().await;
        let mut last = String::new();
        let mut nonce: Option<u64> = None;
        let mut gas: Option<u64> = None;
        // the signed transaction to (re)send, and every transaction sent that may have reached a
        // node: all carry `nonce`, so one of them at most is mined
        let mut signed: Option<TxEnvelope> = None;
        let mut sent: Vec<TxHash> = Vec::new();
        for attempt in 0..ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
            let envelope = match &signed {
                Some(envelope) => envelope.clone(),
                None => {
                    // Estimated again until something was sent: once a transaction may be out,
                    // its own effect could make the estimate revert.
                    let limit = match gas {
                        Some(g) => g,
                        None => match call.estimate_gas().await {
                            Ok(g) => g + g / 4 + 20_000,
                            Err(e) => match classify(&e) {
                                Failure::Transient(m) => {
                                    self.0.health.failed(&self.0.endpoint, &m);
                                    last = m;
                                    continue;
                                }
                                Failure::Revert(reason) => {
                                    self.0.health.answered(&self.0.endpoint);
                                    return Err(ChainError::Reverted { call: what, reason });
                                }
                                Failure::Other(reason) => return Err(ChainError::Rpc { call: what, reason }),
                            },
                        },
                    };
                    self.0.health.answered(&self.0.endpoint);
                    let n = match nonce {
                        Some(n) => n,
                        None => match self.0.provider.get_transaction_count(self.0.address).pending().await {
                            Ok(n) => *nonce.insert(n),
                            Err(e) => {
                                let m = e.to_string();
                                self.0.health.failed(&self.0.endpoint, &m);
                                last = m;
                                continue;
                            }
                        },
                    };
                    let request = call.clone().gas(limit).nonce(n).into_transaction_request();
                    match self.0.signing.fill(request).await {
                        Ok(SendableTx::Envelope(envelope)) => {
                            // From here on the call keeps its gas limit, as it keeps its nonce.
                            gas = Some(limit);
                            signed = Some(envelope.clone());
                            envelope
                        }
                        Ok(SendableTx::Builder(_)) => {
                            return Err(ChainError::Rpc { call: what, reason: "transaction left unsigned".into() });
                        }
                        Err(e) => match classify_transport(&e) {
                            Failure::Transient(m) | Failure::Revert(m) => {
                                self.0.health.failed(&self.0.endpoint, &m);
                                last = m;
                                continue;
                            }
                            Failure::Other(reason) => return Err(ChainError::Rpc { call: what, reason }),
                        },
                    }
                }
            };
            let hash = *envelope.tx_hash();
            let first_send = !sent.contains(&hash);
            if first_send {
                sent.push(hash);
            }
            match self.0.provider.send_tx_envelope(envelope).await {
                Ok(_) => {
                    self.0.health.answered(&self.0.endpoint);
                    return match self.receipt(&sent, RECEIPT_TIMEOUT).await {
                        Ok(receipt) => self.outcome(what, &call, receipt).await,
                        Err(reason) => Err(ChainError::Unreachable {
                            call: what,
                            reason: format!("transaction {} sent: {reason}", hash_list(&sent)),
                        }),
                    };
                }
                Err(e) => match classify_send(&e) {
                    SendFailure::Lost(m) => {
                        self.0.health.failed(&self.0.endpoint, &m);
                        last = m;
                    }
                    SendFailure::Rejected(m) => {
                        // The node neither has this transaction nor a mined one of its nonce:
                        // sign the call again (fresh fees, same nonce). A transaction refused on
                        // its first send never left; once none may have left, the gas is
                        // estimated again too.
                        self.0.health.answered(&self.0.endpoint);
                        debug!(target: LOG, call = what, %hash, reason = %m, "transaction refused, signing it again");
                        signed = None;
                        if first_send {
                            sent.retain(|h| *h != hash);
                        }
                        if sent.is_empty() {
                            gas = None;
                        }
                        last = m;
                    }
                    SendFailure::Refused(Refusal::NonceUsed, m) if first_send && sent.len() == 1 => {
                        // Nothing of this call ever left, yet its nonce is used (another sender
                        // with this wallet): start over with a fresh nonce.
                        self.0.health.answered(&self.0.endpoint);
                        debug!(target: LOG, call = what, %hash, reason = %m, "nonce taken, reading it again");
                        (nonce, gas, signed) = (None, None, None);
                        sent.clear();
                        last = m;
                    }
                    SendFailure::Refused(refusal, m) => {
                        self.0.health.answered(&self.0.endpoint);
                        debug!(target: LOG, call = what, %hash, ?refusal, reason = %m, "resend refused");
                        let wait = match refusal {
                            Refusal::Known => RECEIPT_TIMEOUT,
                            Refusal::NonceUsed => NONCE_USED_GRACE,
                        };
                        return match self.receipt(&sent, wait).await {
                            Ok(receipt) => self.outcome(what, &call, receipt).await,
                            Err(reason) => Err(ChainError::Unreachable {
                                call: what,
                                reason: format!(
                                    "transaction {} sent, then refused ({m}) with nonce {}; no receipt ({reason}): \
                                     its outcome is unknown",
                                    hash_list(&sent),
                                    nonce.map_or_else(|| "?".into(), |n| n.to_string()),
                                ),
                            }),
                        };
                    }
                    SendFailure::Revert(reason) => {
                        self.0.health.answered(&self.0.endpoint);
                        return Err(ChainError::Reverted { call: what, reason });
                    }
                    SendFailure::Other(reason) => return Err(ChainError::Rpc { call: what, reason }),
                },
            }
        }
        if sent.is_empty() {
            return Err(ChainError::Unreachable { call: what, reason: last });
        }
        // Something may have left: a last look for its receipt before the outcome is unknown.
        match self.receipt(&sent, Duration::ZERO).await {
            Ok(receipt) => self.outcome(what, &call, receipt).await,
            Err(_) => Err(ChainError::Unreachable {
                call: what,
                reason: format!("transaction {} may have been sent; its outcome is unknown: {last}", hash_list(&sent)),
            }),
        }
    }

    /// A mined transaction's outcome: its receipt when it succeeded, why it failed otherwise.
    async fn outcome<C: SolCall>(
        &self,
        what: &'static str,
        call: &SolCallBuilder<&DynProvider, C>,
        receipt: TransactionReceipt,
    ) -> Result<TransactionReceipt, ChainError> {
        if receipt.status() {
            debug!(target: LOG, call = what, hash = %receipt.transaction_hash, gas_used = receipt.gas_used, "mined");
            Ok(receipt)
        } else {
            Err(self.mined_failure(what, call, &receipt).await)
        }
    }

    /// Why a transaction that passed its estimate failed once mined (the chain moved on between
    /// the two: a new period, a slot taken): the call replayed on its block's state gives the
    /// contract's error name; when the replay passes, the error says only that it failed.
    async fn mined_failure<C: SolCall>(
        &self,
        what: &'static str,
        call: &SolCallBuilder<&DynProvider, C>,
        receipt: &TransactionReceipt,
    ) -> ChainError {
        let hash = receipt.transaction_hash;
        let replayed = match receipt.block_number {
            Some(block) => call.clone().from(self.0.address).block(block.into()).call_raw().await.err(),
            None => None,
        };
        let reason = match replayed.as_ref().map(classify) {
            Some(Failure::Revert(reason)) => reason,
            _ => format!("transaction {hash} failed when mined"),
        };
        debug!(target: LOG, call = what, %hash, %reason, "mined but reverted");
        ChainError::Reverted { call: what, reason }
    }

    /// Polls for the receipt of any of `hashes` (our own polling: every failed poll counts
    /// against the endpoint's health at once, where a subscription would wait silently) for up
    /// to `wait`, asking at least once. The hashes are transactions of one nonce, so at most one
    /// of them has a receipt.
    async fn receipt(&self, hashes: &[TxHash], wait: Duration) -> Result<TransactionReceipt, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut last = String::from("not mined in time");
        loop {
            for hash in hashes {
                match self.0.provider.get_transaction_receipt(*hash).await {
                    Ok(Some(receipt)) => {
                        self.0.health.answered(&self.0.endpoint);
                        return Ok(receipt);
                    }
                    Ok(None) => self.0.health.answered(&self.0.endpoint),
                    Err(e) => {
                        last = e.to_string();
                        self.0.health.failed(&self.0.endpoint, &last);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(RECEIPT_POLL).await;
        }
    }

    /// Retries a provider call (not a contract call) while the endpoint does not answer.
    async fn provider_call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, ChainError>
    where
        F: Fn() -> Fut,
        Fut: std::future::IntoFuture<Output = Result<T, alloy::transports::TransportError>>,
    {
        let _permit = self.0.calls.acquire().await;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
            match f().await {
                Ok(v) => {
                    self.0.health.answered(&self.0.endpoint);
                    return Ok(v);
                }
                Err(e) => match classify_transport(&e) {
                    Failure::Transient(m) | Failure::Revert(m) => {
                        self.0.health.failed(&self.0.endpoint, &m);
                        last = m;
                    }
                    Failure::Other(reason) => return Err(ChainError::Rpc { call: what, reason }),
                },
            }
        }
        Err(ChainError::Unreachable { call: what, reason: last })
    }

    /// The latest block's number and timestamp: the chain's clock, which periods follow.
    pub async fn head(&self) -> Result<(u64, u64), ChainError> {
        let block = self
            .provider_call("eth_getBlockByNumber", || self.0.provider.get_block_by_number(BlockNumberOrTag::Latest))
            .await?
            .ok_or_else(|| ChainError::Rpc { call: "eth_getBlockByNumber", reason: "no latest block".into() })?;
        Ok((block.header.number, block.header.timestamp))
    }

    /// The marketplace's logs in blocks `from..=to`.
    pub async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        let filter = Filter::new().address(self.0.marketplace).from_block(from).to_block(to);
        self.provider_call("eth_getLogs", || self.0.provider.get_logs(&filter)).await
    }

    /// The hash of block `number`.
    pub async fn block_hash(&self, number: u64) -> Result<alloy::primitives::B256, ChainError> {
        let block = self
            .provider_call("eth_getBlockByNumber", || {
                self.0.provider.get_block_by_number(BlockNumberOrTag::Number(number))
            })
            .await?
            .ok_or_else(|| ChainError::Rpc { call: "eth_getBlockByNumber", reason: format!("no block {number}") })?;
        Ok(block.header.hash)
    }

    /// The timestamp of block `number` (unix seconds), for logs that the endpoint gave without
    /// it: a log's time is its block's, never the head's.
    pub async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        let block = self
            .provider_call("eth_getBlockByNumber", || {
                self.0.provider.get_block_by_number(BlockNumberOrTag::Number(number))
            })
            .await?
            .ok_or_else(|| ChainError::Rpc { call: "eth_getBlockByNumber", reason: format!("no block {number}") })?;
        Ok(block.header.timestamp)
    }

    /// Sends several transactions of one kind back to back (consecutive nonces, no wait between
    /// them), then waits for all their receipts: one block for a whole batch instead of one block
    /// per call. Calls whose estimate reverts are not sent (their result is the revert).
    pub async fn send_batch<C: SolCall>(
        &self,
        what: &'static str,
        calls: Vec<SolCallBuilder<&DynProvider, C>>,
    ) -> Vec<Result<TransactionReceipt, ChainError>> {
        let _permit = self.0.calls.acquire().await;
        let _turn = self.0.sending.lock().await;
        let mut results: Vec<Option<Result<TransactionReceipt, ChainError>>> = Vec::with_capacity(calls.len());
        let mut pending = Vec::new();
        let mut nonce = match self
            .provider_call("eth_getTransactionCount", || {
                self.0.provider.get_transaction_count(self.0.address).pending()
            })
            .await
        {
            Ok(n) => n,
            Err(e) => {
                let reason = e.to_string();
                return calls
                    .iter()
                    .map(|_| Err(ChainError::Unreachable { call: what, reason: reason.clone() }))
                    .collect();
            }
        };
        for call in &calls {
            let gas = match call.estimate_gas().await {
                Ok(g) => g,
                Err(e) => {
                    results.push(Some(Err(match classify(&e) {
                        Failure::Revert(reason) => ChainError::Reverted { call: what, reason },
                        Failure::Transient(reason) => {
                            self.0.health.failed(&self.0.endpoint, &reason);
                            ChainError::Unreachable { call: what, reason }
                        }
                        Failure::Other(reason) => ChainError::Rpc { call: what, reason },
                    })));
                    continue;
                }
            };
            match call.clone().gas(gas + gas / 4 + 20_000).nonce(nonce).send().await {
                Ok(p) => {
                    nonce += 1;
                    pending.push((results.len(), *p.tx_hash()));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(ChainError::Rpc { call: what, reason: e.to_string() }))),
            }
        }
        for (slot, hash) in pending {
            results[slot] = Some(match self.receipt(&[hash], RECEIPT_TIMEOUT).await {
                Ok(r) if r.status() => Ok(r),
                Ok(r) => Err(self.mined_failure(what, &calls[slot], &r).await),
                Err(reason) => Err(ChainError::Unreachable { call: what, reason }),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ChainError::Rpc { call: what, reason: "not sent".into() })))
            .collect()
    }

    /// The period a timestamp falls in.
    pub fn period_of(&self, timestamp: u64) -> u64 {
        timestamp / self.0.params.period_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_refusals_are_recognised_in_each_nodes_words() {
        let known = [
            "already known",
            "transaction already imported",
            "Known transaction",
            "AlreadyKnown",
            "TRANSACTION_ALREADY_KNOWN",
            "tx already in mempool",
        ];
        for m in known {
            assert_eq!(refusal(m), Some(Refusal::Known), "{m}");
        }
        let used = [
            "nonce too low",
            "nonce too low: next nonce 8, tx nonce 7",
            "Nonce too low",
            "NONCE_TOO_LOW",
            "OldNonce, Current nonce: 8, nonce of rejected tx: 7",
            "replacement transaction underpriced",
            "REPLACEMENT_UNDERPRICED",
            "the nonce is too low",
        ];
        for m in used {
            assert_eq!(refusal(m), Some(Refusal::NonceUsed), "{m}");
        }
        let other = [
            "insufficient funds for gas * price + value",
            "nonce too high",
            "max fee per gas less than block base fee",
            "execution reverted",
            "",
        ];
        for m in other {
            assert_eq!(refusal(m), None, "{m}");
        }
    }

    #[tokio::test]
    async fn endpoints_are_http_or_websocket_urls() {
        for bad in ["ftp://127.0.0.1:1", "localhost:8545", "127.0.0.1:8545", "no url"] {
            let reason = connect_endpoint(bad).await.err().unwrap_or_default();
            assert!(reason.ends_with("use an http(s):// or ws(s):// URL"), "{bad}: {reason}");
        }
        assert!(connect_endpoint("ftp://x").await.err().unwrap_or_default().starts_with("unsupported scheme ftp"));
        // HTTP connects on its first call, whatever the case of the scheme
        assert!(connect_endpoint("HTTP://127.0.0.1:1").await.is_ok());
        assert!(connect_endpoint("https://127.0.0.1:1/rpc").await.is_ok());
    }

    #[test]
    fn send_errors_are_told_apart() {
        use alloy::transports::{RpcError, TransportErrorKind};
        let answer = |message: &str| {
            let payload = serde_json::json!({ "code": -32000, "message": message });
            RpcError::ErrorResp(serde_json::from_value(payload).expect("an error payload"))
        };
        assert!(matches!(classify_send(&answer("nonce too low")), SendFailure::Refused(Refusal::NonceUsed, _)));
        assert!(matches!(classify_send(&answer("already known")), SendFailure::Refused(Refusal::Known, _)));
        assert!(matches!(classify_send(&answer("execution reverted: x")), SendFailure::Revert(_)));
        assert!(matches!(classify_send(&answer("insufficient funds")), SendFailure::Rejected(_)));
        let lost = TransportErrorKind::custom_str("connection closed before message completed");
        assert!(matches!(classify_send(&lost), SendFailure::Lost(_)));
        assert!(matches!(classify_send(&RpcError::local_usage_str("missing properties")), SendFailure::Other(_)));
    }
}
