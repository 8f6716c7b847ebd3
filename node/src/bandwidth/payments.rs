//! The downloader's side of paid bandwidth: one channel and one [`Payer`] ledger per provider
//! that asked for payment, vouchers signed as requests go out, and the exact amount settled
//! once a transfer is over.
//!
//! A provider's first "payment required" answer carries its terms; they are taken only if they
//! name this node's channels contract and chain, and a price no higher than `--max-price`.
//! A channel is then opened with the deposit (within the total budget), one open at a time.
//! Bytes a provider served before it asked count toward its allowance. The channels opened are
//! kept in `bandwidth/channels.json` (written atomically), so that after a restart their
//! unspent deposits can still be reclaimed; vouchers are not signed on them again (what was
//! signed is not kept), new transfers open new channels.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::{Address, B256, U256};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::channels::Channels;
use super::ledger::{PayError, Payer};
use super::wire::{PaymentTerms, WireVoucher};
use crate::market::records::RecordDir;
use crate::metrics::Metrics;

const LOG: &str = "vellum::bandwidth::payments";
/// The record (`<name>.json` in the bandwidth directory) of the channels opened.
const CHANNELS_RECORD: &str = "channels";
/// Providers remembered before they ask for payment (bytes they served count toward their
/// allowance).
const MAX_UNPAID_PEERS: usize = 16_384;

/// Fault injection for tests: a downloader that pays wrongly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoucherFault {
    /// Vouchers signed by a key that is not the channel's payer.
    Forge,
    /// The first voucher sent again instead of higher ones.
    Replay,
    /// Vouchers for more than the deposit.
    OverBudget,
    /// Accepts the terms, opens the channel, then signs nothing.
    NoPay,
}

/// A downloader's willingness to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayerConfig {
    /// The highest price per byte accepted.
    pub max_price: U256,
    /// Tokens that may be deposited in channels in all.
    pub budget: U256,
    /// Tokens deposited in each channel (at most what is left of the budget).
    pub deposit: U256,
    /// Bytes paid for ahead of what arrived, at most (the most a provider that stops serving
    /// can take).
    pub prepay_bytes: u64,
    /// Fault injection.
    pub fault: Option<VoucherFault>,
}

/// Why a provider is not paid.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Its terms are unreadable.
    #[error("the provider's terms are malformed")]
    Malformed,
    /// Its channels contract or chain is not ours.
    #[error("the provider takes vouchers on {contract} of chain {chain_id}, not on this node's channels contract")]
    OtherContract {
        /// Its contract.
        contract: Address,
        /// Its chain.
        chain_id: u64,
    },
    /// The ledger refused (too dear, over budget).
    #[error(transparent)]
    Ledger(#[from] PayError),
    /// The budget is spent.
    #[error("the bandwidth budget is spent ({deposited} deposited of {budget})")]
    BudgetSpent {
        /// Deposited so far.
        deposited: U256,
        /// The budget.
        budget: U256,
    },
    /// It refused a voucher already.
    #[error("the provider refused our voucher: {0}")]
    Refused(String),
    /// Opening a channel failed.
    #[error("opening a channel failed: {0}")]
    Chain(#[from] contracts::client::ChainError),
}

/// A channel this node pays through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaidChannel {
    /// The channel's id.
    pub id: B256,
    /// The provider's wallet.
    pub provider: Address,
    /// The provider's peer.
    pub peer: String,
    /// Tokens deposited.
    #[serde(with = "decimal")]
    pub deposit: U256,
    /// The highest voucher signed (0 for channels from before a restart, whose vouchers are
    /// not known).
    #[serde(with = "decimal")]
    pub signed: U256,
    /// When its close was asked (chain time at which it may be reclaimed), 0 if not.
    pub closes_at: u64,
    /// Whether its unspent deposit was taken back.
    pub reclaimed: bool,
}

mod decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

struct Account {
    /// The channel's place in the list.
    channel: usize,
    /// The ledger's total signed when the channel was opened: the channel's vouchers carry the
    /// total less this.
    base: U256,
    ledger: Payer,
    first: Option<WireVoucher>,
}

#[derive(Default)]
struct PayState {
    accounts: HashMap<PeerId, Account>,
    /// Ledgers of providers whose channel closed or was spent: a new channel carries on from
    /// them (the allowance stays used, what was paid stays paid).
    retired: HashMap<PeerId, Payer>,
    /// Every channel opened (this run's and earlier runs').
    channels: Vec<PaidChannel>,
    /// Bytes received from providers that have not asked for payment.
    unpaid: HashMap<PeerId, u64>,
    /// Tokens deposited and not taken back.
    deposited: U256,
    bytes_paid: u64,
}

