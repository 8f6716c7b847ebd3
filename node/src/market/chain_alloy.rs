//! [`MarketChain`] on the wallet's alloy client: each method is the marketplace's view or
//! transaction of the same name. An approval and the transaction that spends it go together
//! under one lock, so concurrent sales cannot overwrite each other's allowance between the two.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use contracts::client::{Chain, ChainError, MarketParams};
use contracts::{MarketEvent, RequestState};

use super::chain::{Accusation, Lease, MarketChain, ProofWords, RequestView};

/// How long to wait for a period's seed to become readable after anchoring it.
const SEED_WAIT: Duration = Duration::from_secs(60);
/// How often to look meanwhile.
const SEED_POLL: Duration = Duration::from_millis(500);

/// The marketplace through the wallet's alloy client.
#[derive(Debug)]
pub(crate) struct AlloyMarket {
    chain: Chain,
    /// Held from an approval to the transaction that spends it.
    spending: tokio::sync::Mutex<()>,
}

impl AlloyMarket {
    /// Wraps a connected client.
    pub(crate) fn new(chain: Chain) -> Self {
        Self { chain, spending: tokio::sync::Mutex::new(()) }
    }

    fn state(raw: u8) -> RequestState {
        RequestState::try_from(raw).unwrap_or(RequestState::None)
    }

    /// Approves `amount` more for the marketplace unless the allowance covers it.
    async fn approve(&self, amount: U256) -> Result<(), ChainError> {
        if amount == U256::ZERO {
            return Ok(());
        }
        let token = self.chain.token();
        let market = self.chain.marketplace_address();
        if self.chain.read("allowance", token.allowance(self.chain.address(), market)).await? < amount {
            self.chain.send("approve", token.approve(market, amount)).await?;
        }
        Ok(())
    }

    /// The current period, its seed made readable (anchoring it if nobody has).
    async fn ensure_seed(&self) -> Result<u64, ChainError> {
        let m = self.chain.market();
        let deadline = tokio::time::Instant::now() + SEED_WAIT;
        loop {
            let (_, now) = self.chain.head().await?;
            let period = self.chain.period_of(now);
            let seed = self.chain.read("periodSeed", m.periodSeed(U256::from(period))).await?;
            if seed.ready {
                return Ok(period);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::Unreachable {
                    call: "periodSeed",
                    reason: "the period's seed did not become readable (is the chain producing blocks?)".into(),
                });
            }
            if seed.anchorBlock == U256::ZERO {
                self.chain.send("anchorPeriods", m.anchorPeriods()).await?;
            }
            tokio::time::sleep(SEED_POLL).await;
        }
    }
}

impl MarketChain for AlloyMarket {
    fn address(&self) -> Address {
        self.chain.address()
    }

    fn params(&self) -> MarketParams {
        self.chain.params()
    }

