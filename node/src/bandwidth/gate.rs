//! The provider's side of paid bandwidth: whether a peer's request for blocks is served, given
//! the provider's terms, the peer's account ([`Provider`] ledger) and the voucher the request
//! carries.
//!
//! A voucher is checked before the blocks it pays for are sent: its channel is read from the
//! chain (and cached; read again when a voucher passes the cached deposit or the entry is old),
//! must pay this provider, be open and not closing, and the voucher must pass
//! `VoucherDomain::check` (the payer's signature, within the deposit). One channel pays for one
//! peer only, otherwise one deposit would cover two peers' ledgers; a peer pays through one
//! channel at a time, and may move to a new one (its old one closed or spent): what the old one
//! carried counts as paid before, and the new one's vouchers add to it. A voucher at or below
//! the one held, or on a peer's earlier channel, is stale (requests may overtake each other) and
//! is ignored; any other bad voucher refuses the request, and a peer with
//! [`MAX_REFUSALS`] refused vouchers is refused without a chain read (as are channel ids the
//! chain did not know, for a while): a peer cannot make the provider read the chain at will.
//! When the chain does not answer, what was read before is used (deposits only grow, and a
//! close gives a day); with nothing read before, the request is answered busy. Accounts are bounded: peers without a
//! channel are forgotten first when the table is full (a forgotten peer gets its allowance
//! again, as a fresh peer id would), and no channel beyond [`MAX_CHANNELS`] is taken.
//!
//! The vouchers held are money: with a records directory ([`Gate::with_records`]) they are
//! written to `vouchers.json` (write, fsync, rename) by the redeemer within a second of changing,
//! and read back at start, each peer's account set to have been served exactly what its voucher
//! pays for beyond the allowance (so a restart neither loses a voucher nor gives a peer its
//! allowance twice).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use contracts::bandwidth::VoucherError;
use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::channels::{ChannelInfo, Channels};
use super::ledger::{Decision, Provider, Terms};
use super::wire::{PaymentTerms, WireVoucher};
use crate::market::records::RecordDir;
use crate::metrics::Metrics;

const LOG: &str = "vellum::bandwidth::gate";
/// Peers with an account at once (those with a channel count too).
pub const MAX_PEERS: usize = 16_384;
/// Channels taken at once.
pub const MAX_CHANNELS: usize = 4_096;
/// The record (`<name>.json` in the bandwidth directory) of the vouchers held.
const VOUCHERS_RECORD: &str = "vouchers";
/// How long a channel read from the chain is trusted for its deposit and state.
const CHANNEL_TTL: Duration = Duration::from_secs(30);
/// Refused vouchers after which a peer's vouchers are refused without reading the chain.
pub const MAX_REFUSALS: u32 = 3;
/// Channel ids the chain did not know (or that pay others), remembered for a while.
const MAX_UNKNOWN: usize = 4_096;
/// How long such an id is refused without reading the chain again.
const UNKNOWN_TTL: Duration = Duration::from_secs(60);

/// What a provider does with peers that are past their allowance and credit and do not pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unpaid {
    /// Answer "payment required" (the default).
    Refuse,
    /// Serve them after every paying peer's requests (price acts as a priority).
    ServeLast,
}

/// A provider's pricing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Tokens per byte beyond the allowance.
    pub price_per_byte: U256,
    /// Bytes each peer is served free.
    pub free_bytes: u64,
    /// Bytes a peer may be served beyond what its vouchers cover.
    pub credit_bytes: u64,
    /// Unredeemed bytes' worth after which a channel's voucher is redeemed.
    pub redeem_every_bytes: u64,
    /// What happens to peers that do not pay.
    pub unpaid: Unpaid,
    /// Fault injection: once a peer has paid, serve it nothing more.
    pub fault_stop_after_payment: bool,
}

/// Whether a request goes ahead.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Serve it.
    Serve,
    /// Refuse it with these terms (and why, when a voucher was refused).
    PaymentRequired(Box<PaymentTerms>),
    /// Refuse it: the provider stopped serving this peer (fault injection).
    Withheld,
    /// Answer busy: the chain could not be read to check its voucher.
    Busy,
}