/// What a request carries, and the channel (by its place in the list) whose ledger counted its
/// bytes as in flight, if one did.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    /// The voucher to send, if one is due.
    pub voucher: Option<WireVoucher>,
    counted_on: Option<usize>,
}

/// The downloader's payments.
pub struct Payments {
    channels: Arc<dyn Channels>,
    config: PayerConfig,
    state: Mutex<PayState>,
    /// One channel opens (or closes) at a time.
    opening: tokio::sync::Mutex<()>,
    records: RecordDir,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").field("config", &self.config).finish()
    }
}

/// What the downloader has paid, for `/bandwidth`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaidTotals {
    /// Bytes received that were paid for (beyond providers' allowances).
    pub bytes_paid: u64,
    /// Tokens signed over in vouchers (this run's channels).
    #[serde(serialize_with = "super::as_decimal")]
    pub tokens_signed: U256,
    /// Tokens deposited in channels and not taken back.
    #[serde(serialize_with = "super::as_decimal")]
    pub tokens_deposited: U256,
    /// The channels.
    pub channels: Vec<PaidChannel>,
}

impl Payments {
    /// Payments through `channels`, remembering channels in `dir/channels.json`.
    pub fn open(
        channels: Arc<dyn Channels>,
        config: PayerConfig,
        dir: PathBuf,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let records = RecordDir::open(&dir)?;
        let file = dir.join(format!("{CHANNELS_RECORD}.json"));
        let mut state = PayState::default();
        match std::fs::read(&file) {
            Ok(bytes) => {
                let known: Vec<PaidChannel> = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                for c in known.iter().filter(|c| !c.reclaimed) {
                    state.deposited = state.deposited.saturating_add(c.deposit);
                }
                state.channels = known;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(fault) = config.fault {
            warn!(target: LOG, ?fault, "FAULT INJECTION: this node pays providers wrongly");
        }
        Ok(Self { channels, config, state: Mutex::new(state), opening: tokio::sync::Mutex::new(()), records, metrics })
    }

    /// The channels contract paid through.
    pub fn channels(&self) -> &Arc<dyn Channels> {
        &self.channels
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The voucher (if any) to send with a request for `bytes` from `peer`. When the channel's
    /// deposit is spent, the channel is retired (its ledger kept) and the request goes without
    /// a voucher: the provider's "payment required" then opens a new one.
    pub fn ticket(&self, peer: PeerId, bytes: u64) -> Result<Ticket, PaymentError> {
        let mut state = self.state();
        let PayState { accounts, channels, retired, .. } = &mut *state;
        let Some(account) = accounts.get_mut(&peer) else { return Ok(Ticket::default()) };
        if self.config.fault == Some(VoucherFault::NoPay) {
            return Ok(Ticket::default());
        }
        let counted_on = Some(account.channel);
        let total = match account.ledger.voucher_for(bytes) {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(Ticket { voucher: None, counted_on }),
            Err(PayError::OverBudget { .. }) => {
                info!(target: LOG, %peer, "the channel's deposit is spent; the next payment opens another");
                if let Some(spent) = accounts.remove(&peer) {
                    retired.insert(peer, spent.ledger);
                }
                return Ok(Ticket::default());
            }
            Err(e) => return Err(e.into()),
        };
        let cumulative = total.saturating_sub(account.base);
        let channel = &mut channels[account.channel];
        channel.signed = cumulative;
        let voucher = self.voucher(channel, cumulative)?;
        if account.first.is_none() {
            account.first = Some(voucher.clone());
        }
        let voucher = match (self.config.fault, &account.first) {
            (Some(VoucherFault::Replay), Some(first)) => first.clone(),
            _ => voucher,
        };
        Ok(Ticket { voucher: Some(voucher), counted_on })
    }

    fn voucher(&self, channel: &PaidChannel, cumulative: U256) -> Result<WireVoucher, PaymentError> {
        let (amount, signature) = match self.config.fault {
            Some(VoucherFault::Forge) => {
                let stranger = alloy::signers::local::PrivateKeySigner::random();
                let sig = self
                    .channels
                    .domain()
                    .sign(&stranger, channel.id, cumulative)
                    .map_err(|e| PaymentError::Refused(e.to_string()))?;
                (cumulative, sig)
            }
            Some(VoucherFault::OverBudget) => {
                let amount = channel.deposit.saturating_add(U256::from(1u64));
                (amount, self.channels.sign(channel.id, amount)?)
            }
            _ => (cumulative, self.channels.sign(channel.id, cumulative)?),
        };
        Ok(WireVoucher::new(channel.id, amount, &signature))
    }

    /// Records the answer to a request for `asked` bytes of which `received` arrived checked.
    pub fn answered(&self, peer: PeerId, ticket: &Ticket, asked: u64, received: u64) {
        let mut state = self.state();
        let PayState { accounts, retired, unpaid, bytes_paid, .. } = &mut *state;
        let ledger = match accounts.get_mut(&peer) {
            Some(account) => {
                if ticket.counted_on == Some(account.channel) {
                    let free_left = account.ledger.terms.free_bytes.saturating_sub(account.ledger.received);
                    account.ledger.answered(asked, received);
                    let paid = received.saturating_sub(free_left);
                    *bytes_paid = bytes_paid.saturating_add(paid);
                    self.metrics.bandwidth_bytes_paid.inc_by(paid);
                    return;
                }
                &mut account.ledger
            }
            None => match retired.get_mut(&peer) {
                Some(ledger) => ledger,
                None => {
                    if !unpaid.contains_key(&peer)
                        && unpaid.len() >= MAX_UNPAID_PEERS
                        && let Some(p) = unpaid.keys().next().copied()
                    {
                        unpaid.remove(&p);
                    }
                    *unpaid.entry(peer).or_default() += received;
                    return;
                }
            },
        };
        let free_left = ledger.terms.free_bytes.saturating_sub(ledger.received);
        ledger.received(received);
        let paid = received.saturating_sub(free_left);
        *bytes_paid = bytes_paid.saturating_add(paid);
        self.metrics.bandwidth_bytes_paid.inc_by(paid);
    }

    /// Whether `peer` is paid through a channel already.
    pub fn pays(&self, peer: &PeerId) -> bool {
        self.state().accounts.contains_key(peer)
    }

    /// Takes the provider's word, in a "payment required" answer while it is paid through a
    /// channel, that it is owed more than was signed (see [`Payer::sync`]). `Ok(true)` when the
    /// next voucher carries more; `Ok(false)` when nothing changes (it was signed already).
    pub fn sync(&self, peer: PeerId, terms: &PaymentTerms) -> Result<bool, PaymentError> {
        let more = super::wire::amount(&terms.needed).ok_or(PaymentError::Malformed)?;
        let held = super::wire::amount(&terms.held).ok_or(PaymentError::Malformed)?;
        let mut state = self.state();
        let PayState { accounts, channels, .. } = &mut *state;
        let Some(account) = accounts.get_mut(&peer) else { return Ok(false) };
        // What the provider holds in all, in our totals: what the channel it knows of carries
        // (it has not seen our new channel yet: what the earlier ones carried).
        let ours = channels.get(account.channel).map(|c| c.id);
        let holds = if terms.bound_channel().is_some() && terms.bound_channel() == ours {
            account.base.saturating_add(held)
        } else {
            account.base
        };
        Ok(account.ledger.sync(holds.saturating_add(more))?)
    }

    /// Takes a provider's terms: checks them and opens a channel to it, unless one is open. The
    /// channel is opened and recorded by a task of its own, which goes on if the caller is
    /// dropped (a stalled request is aborted): a deposit made is never forgotten.
    pub async fn accept_terms(self: &Arc<Self>, peer: PeerId, terms: &PaymentTerms) -> Result<(), PaymentError> {
        if let Some(reason) = &terms.refused {
            return Err(PaymentError::Refused(reason.clone()));
        }
        let offered = terms.offered().ok_or(PaymentError::Malformed)?;
        let ours = self.channels.domain();
        if offered.domain != ours {
            return Err(PaymentError::OtherContract {
                contract: offered.domain.contract,
                chain_id: offered.domain.chain_id,
            });
        }
        // The price is checked before any deposit.
        Payer::new(offered.terms, self.config.max_price, U256::ZERO, U256::ZERO)?;
        let this = Arc::clone(self);
        let bound_before = terms.bound_channel().is_some();
        let task = tokio::spawn(async move { this.open_channel(peer, offered, bound_before).await });
        task.await.map_err(|e| PaymentError::Refused(format!("opening a channel failed: {e}")))?
    }

    async fn open_channel(
        &self,
        peer: PeerId,
        offered: super::wire::OfferedTerms,
        bound_before: bool,
    ) -> Result<(), PaymentError> {
        let _turn = self.opening.lock().await;
        if self.pays(&peer) {
            return Ok(());
        }
        let deposit = {
            let state = self.state();
            let left = self.config.budget.saturating_sub(state.deposited);
            if left.is_zero() {
                return Err(PaymentError::BudgetSpent { deposited: state.deposited, budget: self.config.budget });
            }
            self.config.deposit.min(left)
        };
        info!(target: LOG, %peer, provider = %offered.provider, price = %offered.terms.price_per_byte, %deposit, "opening a bandwidth channel");
        let id = self.channels.open(offered.provider, deposit).await?;
        self.metrics.bandwidth_channels_opened.inc();
        let record = PaidChannel {
            id,
            provider: offered.provider,
            peer: peer.to_string(),
            deposit,
            signed: U256::ZERO,
            closes_at: 0,
            reclaimed: false,
        };
        let snapshot = {
            let mut state = self.state();
            let prepay = offered.terms.price_per_byte.saturating_mul(U256::from(self.config.prepay_bytes));
            let mut ledger = match state.retired.remove(&peer) {
                // Carry on from the last channel's ledger: the allowance stays used.
                Some(old) if old.terms == offered.terms => old,
                Some(old) => {
                    let mut fresh = Payer::new(offered.terms, self.config.max_price, U256::ZERO, prepay)?;
                    fresh.received = old.received;
                    fresh
                }
                None => {
                    let mut fresh = Payer::new(offered.terms, self.config.max_price, U256::ZERO, prepay)?;
                    let received = state.unpaid.remove(&peer).unwrap_or(0);
                    // What it served beyond its allowance before it asked is paid for too.
                    let charged = received.saturating_sub(fresh.terms.free_bytes);
                    state.bytes_paid = state.bytes_paid.saturating_add(charged);
                    self.metrics.bandwidth_bytes_paid.inc_by(charged);
                    // A provider that has this peer paying through a channel already (an
                    // earlier run's) has spent its allowance on it: counting it so costs
                    // nothing and keeps the two in step. A first "payment required" may come
                    // before the allowance is used (a request larger than what is left of it).
                    fresh.received = if bound_before { received.max(fresh.terms.free_bytes) } else { received };
                    fresh
                }
            };
            let base = ledger.signed;
            ledger.budget = base.saturating_add(deposit);
            ledger.prepay = prepay;
            // A floor or in-flight count from the last channel does not carry over.
            ledger.floor = base;
            ledger.in_flight = 0;
            state.deposited = state.deposited.saturating_add(deposit);
            state.channels.push(record);
            let channel = state.channels.len() - 1;
            state.accounts.insert(peer, Account { channel, base, ledger, first: None });
            state.channels.clone()
        };
        self.persist(&snapshot).await;
        Ok(())
    }

    /// The voucher that pays `peer` exactly for what arrived, once nothing is in flight to it
    /// (`None` when what was signed covers it).
    pub fn settlement(&self, peer: PeerId) -> Result<Option<WireVoucher>, PaymentError> {
        if matches!(self.config.fault, Some(VoucherFault::NoPay | VoucherFault::Replay)) {
            return Ok(None);
        }
        let mut state = self.state();
        let PayState { accounts, channels, .. } = &mut *state;
        let Some(account) = accounts.get_mut(&peer) else { return Ok(None) };
        let Some(total) = account.ledger.settle()? else { return Ok(None) };
        let cumulative = total.saturating_sub(account.base);
        let channel = &mut channels[account.channel];
        channel.signed = cumulative;
        Ok(Some(self.voucher(channel, cumulative)?))
    }

    /// Asks to close every channel not yet closing; no more vouchers are signed on them (their
    /// ledgers are kept for the next channel), and their providers may redeem until the close
    /// delay passes. A channel that fails is logged and left for the next call; one that the
    /// chain shows closing or settled already is recorded so. Returns how many were asked.
    pub async fn close_all(&self) -> Result<usize, PaymentError> {
        let _turn = self.opening.lock().await;
        let open: Vec<B256> = {
            let state = self.state();
            state.channels.iter().filter(|c| c.closes_at == 0 && !c.reclaimed).map(|c| c.id).collect()
        };
        let (mut asked, mut failed) = (0, None);
        for id in open {
            let outcome = async {
                let now = self.channels.channel(id).await?;
                if let Some(c) = now
                    && (c.closes_at != 0 || c.settled)
                {
                    return Ok::<_, PaymentError>((c.closes_at.max(1), c.settled));
                }
                self.channels.request_close(id).await?;
                let closes_at = self.channels.channel(id).await?.map_or(1, |c| c.closes_at.max(1));
                Ok((closes_at, false))
            }
            .await;
            match outcome {
                Ok((closes_at, settled)) => {
                    self.retire_channel(id, closes_at, settled);
                    asked += 1;
                }
                Err(e) => {
                    warn!(target: LOG, channel = %id, error = %e, "could not close a bandwidth channel");
                    failed = Some(e);
                }
            }
            let snapshot = self.state().channels.clone();
            self.persist(&snapshot).await;
        }
        match (asked, failed) {
            (0, Some(e)) => Err(e),
            _ => Ok(asked),
        }
    }

    /// Records a channel as closing (or settled), and keeps its provider's ledger for the next.
    fn retire_channel(&self, id: B256, closes_at: u64, settled: bool) {
        let mut state = self.state();
        let Some(index) = state.channels.iter().position(|c| c.id == id) else { return };
        state.channels[index].closes_at = closes_at;
        if settled {
            state.channels[index].reclaimed = true;
        }
        let peers: Vec<PeerId> = state.accounts.iter().filter(|(_, a)| a.channel == index).map(|(p, _)| *p).collect();
        for p in peers {
            if let Some(a) = state.accounts.remove(&p) {
                state.retired.insert(p, a.ledger);
            }
        }
    }

    /// Takes back the unspent deposit of every closing channel whose delay has passed; returns
    /// the tokens taken back. A channel that fails is logged and left for the next call.
    pub async fn reclaim_due(&self) -> Result<U256, PaymentError> {
        let _turn = self.opening.lock().await;
        let now = self.channels.now().await?;
        let due: Vec<B256> = {
            let state = self.state();
            state
                .channels
                .iter()
                .filter(|c| c.closes_at != 0 && !c.reclaimed && now >= c.closes_at)
                .map(|c| c.id)
                .collect()
        };
        let mut back = U256::ZERO;
        for id in due {
            let outcome = async {
                let before = self.channels.channel(id).await?;
                if before.is_some_and(|c| c.settled) {
                    return Ok::<_, PaymentError>(U256::ZERO);
                }
                self.channels.reclaim(id).await?;
                Ok(before.map_or(U256::ZERO, |c| c.deposit.saturating_sub(c.redeemed)))
            }
            .await;
            match outcome {
                Ok(rest) => {
                    back = back.saturating_add(rest);
                    let mut state = self.state();
                    if let Some(c) = state.channels.iter_mut().find(|c| c.id == id) {
                        c.reclaimed = true;
                        let deposit = c.deposit;
                        // What was not spent may be deposited again.
                        state.deposited = state.deposited.saturating_sub(rest.min(deposit));
                    }
                }
                Err(e) => warn!(target: LOG, channel = %id, error = %e, "could not reclaim a bandwidth deposit"),
            }
            let snapshot = self.state().channels.clone();
            self.persist(&snapshot).await;
        }
        Ok(back)
    }

    /// What was paid so far.
    pub fn totals(&self) -> PaidTotals {
        let state = self.state();
        let signed = state.channels.iter().fold(U256::ZERO, |sum, c| sum.saturating_add(c.signed));
        PaidTotals {
            bytes_paid: state.bytes_paid,
            tokens_signed: signed,
            tokens_deposited: state.deposited,
            channels: state.channels.clone(),
        }
    }

    /// Writes the channel list atomically (write, fsync, rename); a failure is logged (the
    /// chain still holds every channel, by its `ChannelOpened` event).
    async fn persist(&self, channels: &[PaidChannel]) {
        let records = self.records.clone();
        let channels = channels.to_vec();
        let result = tokio::task::spawn_blocking(move || records.save(CHANNELS_RECORD, &channels)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(target: LOG, error = %e, "could not record the bandwidth channels"),
            Err(e) => warn!(target: LOG, error = %e, "could not record the bandwidth channels"),
        }
    }
}
