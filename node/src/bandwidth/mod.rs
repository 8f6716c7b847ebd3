//! Paid bandwidth (whitepaper PoC2): providers are paid per byte they serve beyond a free
//! allowance, through one-way payment channels (`contracts/src/BandwidthChannels.sol`) and
//! off-chain cumulative vouchers carried on the block exchange.
//!
//! - [`ledger`]: the two ledgers (a provider's per peer, a payer's per provider) as pure,
//!   property-tested state machines.
//! - [`channels`]: the contract as one trait, on the chain client or in memory.
//! - [`gate`]: the provider's decision per request, with the voucher checked before blocks go
//!   out; [`redeemer`] redeems what it holds.
//! - [`payments`]: the downloader's channels and vouchers.
//! - [`wire`]: the messages on the block exchange.

pub mod channels;
pub mod gate;
pub mod ledger;
pub mod payments;
pub mod redeemer;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use contracts::client::{Chain, ChainError};

pub use self::gate::{Gate, ProviderConfig, Unpaid};
pub use self::ledger::{Decision, PayError, Payer, Provider, Terms};
pub use self::payments::{PayerConfig, Payments, VoucherFault};

use self::channels::{ChainChannels, Channels};
use crate::metrics::Metrics;

/// How a node takes part in paid bandwidth.
#[derive(Debug, Clone)]
pub struct BandwidthConfig {
    /// The chain endpoint.
    pub endpoint: String,
    /// The wallet's key file.
    pub key_file: PathBuf,
    /// The `BandwidthChannels` contract.
    pub contract: Address,
    /// Charging for what this node serves, if it does.
    pub provider: Option<ProviderConfig>,
    /// Paying for what this node fetches, if it does.
    pub payer: Option<PayerConfig>,
}

/// Why paid bandwidth could not start.
#[derive(Debug, thiserror::Error)]
pub enum BandwidthError {
    /// The chain or the contract could not be reached.
    #[error("bandwidth channels at {contract}: {source}")]
    Chain {
        /// The contract.
        contract: Address,
        /// The cause.
        source: ChainError,
    },
    /// The payments record could not be read.
    #[error("bandwidth records in {dir}: {source}")]
    Records {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A node's paid bandwidth: its gate if it charges, its payments if it pays, and the wallet
/// they share (handed to the marketplace so that one wallet sends one transaction at a time).
#[derive(Debug, Clone)]
pub struct Bandwidth {
    /// The provider's gate.
    pub gate: Option<Arc<Gate>>,
    /// The downloader's payments.
    pub payments: Option<Arc<Payments>>,
    /// The wallet.
    pub chain: Chain,
}

impl Bandwidth {
    /// Connects the wallet, reads the contract and starts the redeemer (if this node charges).
    pub async fn start(
        config: &BandwidthConfig,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BandwidthError> {
        let contract = config.contract;
        let chain_err = |source| BandwidthError::Chain { contract, source };
        let chain = Chain::connect_wallet(&config.endpoint, &config.key_file).await.map_err(chain_err)?;
        let channels: Arc<dyn Channels> =
            Arc::new(ChainChannels::connect(chain.clone(), contract).await.map_err(chain_err)?);
        Self::with_channels(config.provider, config.payer, channels, data_dir, metrics, chain)
    }

    fn with_channels(
        provider: Option<ProviderConfig>,
        payer: Option<PayerConfig>,
        channels: Arc<dyn Channels>,
        data_dir: &Path,
        metrics: Arc<Metrics>,
        chain: Chain,
    ) -> Result<Self, BandwidthError> {
        let gate = match provider {
            Some(p) => {
                let dir = data_dir.join("bandwidth");
                let gate = Gate::new(Arc::clone(&channels), p, Arc::clone(&metrics))
                    .with_records(dir.clone())
                    .map_err(|source| BandwidthError::Records { dir, source })?;
                Some(Arc::new(gate))
            }
            None => None,
        };
        if let Some(g) = &gate {
            redeemer::spawn(Arc::clone(g));
        }
        let payments = match payer {
            Some(p) => {
                let dir = data_dir.join("bandwidth");
                Some(Arc::new(
                    Payments::open(channels, p, dir.clone(), metrics)
                        .map_err(|source| BandwidthError::Records { dir, source })?,
                ))
            }
            None => None,
        };
        Ok(Self { gate, payments, chain })
    }
}

/// Serializes a token amount as a decimal string (JSON numbers lose precision past 2^53).
pub(crate) fn as_decimal<S: serde::Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

#[cfg(test)]
mod tests;
