//! What the validator asks of the chain, as one trait: [`ValidatorChain`]. The validator runs it
//! on the wallet's alloy client ([`Chain`]); its unit tests run the same loop on an in-memory
//! marketplace that serves logs, seeds and accusations and injects outages.

use std::future::Future;

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use contracts::MarketEvent;
use contracts::client::{Chain, ChainError, MarketParams};

/// A period's seed as the marketplace reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodSeed {
    /// The seed can be read.
    pub ready: bool,
    /// It was anchored during its own period (nothing is required in it).
    pub late: bool,
    /// The block whose hash is the seed.
    pub anchor_block: U256,
}

/// The chain as the validator uses it.
pub trait ValidatorChain: Send + Sync + 'static {
    /// The wallet's address.
    fn address(&self) -> Address;
    /// The marketplace's configuration.
    fn params(&self) -> MarketParams;
    /// The latest block's number and timestamp.
    fn head(&self) -> impl Future<Output = Result<(u64, u64), ChainError>> + Send;
    /// The marketplace's logs in blocks `from..=to`.
    fn logs(&self, from: u64, to: u64) -> impl Future<Output = Result<Vec<Log>, ChainError>> + Send;
    /// A block's timestamp.
    fn block_timestamp(&self, number: u64) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// A block's hash.
    fn block_hash(&self, number: u64) -> impl Future<Output = Result<B256, ChainError>> + Send;
    /// Anchors the next period's seed (and stores a readable one).
    fn anchor_periods(&self) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// Period `q`'s seed.
    fn period_seed(&self, q: u64) -> impl Future<Output = Result<PeriodSeed, ChainError>> + Send;
    /// A request's dataset root (its proofs' public input).
    fn request_root(&self, request_id: B256) -> impl Future<Output = Result<B256, ChainError>> + Send;
    /// Accuses each (slot, period) of a missing proof with `bond`; per accusation, the
    /// marketplace events its transaction emitted.
    fn accuse(
        &self,
        items: &[(B256, u64)],
        bond: U256,
    ) -> impl Future<Output = Vec<Result<Vec<MarketEvent>, ChainError>>> + Send;
    /// Settles each (slot, period) accusation; per settlement, the events it emitted.
    fn settle(&self, items: &[(B256, u64)]) -> impl Future<Output = Vec<Result<Vec<MarketEvent>, ChainError>>> + Send;
}

fn events_of(receipt: &alloy::rpc::types::TransactionReceipt) -> Vec<MarketEvent> {
    receipt.inner.logs().iter().filter_map(MarketEvent::decode).collect()
}

impl ValidatorChain for Chain {
    fn address(&self) -> Address {
        Chain::address(self)
    }

    fn params(&self) -> MarketParams {
        Chain::params(self)
    }

    async fn head(&self) -> Result<(u64, u64), ChainError> {
        Chain::head(self).await
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        Chain::logs(self, from, to).await
    }

    async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        Chain::block_timestamp(self, number).await
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        Chain::block_hash(self, number).await
    }

    async fn anchor_periods(&self) -> Result<(), ChainError> {
        self.send("anchorPeriods", self.market().anchorPeriods()).await.map(drop)
    }

    async fn period_seed(&self, q: u64) -> Result<PeriodSeed, ChainError> {
        let s = self.read("periodSeed", self.market().periodSeed(U256::from(q))).await?;
        Ok(PeriodSeed { ready: s.ready, late: s.late, anchor_block: s.anchorBlock })
    }

    async fn request_root(&self, request_id: B256) -> Result<B256, ChainError> {
        Ok(self.read("getRequest", self.market().getRequest(request_id)).await?.content.merkleRoot)
    }

    async fn accuse(&self, items: &[(B256, u64)], bond: U256) -> Vec<Result<Vec<MarketEvent>, ChainError>> {
        let market = self.market();
        let calls = items.iter().map(|(id, q)| market.accuseMissingProof(*id, U256::from(*q)).value(bond)).collect();
        self.send_batch("accuseMissingProof", calls).await.into_iter().map(|r| r.map(|t| events_of(&t))).collect()
    }

    async fn settle(&self, items: &[(B256, u64)]) -> Vec<Result<Vec<MarketEvent>, ChainError>> {
        let market = self.market();
        let calls = items.iter().map(|(id, q)| market.settleAccusation(*id, U256::from(*q))).collect();
        self.send_batch("settleAccusation", calls).await.into_iter().map(|r| r.map(|t| events_of(&t))).collect()
    }
}