/// A channel a peer pays through, with the highest voucher held on it.
#[derive(Debug, Clone)]
pub(crate) struct ChannelAccount {
    pub(crate) peer: PeerId,
    pub(crate) info: ChannelInfo,
    read_at: Instant,
    pub(crate) held: U256,
    pub(crate) signature: Vec<u8>,
    /// What this provider has redeemed on it (as far as it knows).
    pub(crate) redeemed: U256,
    /// What the peer's earlier channels carried when this one was bound.
    paid_before: U256,
    /// Redeem attempts that failed in a row.
    failures: u32,
}

#[derive(Debug, Default)]
struct PeerAccount {
    /// Served and paid in all (its `held` is `paid_before` plus the current channel's voucher).
    ledger: Provider,
    /// The channel it pays through now.
    channel: Option<B256>,
    /// What its earlier channels carried.
    paid_before: U256,
    /// Vouchers of its refused.
    refusals: u32,
}

#[derive(Debug, Default)]
struct GateState {
    peers: HashMap<PeerId, PeerAccount>,
    channels: HashMap<B256, ChannelAccount>,
    /// Channel ids refused for being unknown or another provider's, and when.
    unknown: HashMap<B256, Instant>,
    totals: ServedTotals,
}

/// What the provider has served and earned, for `/bandwidth` and the devnet summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedTotals {
    /// Bytes served to peers in all.
    pub bytes_served: u64,
    /// Bytes served beyond peers' allowances (charged for).
    pub bytes_charged: u64,
    /// Vouchers accepted.
    pub vouchers_accepted: u64,
    /// Vouchers refused (forged, on a wrong or closing channel, over the deposit).
    pub vouchers_refused: u64,
    /// Vouchers at or below one already held (ignored).
    pub vouchers_stale: u64,
    /// Requests answered "payment required".
    pub requests_refused: u64,
    /// Tokens redeemed on chain.
    #[serde(serialize_with = "super::as_decimal")]
    pub tokens_redeemed: U256,
}

/// The provider's gate.
pub struct Gate {
    channels: Arc<dyn Channels>,
    config: ProviderConfig,
    terms: Terms,
    state: Mutex<GateState>,
    metrics: Arc<Metrics>,
    /// Where the vouchers held are kept, if anywhere.
    records: Option<RecordDir>,
    /// Whether the vouchers changed since they were last written.
    dirty: AtomicBool,
}

/// A voucher held, as kept on disk.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredVoucher {
    channel: B256,
    peer: String,
    /// What the peer's earlier channels carried when this one was bound.
    #[serde(default)]
    paid_before: String,
    payer: Address,
    deposit: String,
    held: String,
    redeemed: String,
    signature: String,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("config", &self.config).finish()
    }
}

/// Why a voucher was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("malformed voucher")]
    Malformed,
    #[error("channel {0} does not exist")]
    UnknownChannel(B256),
    #[error("channel {0} does not pay this provider")]
    NotOurs(B256),
    #[error("channel {0} is closing or closed")]
    Closing(B256),
    #[error("channel {0} pays for another peer")]
    TakenByOtherPeer(B256),
    #[error("too many channels")]
    TooManyChannels,
    #[error("too many refused vouchers from this peer")]
    Distrusted,
    #[error("the chain could not be read: {0}")]
    ChainAway(String),
    #[error(transparent)]
    Voucher(VoucherError),
}

impl Gate {
    /// A gate with `config`'s terms over `channels`.
    pub fn new(channels: Arc<dyn Channels>, config: ProviderConfig, metrics: Arc<Metrics>) -> Self {
        let credit = config.price_per_byte.saturating_mul(U256::from(config.credit_bytes));
        let terms = Terms { price_per_byte: config.price_per_byte, free_bytes: config.free_bytes, credit };
        Self { channels, config, terms, state: Mutex::default(), metrics, records: None, dirty: AtomicBool::new(false) }
    }

