//! Deploying the token, the verifier with a key from `prover`, and the marketplace.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use prover::{EvmProof, EvmVerifyingKey};

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

fn word(w: &prover::Word) -> U256 {
    U256::from_be_bytes(*w)
}

/// A proof as `uint256[8]` (A, B with imaginary parts first, C).
pub fn proof_words(proof: &EvmProof) -> [U256; 8] {
    let words = proof.words();
    std::array::from_fn(|i| words.get(i).map(word).unwrap_or_default())
}

/// A configuration for dev chains and tests: one-minute periods, proofs due within the next
/// period's first half, a slot lost after 3 misses, 10 % slashed per miss, half of it to the
/// validator, 10 % of forfeited collateral to repairers.
pub fn dev_config(token: Address, verifier: Address) -> MarketplaceConfig {
    MarketplaceConfig {
        token,
        verifier,
        periodLength: 60,
        proofTimeout: 30,
        maxMissedProofs: 3,
        slashPercentage: 10,
        validatorRewardPercentage: 50,
        repairRewardPercentage: 10,
        maxRequestExpiry: 86_400,
        maxReservations: 3,
    }
}

/// Deploys a test token, a verifier for `vk` and a marketplace configured by `config` (given the
/// token's and verifier's addresses), from the provider's default sender.
pub async fn deploy<P: Provider + Clone>(
    provider: &P,
    vk: &EvmVerifyingKey,
    config: impl FnOnce(Address, Address) -> MarketplaceConfig,
) -> Result<Deployment, DeployError> {
    let token = TestToken::deploy(provider.clone(), "Vellum test token".to_owned(), "VTT".to_owned())
        .await
        .map_err(|source| DeployError::Contract { what: "TestToken", source })?;
    let g2 = |p: &[prover::Word; 4]| p.map(|w| word(&w));
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
    let marketplace = Marketplace::deploy(provider.clone(), config(*token.address(), *verifier.address()))
        .await
        .map_err(|source| DeployError::Contract { what: "Marketplace", source })?;
    Ok(Deployment { token: *token.address(), verifier: *verifier.address(), marketplace: *marketplace.address() })
}
