//! The bandwidth channels contract as the node uses it, as one trait: [`Channels`]. The node
//! runs it on the wallet's client ([`ChainChannels`]); the tests of the paid exchange run the
//! same code on [`FakeChannels`], an in-memory contract that applies the contract's rules
//! (the same voucher check, deposits, close delay) so the money rules are tested without a chain.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{Address, B256, Bytes, U256};
use contracts::BandwidthChannels;
use contracts::bandwidth::{SIGNATURE_BYTES, VoucherDomain};
use contracts::client::{Chain, ChainError};
use futures::future::BoxFuture;

/// A channel as the contract holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Who deposited and signs vouchers.
    pub payer: Address,
    /// Who is paid.
    pub provider: Address,
    /// Tokens put in.
    pub deposit: U256,
    /// Tokens paid to the provider so far.
    pub redeemed: U256,
    /// When the payer may take back the rest (0 while no close was asked).
    pub closes_at: u64,
    /// Reclaimed or ended: nothing more moves.
    pub settled: bool,
}

/// The calls the paid exchange makes; each is one read or one transaction.
pub trait Channels: Send + Sync + 'static {
    /// Where vouchers are valid (chain id and contract).
    fn domain(&self) -> VoucherDomain;
    /// This node's wallet.
    fn address(&self) -> Address;
    /// A channel, `None` when it does not exist.
    fn channel(&self, id: B256) -> BoxFuture<'_, Result<Option<ChannelInfo>, ChainError>>;
    /// Opens a channel to `provider` with `deposit` tokens (approving them first); its id.
    fn open(&self, provider: Address, deposit: U256) -> BoxFuture<'_, Result<B256, ChainError>>;
    /// Signs a voucher with the wallet.
    fn sign(&self, channel: B256, cumulative: U256) -> Result<[u8; SIGNATURE_BYTES], ChainError>;
    /// Redeems a voucher (the provider); the contract pays the increase.
    fn redeem(&self, channel: B256, cumulative: U256, signature: Vec<u8>) -> BoxFuture<'_, Result<(), ChainError>>;
    /// Asks to close a channel (the payer); the provider has the close delay to redeem.
    fn request_close(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>>;
    /// Takes back what was not redeemed once the close delay passed (the payer).
    fn reclaim(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>>;
    /// The chain's time (the latest block's timestamp).
    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>>;
}

/// [`Channels`] on the wallet's alloy client.
#[derive(Debug, Clone)]
pub struct ChainChannels {
    chain: Chain,
    contract: Address,
    token: Address,
    chain_id: u64,
}

impl ChainChannels {
    /// The channels contract at `contract`, through `chain`'s wallet (reads its token and the
    /// chain id).
    pub async fn connect(chain: Chain, contract: Address) -> Result<Self, ChainError> {
        let chain_id = chain.chain_id().await?;
        let instance = chain.channels(contract);
        let token = chain.read("token", instance.token()).await?;
        Ok(Self { chain, contract, token, chain_id })
    }
}

impl Channels for ChainChannels {
    fn domain(&self) -> VoucherDomain {
        VoucherDomain { chain_id: self.chain_id, contract: self.contract }
    }

    fn address(&self) -> Address {
        self.chain.address()
    }

    fn channel(&self, id: B256) -> BoxFuture<'_, Result<Option<ChannelInfo>, ChainError>> {
        Box::pin(async move {
            let instance = self.chain.channels(self.contract);
            match self.chain.read("getChannel", instance.getChannel(id)).await {
                Ok(c) if c.payer == Address::ZERO => Ok(None),
                Ok(c) => Ok(Some(ChannelInfo {
                    payer: c.payer,
                    provider: c.provider,
                    deposit: U256::from(c.deposit),
                    redeemed: U256::from(c.redeemed),
                    closes_at: c.closesAt,
                    settled: c.settled,
                })),
                Err(e) => Err(e),
            }
        })
    }

    fn open(&self, provider: Address, deposit: U256) -> BoxFuture<'_, Result<B256, ChainError>> {
        Box::pin(async move {
            let token = self.chain.erc20(self.token);
            self.chain.send("approve", token.approve(self.contract, deposit)).await?;
            let instance = self.chain.channels(self.contract);
            // The id the contract will give the channel, should the receipt not come back.
            let me = self.chain.address();
            let count = self.chain.read("opened", instance.opened(me)).await?;
            let predicted = contracts::bandwidth::channel_id(self.chain_id, self.contract, me, provider, count);
            match self.chain.send("open", instance.open(provider, deposit)).await {
                Ok(receipt) => receipt
                    .inner
                    .logs()
                    .iter()
                    .find_map(|l| l.log_decode::<BandwidthChannels::ChannelOpened>().ok())
                    .map(|e| e.inner.data.id)
                    .ok_or_else(|| ChainError::Rpc {
                        call: "open",
                        reason: "no ChannelOpened event in the receipt".into(),
                    }),
                // The outcome is unknown: the chain says whether the channel is there.
                Err(e @ ChainError::Unreachable { .. }) => match self.channel(predicted).await {
                    Ok(Some(c)) if c.payer == me && c.provider == provider => Ok(predicted),
                    _ => Err(e),
                },
                Err(e) => Err(e),
            }
        })
    }

    fn sign(&self, channel: B256, cumulative: U256) -> Result<[u8; SIGNATURE_BYTES], ChainError> {
        self.chain.sign_voucher(&self.domain(), channel, cumulative)
    }

    fn redeem(&self, channel: B256, cumulative: U256, signature: Vec<u8>) -> BoxFuture<'_, Result<(), ChainError>> {
        Box::pin(async move {
            let instance = self.chain.channels(self.contract);
            self.chain.send("redeem", instance.redeem(channel, cumulative, Bytes::from(signature))).await.map(drop)
        })
    }

    fn request_close(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>> {
        Box::pin(async move {
            let instance = self.chain.channels(self.contract);
            self.chain.send("requestClose", instance.requestClose(channel)).await.map(drop)
        })
    }

    fn reclaim(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>> {
        Box::pin(async move {
            let instance = self.chain.channels(self.contract);
            self.chain.send("reclaim", instance.reclaim(channel)).await.map(drop)
        })
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(async move { Ok(self.chain.head().await?.1) })
    }
}

/// An in-memory channels contract shared by several wallets, for tests: it keeps the
/// contract's rules (vouchers checked as the contract checks them, only increases paid, deposits
/// bound what is paid, reclaim only after the close delay) and the token balances they move.
#[derive(Debug)]
pub struct FakeChannelsContract {
    domain: VoucherDomain,
    close_delay: u64,
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    /// Channel reads answered (or failed).
    reads: u64,
    /// Whether reads fail as an unreachable endpoint would.
    down: bool,
    /// How long an open takes.
    open_delay: std::time::Duration,
    now: u64,
    opened: u64,
    channels: HashMap<B256, ChannelInfo>,
    balances: HashMap<Address, U256>,
    /// Transactions that reverted (by the contract's rules), for tests to count.
    reverts: u64,
}

fn revert(call: &'static str, reason: &str) -> ChainError {
    ChainError::Reverted { call, reason: reason.to_string() }
}

impl FakeChannelsContract {
    /// A contract with the given close delay; the clock starts at 1,000.
    pub fn new(close_delay: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            domain: VoucherDomain { chain_id: 31337, contract: Address::repeat_byte(0xbc) },
            close_delay,
            state: Mutex::new(FakeState { now: 1_000, ..FakeState::default() }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Gives `who` tokens.
    pub fn mint(&self, who: Address, amount: U256) {
        self.with(|s| *s.balances.entry(who).or_default() += amount);
    }

    /// A wallet's token balance.
    pub fn balance(&self, who: Address) -> U256 {
        self.with(|s| s.balances.get(&who).copied().unwrap_or_default())
    }

    /// Moves the clock on.
    pub fn advance(&self, seconds: u64) {
        self.with(|s| s.now += seconds);
    }

    /// Transactions refused so far.
    pub fn reverts(&self) -> u64 {
        self.with(|s| s.reverts)
    }

    /// Channel reads so far.
    pub fn reads(&self) -> u64 {
        self.with(|s| s.reads)
    }

    /// Makes reads fail (as an unreachable endpoint) or answer again.
    pub fn set_down(&self, down: bool) {
        self.with(|s| s.down = down);
    }

    /// Makes each open take `delay` before it lands.
    pub fn set_open_delay(&self, delay: std::time::Duration) {
        self.with(|s| s.open_delay = delay);
    }

    /// A channel as it stands.
    pub fn get(&self, id: B256) -> Option<ChannelInfo> {
        self.with(|s| s.channels.get(&id).copied())
    }

    /// A wallet on this contract.
    pub fn wallet(self: &std::sync::Arc<Self>, key: alloy::signers::local::PrivateKeySigner) -> FakeChannels {
        FakeChannels { contract: std::sync::Arc::clone(self), key }
    }

    fn transact<T>(
        &self,
        call: &'static str,
        f: impl FnOnce(&mut FakeState) -> Result<T, String>,
    ) -> Result<T, ChainError> {
        self.with(|s| {
            f(s).map_err(|reason| {
                s.reverts += 1;
                revert(call, &reason)
            })
        })
    }
}

/// One wallet's view of a [`FakeChannelsContract`].
#[derive(Debug, Clone)]
pub struct FakeChannels {
    contract: std::sync::Arc<FakeChannelsContract>,
    key: alloy::signers::local::PrivateKeySigner,
}

impl Channels for FakeChannels {
    fn domain(&self) -> VoucherDomain {
        self.contract.domain
    }

    fn address(&self) -> Address {
        self.key.address()
    }

    fn channel(&self, id: B256) -> BoxFuture<'_, Result<Option<ChannelInfo>, ChainError>> {
        Box::pin(async move {
            let down = self.contract.with(|s| {
                s.reads += 1;
                s.down
            });
            if down {
                return Err(ChainError::Unreachable { call: "getChannel", reason: "endpoint down".into() });
            }
            Ok(self.contract.get(id))
        })
    }

    fn open(&self, provider: Address, deposit: U256) -> BoxFuture<'_, Result<B256, ChainError>> {
        let payer = self.address();
        Box::pin(async move {
            let delay = self.contract.with(|s| s.open_delay);
            tokio::time::sleep(delay).await;
            self.contract.transact("open", |s| {
                if provider == Address::ZERO || provider == payer {
                    return Err("BadProvider()".into());
                }
                let balance = s.balances.entry(payer).or_default();
                if *balance < deposit || deposit.is_zero() {
                    return Err("TransferFailed()".into());
                }
                *balance -= deposit;
                s.opened += 1;
                let id = alloy::primitives::keccak256([payer.as_slice(), &s.opened.to_be_bytes()].concat());
                let info = ChannelInfo { payer, provider, deposit, redeemed: U256::ZERO, closes_at: 0, settled: false };
                s.channels.insert(id, info);
                Ok(id)
            })
        })
    }

    fn sign(&self, channel: B256, cumulative: U256) -> Result<[u8; SIGNATURE_BYTES], ChainError> {
        self.contract
            .domain
            .sign(&self.key, channel, cumulative)
            .map_err(|e| ChainError::Rpc { call: "sign", reason: e.to_string() })
    }

    fn redeem(&self, channel: B256, cumulative: U256, signature: Vec<u8>) -> BoxFuture<'_, Result<(), ChainError>> {
        let me = self.address();
        let domain = self.contract.domain;
        Box::pin(async move {
            self.contract.transact("redeem", |s| {
                let now = s.now;
                let c = s.channels.get_mut(&channel).ok_or("UnknownChannel")?;
                if c.settled {
                    return Err("Settled()".into());
                }
                if c.provider != me {
                    return Err("NotProvider()".into());
                }
                if c.closes_at != 0 && now >= c.closes_at {
                    return Err("ClosePassed".into());
                }
                domain
                    .check(channel, cumulative, &signature, c.payer, c.deposit, c.redeemed)
                    .map_err(|e| e.to_string())?;
                let paid = cumulative - c.redeemed;
                c.redeemed = cumulative;
                *s.balances.entry(me).or_default() += paid;
                Ok(())
            })
        })
    }

    fn request_close(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>> {
        let me = self.address();
        Box::pin(async move {
            self.contract.transact("requestClose", |s| {
                let closes_at = s.now + self.contract.close_delay;
                let c = s.channels.get_mut(&channel).ok_or("UnknownChannel")?;
                if c.payer != me {
                    return Err("NotPayer()".into());
                }
                if c.settled {
                    return Err("Settled()".into());
                }
                if c.closes_at != 0 {
                    return Err("Closing()".into());
                }
                c.closes_at = closes_at;
                Ok(())
            })
        })
    }

    fn reclaim(&self, channel: B256) -> BoxFuture<'_, Result<(), ChainError>> {
        let me = self.address();
        Box::pin(async move {
            self.contract.transact("reclaim", |s| {
                let now = s.now;
                let c = s.channels.get_mut(&channel).ok_or("UnknownChannel")?;
                if c.payer != me {
                    return Err("NotPayer()".into());
                }
                if c.settled {
                    return Err("Settled()".into());
                }
                if c.closes_at == 0 || now < c.closes_at {
                    return Err("NotYetClosable".into());
                }
                c.settled = true;
                let back = c.deposit - c.redeemed;
                *s.balances.entry(me).or_default() += back;
                Ok(())
            })
        })
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(async move { Ok(self.contract.with(|s| s.now)) })
    }
}