    /// Keeps the vouchers held in `dir/vouchers.json`, reading those kept there first.
    pub fn with_records(mut self, dir: PathBuf) -> std::io::Result<Self> {
        let records = RecordDir::open(&dir)?;
        let file = dir.join(format!("{VOUCHERS_RECORD}.json"));
        let stored: Vec<StoredVoucher> = match std::fs::read(&file) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        {
            let mut state = self.state();
            for v in stored {
                let (Ok(peer), Ok(held), Ok(redeemed), Ok(deposit), Ok(signature)) = (
                    v.peer.parse::<PeerId>(),
                    v.held.parse::<U256>(),
                    v.redeemed.parse::<U256>(),
                    v.deposit.parse::<U256>(),
                    alloy::hex::decode(&v.signature),
                ) else {
                    warn!(target: LOG, channel = %v.channel, "a kept voucher is unreadable; skipped");
                    continue;
                };
                let paid_before = v.paid_before.parse::<U256>().unwrap_or_default();
                let total = paid_before.saturating_add(held);
                let account = state.peers.entry(peer).or_default();
                // The peer's channel is the one that carries the most in all; it was served
                // exactly what that pays for, past the allowance.
                if total >= account.ledger.held {
                    let paid_bytes = if self.terms.price_per_byte.is_zero() {
                        0
                    } else {
                        u64::try_from(total / self.terms.price_per_byte).unwrap_or(u64::MAX)
                    };
                    account.ledger = Provider { served: self.terms.free_bytes.saturating_add(paid_bytes), held: total };
                    account.channel = Some(v.channel);
                    account.paid_before = paid_before;
                }
                let info = ChannelInfo {
                    payer: v.payer,
                    provider: self.channels.address(),
                    deposit,
                    redeemed,
                    closes_at: 0,
                    settled: false,
                };
                // Read again from the chain at the first voucher (the entry counts as old).
                let read_at = Instant::now().checked_sub(CHANNEL_TTL).unwrap_or_else(Instant::now);
                state.channels.insert(
                    v.channel,
                    ChannelAccount { peer, info, read_at, held, signature, redeemed, paid_before, failures: 0 },
                );
            }
        }
        self.records = Some(records);
        Ok(self)
    }

