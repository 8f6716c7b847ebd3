//! Deploying the token, the verifier with a verifying key in its plain EVM form
//! ([`VerifyingKeyWords`], which the callers make from `prover`'s key: this crate depends on no
//! proving code), and the marketplace.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;

use crate::bindings::Marketplace::MarketplaceConfig;
use crate::bindings::{Groth16Verifier, Marketplace, TestToken};

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A contract creation failed.
    #[error("deploying {what}: {source}")]
    Contract {
        /// Which contract.
        what: &'static str,
        /// What the chain or the RPC said.
        source: alloy::contract::Error,
    },
}

/// Where the contracts of one deployment live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// The ERC-20 the marketplace is paid in.
    pub token: Address,
    /// The Groth16 verifier of the storage proofs.
    pub verifier: Address,
    /// The marketplace.
    pub marketplace: Address,
}

/// A 32-byte big-endian word.
pub type Word = [u8; 32];

/// A Groth16 verifying key as the verifier contract's constructor takes it: every coordinate a
/// 32-byte big-endian word, G2 points imaginary part first (x.c1, x.c0, y.c1, y.c0). The same
/// layout as `prover::EvmVerifyingKey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKeyWords {
    /// α (G1).
    pub alpha: [Word; 2],
    /// β (G2).
    pub beta: [Word; 4],
    /// γ (G2).
    pub gamma: [Word; 4],
    /// δ (G2).
    pub delta: [Word; 4],
    /// The input commitments (G1): one for the constant and one per public input.
    pub ic: Vec<[Word; 2]>,
}

fn word(w: &Word) -> U256 {
    U256::from_be_bytes(*w)
}

/// A proof's words (A, B with imaginary parts first, C) as `uint256[8]`; missing words are zero.
pub fn proof_words(words: &[Word]) -> [U256; 8] {
    std::array::from_fn(|i| words.get(i).map(word).unwrap_or_default())
}

/// A configuration for dev chains and tests: one-minute periods, missing proofs accusable
/// within the next period's first half and defended within half a period, a slot lost after 3
/// misses, 10 % slashed per miss, half of it to the accuser, 10 % of forfeited collateral to
/// repairers, reservations that hold five minutes for a deposit of 10 % of the collateral, no
/// dispersal window, a 0.001-ether accusation bond of which half pays a defending host.
pub fn dev_config(token: Address, verifier: Address) -> MarketplaceConfig {
    MarketplaceConfig {
        token,
        verifier,
        periodLength: 60,
        proofTimeout: 30,
        responseWindow: 30,
        maxMissedProofs: 3,
        slashPercentage: 10,
        validatorRewardPercentage: 50,
        repairRewardPercentage: 10,
        reservationDepositPercentage: 10,
        reservationDuration: 300,
        dispersalWindow: 0,
        maxRequestExpiry: 86_400,
        accusationBond: alloy::primitives::Uint::from(1_000_000_000_000_000u64),
        defenceSharePercentage: 50,
    }
}

/// [`dev_config`] scaled to `period`-second periods (as the scenarios and the devnet run them):
/// accusations within half a period, defences within half a period, reservations holding ten
/// periods, and a dispersal window of `dispersal` seconds.
pub fn dev_config_with_period(token: Address, verifier: Address, period: u64, dispersal: u64) -> MarketplaceConfig {
    let half = u32::try_from((period / 2).max(1)).unwrap_or(u32::MAX);
    MarketplaceConfig {
        periodLength: u32::try_from(period).unwrap_or(u32::MAX),
        proofTimeout: half,
        responseWindow: half,
        reservationDuration: u32::try_from(period.saturating_mul(10)).unwrap_or(u32::MAX),
        dispersalWindow: u32::try_from(dispersal).unwrap_or(u32::MAX),
        ..dev_config(token, verifier)
    }
}

/// Deploys a test token, a verifier for `vk` and a marketplace configured by `config` (given the
/// token's and verifier's addresses), from the provider's default sender.
pub async fn deploy<P: Provider + Clone>(
    provider: &P,
    vk: &VerifyingKeyWords,
    config: impl FnOnce(Address, Address) -> MarketplaceConfig,
) -> Result<Deployment, DeployError> {
    let token = deploy_token(provider).await?;
    let verifier = deploy_verifier(provider, vk).await?;
    let marketplace = Marketplace::deploy(provider.clone(), config(token, verifier))
        .await
        .map_err(|source| DeployError::Contract { what: "Marketplace", source })?;
    Ok(Deployment { token, verifier, marketplace: *marketplace.address() })
}

/// Deploys a [`TestToken`] (anyone may mint it).
pub(crate) async fn deploy_token<P: Provider + Clone>(provider: &P) -> Result<Address, DeployError> {
    let token = TestToken::deploy(provider.clone(), "Vellum test token".to_owned(), "VTT".to_owned())
        .await
        .map_err(|source| DeployError::Contract { what: "TestToken", source })?;
    Ok(*token.address())
}

/// Deploys a [`Groth16Verifier`] holding `vk`.
pub(crate) async fn deploy_verifier<P: Provider + Clone>(
    provider: &P,
    vk: &VerifyingKeyWords,
) -> Result<Address, DeployError> {
    let g2 = |p: &[Word; 4]| p.map(|w| word(&w));
    let verifier = Groth16Verifier::deploy(
        provider.clone(),
        vk.alpha.map(|w| word(&w)),
        g2(&vk.beta),
        g2(&vk.gamma),
        g2(&vk.delta),
        vk.ic.iter().map(|p| p.map(|w| word(&w))).collect(),
    )
    .await
    .map_err(|source| DeployError::Contract { what: "Groth16Verifier", source })?;
    Ok(*verifier.address())
}