    async fn head(&self) -> Result<(u64, u64), ChainError> {
        self.chain.head().await
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<MarketEvent>, ChainError> {
        Ok(self.chain.logs(from, to).await?.iter().filter_map(MarketEvent::decode).collect())
    }

    async fn request(&self, id: B256) -> Result<RequestView, ChainError> {
        let m = self.chain.market();
        let state = Self::state(self.chain.read("requestState", m.requestState(id)).await?);
        let request = self.chain.read("getRequest", m.getRequest(id)).await?;
        let (_, ends_at, expires_at) = self.chain.read("requestTimes", m.requestTimes(id)).await?.into();
        Ok(RequestView { state, request, ends_at, expires_at })
    }

    async fn request_state(&self, id: B256) -> Result<RequestState, ChainError> {
        let m = self.chain.market();
        Ok(Self::state(self.chain.read("requestState", m.requestState(id)).await?))
    }

    async fn slot_id(&self, request_id: B256, index: u64) -> Result<B256, ChainError> {
        self.chain.read("slotId", self.chain.market().slotId(request_id, index)).await
    }

    async fn slot_host(&self, slot_id: B256) -> Result<Address, ChainError> {
        self.chain.read("getHost", self.chain.market().getHost(slot_id)).await
    }

    async fn reservation(&self, request_id: B256, index: u64) -> Result<Lease, ChainError> {
        let lease = self.chain.read("reservation", self.chain.market().reservation(request_id, index)).await?;
        Ok(Lease { holder: lease.holder, lapses_at: lease.lapsesAt })
    }

    async fn eligible_at(&self, request_id: B256, index: u64) -> Result<Option<u64>, ChainError> {
        let m = self.chain.market();
        match self.chain.read("eligibleAt", m.eligibleAt(request_id, index, self.chain.address())).await {
            Ok(at) => Ok(Some(at.saturating_to())),
            Err(e) if e.revert_reason().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn reserve(&self, request_id: B256, index: u64, collateral: U256) -> Result<(), ChainError> {
        let _spending = self.spending.lock().await;
        self.approve(self.chain.params().deposit(collateral)).await?;
        self.chain.send("reserveSlot", self.chain.market().reserveSlot(request_id, index)).await.map(drop)
    }

    async fn fill_challenge(&self, slot_id: B256) -> Result<(u64, U256), ChainError> {
        let period = self.ensure_seed().await?;
        let m = self.chain.market();
        let entropy = self.chain.read("fillEntropy", m.fillEntropy(slot_id, self.chain.address())).await?;
        Ok((period, entropy))
    }

    async fn fill(&self, request_id: B256, index: u64, proof: ProofWords, collateral: U256) -> Result<(), ChainError> {
        let _spending = self.spending.lock().await;
        // The reservation's deposit counts towards the collateral: the fill takes the rest.
        let rest = collateral.saturating_sub(self.chain.params().deposit(collateral));
        self.approve(rest).await?;
        self.chain.send("fillSlot", self.chain.market().fillSlot(request_id, index, proof)).await.map(drop)
    }

    async fn settles_at(&self, request_id: B256) -> Result<u64, ChainError> {
        let at = self.chain.read("settlesAt", self.chain.market().settlesAt(request_id)).await?;
        Ok(at.saturating_to())
    }

    async fn proof_required(&self, slot_id: B256) -> Result<bool, ChainError> {
        self.chain.read("isProofRequired", self.chain.market().isProofRequired(slot_id)).await
    }

    async fn proof_will_be_required(&self, slot_id: B256) -> Result<bool, ChainError> {
        self.chain.read("willProofBeRequired", self.chain.market().willProofBeRequired(slot_id)).await
    }

    async fn entropy_at(&self, slot_id: B256, period: u64) -> Result<U256, ChainError> {
        self.chain.read("entropyAt", self.chain.market().entropyAt(slot_id, U256::from(period))).await
    }

    async fn submit_proof(&self, slot_id: B256, proof: ProofWords) -> Result<(), ChainError> {
        self.chain.send("submitProof", self.chain.market().submitProof(slot_id, proof)).await.map(drop)
    }

    async fn accusation(&self, slot_id: B256, period: u64) -> Result<Accusation, ChainError> {
        let a = self.chain.read("accusation", self.chain.market().accusation(slot_id, U256::from(period))).await?;
        Ok(Accusation { accuser: a.accuser, deadline: a.deadline })
    }

    async fn defend(&self, slot_id: B256, period: u64, proof: ProofWords) -> Result<(), ChainError> {
        let m = self.chain.market();
        self.chain.send("defendProof", m.defendProof(slot_id, U256::from(period), proof)).await.map(drop)
    }

    async fn anchor_next(&self, period: u64) -> Result<(), ChainError> {
        let m = self.chain.market();
        let seed = self.chain.read("periodSeed", m.periodSeed(U256::from(period + 1))).await?;
        if seed.anchorBlock == U256::ZERO {
            self.chain.send("anchorPeriods", m.anchorPeriods()).await?;
        }
        Ok(())
    }

    async fn free_slot(&self, slot_id: B256) -> Result<U256, ChainError> {
        let m = self.chain.market();
        let amount = self.chain.read("slotPayout", m.slotPayout(slot_id)).await.unwrap_or_default();
        match self.chain.send("freeSlot", m.freeSlot(slot_id)).await {
            Ok(_) => Ok(amount),
            Err(e) if e.market_error() == Some(contracts::MarketError::AlreadyPaid) => Ok(U256::ZERO),
            Err(e) => Err(e),
        }
    }
}