    /// Writes the vouchers held if they changed (the redeemer calls it every second).
    pub(crate) async fn persist_if_dirty(&self) {
        let Some(records) = self.records.clone() else { return };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let stored: Vec<StoredVoucher> = self
            .state()
            .channels
            .iter()
            .filter(|(_, c)| c.held > U256::ZERO)
            .map(|(id, c)| StoredVoucher {
                channel: *id,
                peer: c.peer.to_string(),
                paid_before: c.paid_before.to_string(),
                payer: c.info.payer,
                deposit: c.info.deposit.to_string(),
                held: c.held.to_string(),
                redeemed: c.redeemed.to_string(),
                signature: alloy::hex::encode(&c.signature),
            })
            .collect();
        let written = tokio::task::spawn_blocking(move || records.save(VOUCHERS_RECORD, &stored)).await;
        if !matches!(written, Ok(Ok(()))) {
            self.dirty.store(true, Ordering::Release);
            warn!(target: LOG, "could not keep the vouchers held; trying again");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The terms announced to peers.
    pub fn terms(&self) -> Terms {
        self.terms
    }

    /// The channels contract this gate is paid through.
    pub fn channels(&self) -> &Arc<dyn Channels> {
        &self.channels
    }

    /// Whether `peer` pays through a channel and its vouchers cover all it was served (its
    /// requests go first; a peer living on credit does not).
    pub fn is_paying(&self, peer: &PeerId) -> bool {
        self.state().peers.get(peer).is_some_and(|a| {
            a.channel.is_some() && a.ledger.unpaid(&Terms { credit: U256::ZERO, ..self.terms }) == Ok(U256::ZERO)
        })
    }

    /// Whether `peer`'s vouchers are refused without a look (too many were bad): its requests
    /// are answered without reading the disk.
    pub fn distrusts(&self, peer: &PeerId) -> bool {
        self.state().peers.get(peer).is_some_and(|a| a.refusals >= MAX_REFUSALS)
    }

    /// Takes a voucher sent on its own (after a transfer, to settle the exact amount).
    pub async fn pay(&self, peer: PeerId, voucher: &WireVoucher) -> Result<(), PaymentTerms> {
        match self.take_voucher(peer, voucher).await {
            Ok(_) | Err(Refusal::ChainAway(_)) => Ok(()),
            Err(refusal) => Err(self.payment_terms(U256::ZERO, (U256::ZERO, None), Some(refusal.to_string()))),
        }
    }

    /// Decides whether `bytes` may be sent to `peer` now, taking the request's voucher first;
    /// when it may, they are counted as served.
    pub async fn admit(&self, peer: PeerId, voucher: Option<&WireVoucher>, bytes: u64) -> Admission {
        let mut paid_now = false;
        if let Some(v) = voucher {
            match self.take_voucher(peer, v).await {
                Ok(accepted) => paid_now = accepted,
                Err(Refusal::ChainAway(_)) => return Admission::Busy,
                Err(refusal) => {
                    self.state().totals.requests_refused += 1;
                    self.metrics.bandwidth_requests_refused.inc();
                    return Admission::PaymentRequired(Box::new(self.payment_terms(
                        U256::ZERO,
                        (U256::ZERO, None),
                        Some(refusal.to_string()),
                    )));
                }
            }
        }
        let mut state = self.state();
        if !state.peers.contains_key(&peer) && state.peers.len() >= MAX_PEERS {
            evict_one_free_peer(&mut state.peers);
        }
        let account = state.peers.entry(peer).or_default();
        if self.config.fault_stop_after_payment && (paid_now || account.ledger.held > U256::ZERO) {
            warn!(target: LOG, %peer, "FAULT INJECTION: taking the payment and serving nothing");
            return Admission::Withheld;
        }
        let decision = account.ledger.decide(&self.terms, bytes);
        let serve = match decision {
            Ok(Decision::Serve) => true,
            Ok(Decision::PayFirst { .. }) | Err(_) => self.config.unpaid == Unpaid::ServeLast,
        };
        if !serve {
            let (needed, held) = match decision {
                Ok(Decision::PayFirst { needed, held }) => (needed, held),
                _ => (U256::MAX, account.ledger.held),
            };
            // What is lacking beyond all it holds, and the voucher held on the peer's channel.
            let bound = account.channel;
            let needed = needed.saturating_sub(held);
            let on_channel = bound.and_then(|c| state.channels.get(&c)).map_or(U256::ZERO, |c| c.held);
            state.totals.requests_refused += 1;
            drop(state);
            self.metrics.bandwidth_requests_refused.inc();
            debug!(target: LOG, %peer, %needed, %held, "payment required");
            return Admission::PaymentRequired(Box::new(self.payment_terms(needed, (on_channel, bound), None)));
        }
        let before = account.ledger.served;
        account.ledger.served(bytes);
        let charged =
            account.ledger.served.saturating_sub(self.terms.free_bytes) - before.saturating_sub(self.terms.free_bytes);
        state.totals.bytes_served = state.totals.bytes_served.saturating_add(bytes);
        state.totals.bytes_charged = state.totals.bytes_charged.saturating_add(charged);
        drop(state);
        self.metrics.bandwidth_bytes_charged.inc_by(charged);
        Admission::Serve
    }

    /// The terms as sent to a peer.
    fn payment_terms(&self, needed: U256, held: (U256, Option<B256>), reason: Option<String>) -> PaymentTerms {
        let domain = self.channels.domain();
        PaymentTerms::new(&self.terms, domain, self.channels.address(), needed, held, reason)
    }

    /// Checks a voucher and holds it if it is higher than the one held. `Ok(true)` when it was
    /// taken, `Ok(false)` when stale.
    async fn take_voucher(&self, peer: PeerId, v: &WireVoucher) -> Result<bool, Refusal> {
        let result = self.check_voucher(peer, v).await;
        let mut state = self.state();
        match &result {
            Ok(true) => state.totals.vouchers_accepted += 1,
            Ok(false) => state.totals.vouchers_stale += 1,
            Err(Refusal::ChainAway(e)) => {
                drop(state);
                debug!(target: LOG, %peer, error = %e, "voucher not checked: the chain does not answer");
            }
            Err(e) => {
                state.totals.vouchers_refused += 1;
                if !state.peers.contains_key(&peer) && state.peers.len() >= MAX_PEERS {
                    evict_one_free_peer(&mut state.peers);
                }
                let account = state.peers.entry(peer).or_default();
                account.refusals = account.refusals.saturating_add(1);
                drop(state);
                self.metrics.bandwidth_vouchers_refused.inc();
                warn!(target: LOG, %peer, reason = %e, "voucher refused");
            }
        }
        result
    }

    async fn check_voucher(&self, peer: PeerId, v: &WireVoucher) -> Result<bool, Refusal> {
        let (channel, cumulative) = v.parts().ok_or(Refusal::Malformed)?;
        // What can be refused without the chain.
        let cached = {
            let mut state = self.state();
            if state.peers.get(&peer).is_some_and(|a| a.refusals >= MAX_REFUSALS) {
                return Err(Refusal::Distrusted);
            }
            match state.unknown.get(&channel) {
                Some(at) if at.elapsed() < UNKNOWN_TTL => return Err(Refusal::UnknownChannel(channel)),
                Some(_) => {
                    state.unknown.remove(&channel);
                }
                None => {}
            }
            match state.channels.get(&channel) {
                Some(c) if c.peer != peer => return Err(Refusal::TakenByOtherPeer(channel)),
                // An earlier channel of this peer's: its vouchers add nothing now.
                Some(_) if state.peers.get(&peer).is_some_and(|a| a.channel.is_some_and(|b| b != channel)) => {
                    return Ok(false);
                }
                Some(c) if c.read_at.elapsed() < CHANNEL_TTL && cumulative <= c.info.deposit => Some((c.info, true)),
                Some(c) => Some((c.info, false)),
                None => {
                    if state.channels.len() >= MAX_CHANNELS {
                        return Err(Refusal::TooManyChannels);
                    }
                    None
                }
            }
        };
        let info = match cached {
            Some((info, true)) => info,
            _ => match self.channels.channel(channel).await {
                Ok(Some(info)) => info,
                Ok(None) => {
                    self.remember_unknown(channel);
                    return Err(Refusal::UnknownChannel(channel));
                }
                // Deposits only grow and a close gives a day: what was read before will do.
                Err(e) => match cached {
                    Some((info, _)) => info,
                    None => return Err(Refusal::ChainAway(e.to_string())),
                },
            },
        };
        if info.provider != self.channels.address() {
            self.remember_unknown(channel);
            return Err(Refusal::NotOurs(channel));
        }
        if info.settled || info.closes_at != 0 {
            return Err(Refusal::Closing(channel));
        }
        let mut state = self.state();
        let held = state.channels.get(&channel).map_or(U256::ZERO, |c| c.held);
        match self.channels.domain().check(channel, cumulative, &v.signature, info.payer, info.deposit, held) {
            Ok(()) => {}
            Err(VoucherError::NotIncreasing { .. }) => return Ok(false),
            Err(e) => return Err(Refusal::Voucher(e)),
        }
        // Again, under the same lock as the change: another request may have bound them while
        // the chain was read.
        if let Some(c) = state.channels.get(&channel)
            && c.peer != peer
        {
            return Err(Refusal::TakenByOtherPeer(channel));
        }
        if !state.channels.contains_key(&channel) && state.channels.len() >= MAX_CHANNELS {
            return Err(Refusal::TooManyChannels);
        }
        if !state.peers.contains_key(&peer) && state.peers.len() >= MAX_PEERS {
            evict_one_free_peer(&mut state.peers);
        }
        let account = state.peers.entry(peer).or_default();
        match account.channel {
            Some(bound) if bound == channel => {}
            Some(bound) => {
                // A new channel: what the last one carried is paid.
                info!(target: LOG, %peer, old = %bound, new = %channel, "peer pays through a new channel");
                account.paid_before = account.ledger.held;
                account.channel = Some(channel);
            }
            None => {
                info!(target: LOG, %peer, %channel, deposit = %info.deposit, "peer pays through a channel");
                account.channel = Some(channel);
            }
        }
        let paid_before = account.paid_before;
        account.ledger.hold(paid_before.saturating_add(cumulative));
        let entry = state.channels.entry(channel).or_insert_with(|| ChannelAccount {
            peer,
            info,
            read_at: Instant::now(),
            held: U256::ZERO,
            signature: Vec::new(),
            redeemed: info.redeemed,
            paid_before,
            failures: 0,
        });
        entry.info = info;
        entry.read_at = Instant::now();
        entry.held = cumulative;
        entry.signature = v.signature.clone();
        drop(state);
        self.dirty.store(true, Ordering::Release);
        self.metrics.bandwidth_vouchers_accepted.inc();
        Ok(true)
    }

    /// Remembers a channel id to refuse without the chain for a while.
    fn remember_unknown(&self, channel: B256) {
        let mut state = self.state();
        if state.unknown.len() >= MAX_UNKNOWN {
            state.unknown.retain(|_, at| at.elapsed() < UNKNOWN_TTL);
            if state.unknown.len() >= MAX_UNKNOWN {
                state.unknown.clear();
            }
        }
        state.unknown.insert(channel, Instant::now());
    }

    /// Channels whose held voucher is worth redeeming now: those with at least the redeem
    /// threshold unredeemed, and those whose payer asked to close with anything unredeemed.
    pub(crate) fn to_redeem(&self) -> Vec<(B256, U256, Vec<u8>)> {
        let threshold = self.config.price_per_byte.saturating_mul(U256::from(self.config.redeem_every_bytes));
        self.state()
            .channels
            .iter()
            .filter(|(_, c)| {
                !c.info.settled && c.held > c.redeemed && (c.info.closes_at != 0 || c.held - c.redeemed >= threshold)
            })
            .map(|(id, c)| (*id, c.held, c.signature.clone()))
            .collect()
    }

    /// Every channel with something unredeemed, whatever the threshold (tests).
    #[cfg(test)]
    pub(crate) fn to_redeem_everything(&self) -> Vec<(B256, U256, Vec<u8>)> {
        self.state()
            .channels
            .iter()
            .filter(|(_, c)| c.held > c.redeemed)
            .map(|(id, c)| (*id, c.held, c.signature.clone()))
            .collect()
    }

    /// Channels with something unredeemed (to watch for a close request).
    pub(crate) fn unredeemed(&self) -> Vec<B256> {
        self.state()
            .channels
            .iter()
            .filter(|(_, c)| !c.info.settled && c.held > c.redeemed)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Records a redemption of `cumulative` on `channel`.
    pub(crate) fn redeemed(&self, channel: B256, cumulative: U256) {
        let mut state = self.state();
        let Some(c) = state.channels.get_mut(&channel) else { return };
        c.failures = 0;
        if cumulative > c.redeemed {
            let paid = cumulative - c.redeemed;
            c.redeemed = cumulative;
            self.dirty.store(true, Ordering::Release);
            state.totals.tokens_redeemed = state.totals.tokens_redeemed.saturating_add(paid);
            self.metrics.bandwidth_tokens_redeemed.inc_by(u64::try_from(paid).unwrap_or(u64::MAX));
        }
    }

    /// Records a channel's state read from the chain (a close request makes it redeem at once).
    /// A channel that is settled, or closing with nothing left to redeem, is forgotten (its
    /// peer keeps its account).
    pub(crate) fn refreshed(&self, channel: B256, info: ChannelInfo) {
        let mut state = self.state();
        let Some(c) = state.channels.get_mut(&channel) else { return };
        c.info = info;
        c.read_at = Instant::now();
        if info.redeemed > c.redeemed {
            c.redeemed = info.redeemed;
        }
        if info.settled || (info.closes_at != 0 && c.held <= c.redeemed) {
            state.channels.remove(&channel);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Records a failed redemption; after a few in a row on a closing channel (its delay
    /// passed, most likely), the channel is forgotten.
    pub(crate) fn redeem_failed(&self, channel: B256) {
        let mut state = self.state();
        let Some(c) = state.channels.get_mut(&channel) else { return };
        c.failures = c.failures.saturating_add(1);
        if c.failures >= 3 && c.info.closes_at != 0 {
            warn!(target: LOG, %channel, unredeemed = %(c.held - c.redeemed.min(c.held)), "giving up on a closed channel's voucher");
            state.channels.remove(&channel);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// The totals so far, and the channels held.
    pub fn totals(&self) -> (ServedTotals, Vec<HeldChannel>) {
        let state = self.state();
        let channels = state
            .channels
            .iter()
            .map(|(id, c)| HeldChannel {
                id: *id,
                peer: c.peer.to_string(),
                payer: c.info.payer,
                deposit: c.info.deposit,
                held: c.held,
                redeemed: c.redeemed,
                closing: c.info.closes_at != 0,
            })
            .collect();
        (state.totals.clone(), channels)
    }
}

/// A channel a provider is paid through, for `/bandwidth`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldChannel {
    /// The channel's id.
    pub id: B256,
    /// The peer it pays for.
    pub peer: String,
    /// Its payer's wallet.
    pub payer: Address,
    /// Its deposit.
    #[serde(serialize_with = "super::as_decimal")]
    pub deposit: U256,
    /// The highest voucher held.
    #[serde(serialize_with = "super::as_decimal")]
    pub held: U256,
    /// What was redeemed of it.
    #[serde(serialize_with = "super::as_decimal")]
    pub redeemed: U256,
    /// Whether its payer asked to close it.
    pub closing: bool,
}

fn evict_one_free_peer(peers: &mut HashMap<PeerId, PeerAccount>) {
    let victim = peers.iter().find(|(_, a)| a.channel.is_none()).map(|(p, _)| *p);
    if let Some(p) = victim {
        peers.remove(&p);
    }
}
