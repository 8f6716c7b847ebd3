//! What the host engine asks of the marketplace, as one trait: [`MarketChain`]. The node runs it
//! on the wallet's alloy client ([`super::chain_alloy`]); the unit tests run the same engine on an
//! in-memory marketplace (`fake_chain`, test builds only) that applies the contract's rules as far
//! as a host can see them and injects errors and delays. Every method is one question or one
//! transaction as the host thinks of it (a fill approves its collateral and fills), so that the
//! engine's code reads as the sale's steps and a fake can reproduce each step's faults.

use std::future::Future;

use alloy::primitives::{Address, B256, U256};
use contracts::client::{ChainError, MarketParams};
use contracts::{MarketEvent, RequestState};

/// A Groth16 proof in the words the marketplace takes.
pub(crate) type ProofWords = [U256; 8];

/// A request as the host needs it to decide whether to serve it.
#[derive(Debug, Clone)]
pub(crate) struct RequestView {
    /// Where it stands.
    pub(crate) state: RequestState,
    /// The request itself.
    pub(crate) request: contracts::Marketplace::Request,
    /// When it ends (0 until it started).
    pub(crate) ends_at: u64,
    /// When its first fill round closes.
    pub(crate) expires_at: u64,
}

/// A slot's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Who holds it (zero: nobody).
    pub(crate) holder: Address,
    /// When it lapses.
    pub(crate) lapses_at: u64,
}

/// An accusation of a missing proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accusation {
    /// Who accused (zero: nobody).
    pub(crate) accuser: Address,
    /// Until when the host may answer it.
    pub(crate) deadline: u64,
}

/// The marketplace as the host engine uses it. Errors are the client's [`ChainError`]: a revert
/// carries the contract's error name (`ChainError::market_error`), an unreachable endpoint or a
/// transaction whose outcome is unknown is `ChainError::Unreachable`.
pub(crate) trait MarketChain: Send + Sync + 'static {
    /// This host's address.
    fn address(&self) -> Address;
    /// The marketplace's configuration.
    fn params(&self) -> MarketParams;
    /// The latest block's number and timestamp (the chain's clock).
    fn head(&self) -> impl Future<Output = Result<(u64, u64), ChainError>> + Send;
    /// The marketplace's events in blocks `from..=to`, in order.
    fn events(&self, from: u64, to: u64) -> impl Future<Output = Result<Vec<MarketEvent>, ChainError>> + Send;
    /// A request (`RequestState::None` when unknown).
    fn request(&self, id: B256) -> impl Future<Output = Result<RequestView, ChainError>> + Send;
    /// A request's state.
    fn request_state(&self, id: B256) -> impl Future<Output = Result<RequestState, ChainError>> + Send;
    /// The id of slot `index` of a request.
    fn slot_id(&self, request_id: B256, index: u64) -> impl Future<Output = Result<B256, ChainError>> + Send;
    /// Who holds a slot (zero: nobody).
    fn slot_host(&self, slot_id: B256) -> impl Future<Output = Result<Address, ChainError>> + Send;
    /// A slot's reservation.
    fn reservation(&self, request_id: B256, index: u64) -> impl Future<Output = Result<Lease, ChainError>> + Send;
    /// When fair dispersal lets this host reserve the slot (`None`: filled or closed).
    fn eligible_at(&self, request_id: B256, index: u64)
    -> impl Future<Output = Result<Option<u64>, ChainError>> + Send;
    /// Reserves a slot, approving its deposit (a share of `collateral`) first.
    fn reserve(
        &self,
        request_id: B256,
        index: u64,
        collateral: U256,
    ) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// The current period (its seed made readable first) and the entropy a fill proof sent now
    /// by this host must use.
    fn fill_challenge(&self, slot_id: B256) -> impl Future<Output = Result<(u64, U256), ChainError>> + Send;
    /// Fills a slot, approving the collateral not yet paid by the reservation's deposit.
    fn fill(
        &self,
        request_id: B256,
        index: u64,
        proof: ProofWords,
        collateral: U256,
    ) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// When a started request settles (0 while it has not started).
    fn settles_at(&self, request_id: B256) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// Whether the current period requires a proof of the slot.
    fn proof_required(&self, slot_id: B256) -> impl Future<Output = Result<bool, ChainError>> + Send;
    /// Whether the next period will require one.
    fn proof_will_be_required(&self, slot_id: B256) -> impl Future<Output = Result<bool, ChainError>> + Send;
    /// The entropy of the slot's proof for `period`.
    fn entropy_at(&self, slot_id: B256, period: u64) -> impl Future<Output = Result<U256, ChainError>> + Send;
    /// Submits the current period's proof.
    fn submit_proof(&self, slot_id: B256, proof: ProofWords) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// The accusation of the slot's proof of `period`.
    fn accusation(&self, slot_id: B256, period: u64) -> impl Future<Output = Result<Accusation, ChainError>> + Send;
    /// Answers an accusation with the period's proof.
    fn defend(
        &self,
        slot_id: B256,
        period: u64,
        proof: ProofWords,
    ) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// Anchors the seed of the period after `period` unless somebody did.
    fn anchor_next(&self, period: u64) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// Frees a slot whose request is over and collects its payout; returns the amount
    /// (0 when it was collected before).
    fn free_slot(&self, slot_id: B256) -> impl Future<Output = Result<U256, ChainError>> + Send;
}
