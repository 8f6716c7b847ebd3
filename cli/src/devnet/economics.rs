//! The devnet's proof economics, computed from the chain alone: what honest hosts' proving cost
//! on chain per proven slot-period (their own `submitProof` and `defendProof` transactions and
//! any accusations and settlements against their slots), what one proof costs when every proof
//! goes on chain, what enforcement against slashed hosts cost, what anchoring the periods cost
//! the whole network, the accusations made, defended and settled, and the proof gas in dollars
//! per TiB-month.
//!
//! This module owns that classification and arithmetic, as functions over plain data ([`Run`]:
//! transactions as sender, call (with its slot and period) and gas; the marketplace's events
//! decoded by [`MarketEvent`] in chain order; block hashes for the periods' seeds), so that the
//! tests build runs by hand. [`Run::from_chain`] is the thin part that turns what `report.rs`
//! read into that data (calldata decoded with the `Marketplace` bindings), and
//! [`verify_gas_estimate`] the one further chain call, made only when no proof went on chain.
//!
//! The rules: a host is slashed when a `ProofMissed` names a slot while it held it, honest when
//! it held a slot and never was. A slot-period counts as proved by an honest host when the host
//! held the slot through the period's accusation window, that window closed before the run
//! ended (and before the request failed, if it did), the period was anchored in advance, and
//! `contracts::rules` says the slot owed a proof in it (`owes_proof` and `selected`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy::primitives::{Address, B256, U256, keccak256, uint};
use alloy::providers::DynProvider;
use alloy::sol_types::SolCall;
use contracts::{Groth16Verifier, MarketEvent, Marketplace, rules};

use super::report::{ChainRecord, Mined, thousands};

/// Slots of 1 GiB in a TiB.
const SLOTS_PER_TIB: f64 = 1024.0;
/// Days in an average month (one proof a day per slot).
const DAYS_PER_MONTH: f64 = 30.44;
/// The gas price assumed: 0.01 gwei, in ether.
const ETH_PER_GAS: f64 = 0.01e-9;
/// The ether price assumed, in dollars.
const USD_PER_ETH: f64 = 3000.0;
/// What the dollar figures assume, as printed.
const ASSUMPTIONS: &str = "at 0.01 gwei, $3,000/ETH, 1 GiB slots proven daily";

/// The BN254 scalar field modulus: proof inputs are reduced modulo it (`ProofPeriods.FIELD_R`).
const FIELD_R: U256 = uint!(21888242871839275222246405745257275088548364400416034343698204186575808495617_U256);

/// Where in the chain a transaction or a log is: its block, its transaction's index in the
/// block, and the log's index in that transaction's receipt (0 for a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(super) struct Position {
    pub(super) block: u64,
    pub(super) tx: u64,
    pub(super) log: u64,
}

/// What a transaction called, as far as the economics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// `submitProof(slot, proof)`.
    SubmitProof { slot: B256 },
    /// `defendProof(slot, period, proof)`.
    DefendProof { slot: B256, period: u64 },
    /// `accuseMissingProof(slot, period)`.
    Accuse { slot: B256, period: u64 },
    /// `settleAccusation(slot, period)`.
    Settle { slot: B256, period: u64 },
    /// `anchorPeriods()`.
    AnchorPeriods,
    /// Anything else (fills, requests, the token, deploys, a period beyond u64).
    Other,
}

/// One mined transaction: where, when (its block's timestamp), who sent it, what it called, the
/// gas it used (a reverted one's too: its gas was spent) and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tx {
    pub(super) at: Position,
    pub(super) time: u64,
    pub(super) from: Address,
    pub(super) call: Call,
    pub(super) gas: u64,
    pub(super) ok: bool,
}

/// One marketplace event, where and when (its block's timestamp) it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Logged {
    pub(super) at: Position,
    pub(super) time: u64,
    pub(super) event: MarketEvent,
}

/// A whole run as plain data.
#[derive(Debug, Clone, Default)]
pub(super) struct Run {
    /// Every transaction, in chain order.
    pub(super) txs: Vec<Tx>,
    /// The marketplace's events, in chain order.
    pub(super) events: Vec<Logged>,
    /// Block hashes by number (the anchor blocks' at least).
    pub(super) hashes: BTreeMap<u64, B256>,
    /// Seconds per period.
    pub(super) period_length: u64,
    /// Seconds after a period during which its missing proofs can be accused.
    pub(super) proof_timeout: u64,
    /// The last block's timestamp: the end of the run.
    pub(super) end: u64,
}

/// The marketplace's slot id of a request's slot: keccak256(abi.encode(requestId, uint64 index)).
pub(super) fn slot_id(request_id: B256, index: u64) -> B256 {
    let mut words = [0u8; 64];
    words[..32].copy_from_slice(request_id.as_slice());
    words[56..].copy_from_slice(&index.to_be_bytes());
    keccak256(words)
}

/// What a marketplace call's calldata says (anything that does not decode is [`Call::Other`]).
pub(super) fn decode_call(input: &[u8]) -> Call {
    let Some(selector) = input.get(..4) else { return Call::Other };
    let period = |p: U256| u64::try_from(p).ok();
    let call = if selector == Marketplace::submitProofCall::SELECTOR {
        Marketplace::submitProofCall::abi_decode(input).ok().map(|c| Call::SubmitProof { slot: c.id })
    } else if selector == Marketplace::defendProofCall::SELECTOR {
        Marketplace::defendProofCall::abi_decode(input)
            .ok()
            .and_then(|c| Some(Call::DefendProof { slot: c.id, period: period(c.period)? }))
    } else if selector == Marketplace::accuseMissingProofCall::SELECTOR {
        Marketplace::accuseMissingProofCall::abi_decode(input)
            .ok()
            .and_then(|c| Some(Call::Accuse { slot: c.id, period: period(c.period)? }))
    } else if selector == Marketplace::settleAccusationCall::SELECTOR {
        Marketplace::settleAccusationCall::abi_decode(input)
            .ok()
            .and_then(|c| Some(Call::Settle { slot: c.id, period: period(c.period)? }))
    } else if selector == Marketplace::anchorPeriodsCall::SELECTOR {
        Some(Call::AnchorPeriods)
    } else {
        None
    };
    call.unwrap_or(Call::Other)
}

impl Run {
    /// The run as plain data from the chain record: calls to `marketplace` decoded from their
    /// calldata, its logs decoded as [`MarketEvent`]s (other contracts' logs and anything that
    /// does not decode left out).
    pub(super) fn from_chain(
        record: &ChainRecord,
        marketplace: Address,
        period_length: u64,
        proof_timeout: u64,
    ) -> Run {
        let mut run =
            Run { hashes: record.hashes.clone(), period_length, proof_timeout, end: record.end, ..Run::default() };
        for tx in &record.txs {
            let at = Position { block: tx.block, tx: tx.index, log: 0 };
            let call = if tx.to == Some(marketplace) { decode_call(&tx.input) } else { Call::Other };
            run.txs.push(Tx { at, time: tx.time, from: tx.from, call, gas: tx.gas, ok: tx.ok });
            for (log_index, log) in (0u64..).zip(&tx.logs) {
                if log.address() != marketplace {
                    continue;
                }
                if let Some(event) = MarketEvent::decode(log) {
                    let at = Position { block: tx.block, tx: tx.index, log: log_index };
                    run.events.push(Logged { at, time: tx.time, event });
                }
            }
        }
        run
    }

    fn period_length(&self) -> u64 {
        self.period_length.max(1)
    }

    /// Each anchored period's anchor block and whether it came late (the first anchor counts).
    fn anchors(&self) -> BTreeMap<u64, (u64, bool)> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let MarketEvent::PeriodAnchored { period, block_number, late } = e.event {
                out.entry(period).or_insert((block_number, late));
            }
        }
        out
    }

    /// A period's seed, if it was anchored (in advance, or also late when `late_too`) and its
    /// anchor block's hash is known.
    fn seed(&self, anchors: &BTreeMap<u64, (u64, bool)>, period: u64, late_too: bool) -> Option<U256> {
        let (block, late) = anchors.get(&period)?;
        if *late && !late_too {
            return None;
        }
        self.hashes.get(block).map(|hash| rules::seed_from_anchor(*hash))
    }
}

/// One host's hold of one slot, from its fill (or refill) until it lost or freed the slot or
/// another host refilled it (`until`: where and when; `None`: held at the end of the run).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tenure {
    slot: B256,
    request: B256,
    host: Address,
    from: Position,
    filled_at: u64,
    until: Option<(Position, u64)>,
}

impl Tenure {
    /// Whether the host held the slot at `at` (an event of the tenure's ending transaction
    /// logged before the ending event still finds it held).
    fn holds_at(&self, at: Position) -> bool {
        self.from < at && self.until.is_none_or(|(end, _)| at <= end)
    }
}

/// Every host's tenures, from the fill, repair, loss and free events.
fn tenures(events: &[Logged]) -> Vec<Tenure> {
    let mut out: Vec<Tenure> = Vec::new();
    let mut open: HashMap<B256, usize> = HashMap::new();
    for e in events {
        match &e.event {
            MarketEvent::SlotFilled { request_id, slot_index, host }
            | MarketEvent::SlotRepaired { request_id, slot_index, host } => {
                let slot = slot_id(*request_id, *slot_index);
                if let Some(t) = open.remove(&slot).and_then(|i| out.get_mut(i)) {
                    t.until = Some((e.at, e.time));
                }
                open.insert(slot, out.len());
                out.push(Tenure {
                    slot,
                    request: *request_id,
                    host: *host,
                    from: e.at,
                    filled_at: e.time,
                    until: None,
                });
            }
            MarketEvent::SlotLost { request_id, slot_index, .. }
            | MarketEvent::SlotFreed { request_id, slot_index, .. } => {
                let slot = slot_id(*request_id, *slot_index);
                if let Some(t) = open.remove(&slot).and_then(|i| out.get_mut(i)) {
                    t.until = Some((e.at, e.time));
                }
            }
            _ => {}
        }
    }
    out
}

/// The host that held `slot` at `at`.
fn holder_at(tenures: &[Tenure], slot: B256, at: Position) -> Option<Address> {
    tenures.iter().find(|t| t.slot == slot && t.holds_at(at)).map(|t| t.host)
}

/// Hosts that held a slot, and those of them a `ProofMissed` named while they held it.
fn hosts_and_slashed(events: &[Logged], tenures: &[Tenure]) -> (BTreeSet<Address>, BTreeSet<Address>) {
    let hosts = tenures.iter().map(|t| t.host).collect();
    let slashed = events
        .iter()
        .filter_map(|e| match e.event {
            MarketEvent::ProofMissed { slot_id, .. } => holder_at(tenures, slot_id, e.at),
            _ => None,
        })
        .collect();
    (hosts, slashed)
}

/// The host a transaction is against: the sender of a proof or a defence; the slot's holder
/// when an accusation was sent; for a settlement, the holder when the accusation it settles was
/// made (the last one of that slot and period before it), else the holder when it was sent.
fn accused(tx: &Tx, events: &[Logged], tenures: &[Tenure]) -> Option<Address> {
    match tx.call {
        Call::SubmitProof { .. } | Call::DefendProof { .. } => Some(tx.from),
        Call::Accuse { slot, .. } => holder_at(tenures, slot, tx.at),
        Call::Settle { slot, period } => {
            let made = events.iter().rev().find(|e| {
                e.at < tx.at
                    && matches!(e.event, MarketEvent::ProofAccused { slot_id, period: p, .. } if slot_id == slot && p == period)
            });
            holder_at(tenures, slot, made.map_or(tx.at, |e| e.at))
        }
        Call::AnchorPeriods | Call::Other => None,
    }
}

/// What a request says about its proofs.
#[derive(Debug, Clone, Copy, Default)]
struct RequestTimes {
    probability: u32,
    ends_at: u64,
    started_at: Option<u64>,
    failed_at: Option<u64>,
}

fn request_times(events: &[Logged]) -> HashMap<B256, RequestTimes> {
    let mut out: HashMap<B256, RequestTimes> = HashMap::new();
    for e in events {
        match &e.event {
            MarketEvent::StorageRequested { request_id, ask, ends_at, .. } => {
                let r = out.entry(*request_id).or_default();
                r.probability = ask.proof_probability;
                r.ends_at = *ends_at;
            }
            MarketEvent::RequestFulfilled { request_id } => {
                out.entry(*request_id).or_default().started_at.get_or_insert(e.time);
            }
            MarketEvent::RequestFailed { request_id } => {
                out.entry(*request_id).or_default().failed_at.get_or_insert(e.time);
            }
            _ => {}
        }
    }
    out
}

/// Slot-periods proved by `honest` hosts: see the module's rules.
fn proved_slot_periods(run: &Run, tenures: &[Tenure], honest: &BTreeSet<Address>) -> u64 {
    let length = run.period_length();
    let anchors = run.anchors();
    let requests = request_times(&run.events);
    let mut proved = 0u64;
    for t in tenures.iter().filter(|t| honest.contains(&t.host)) {
        let Some(request) = requests.get(&t.request) else { continue };
        let Some(started_at) = request.started_at else { continue };
        let bound = [Some(run.end), t.until.map(|(_, time)| time), request.failed_at].into_iter().flatten().min();
        let bound = bound.unwrap_or(run.end);
        let first = (started_at / length).max(t.filled_at / length).saturating_add(1);
        let last = rules::last_period(request.ends_at, length);
        for q in first..=last {
            let closes = q.saturating_add(1).saturating_mul(length).saturating_add(run.proof_timeout);
            if closes > bound {
                break;
            }
            if !rules::owes_proof(q, started_at, t.filled_at, request.ends_at, length) {
                continue;
            }
            let Some(seed) = run.seed(&anchors, q, false) else { continue };
            if rules::selected(seed, t.slot, q, request.probability) {
                proved = proved.saturating_add(1);
            }
        }
    }
    proved
}

/// The economics of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Economics {
    /// Hosts that held a slot and were never slashed.
    pub(super) honest_hosts: usize,
    /// Hosts slashed at least once.
    pub(super) slashed_hosts: usize,
    /// Gas of honest hosts' proofs and defences and of accusations and settlements against them.
    pub(super) honest_gas: u64,
    /// Slot-periods proved by honest hosts.
    pub(super) proved: u64,
    /// Gas of accusations and settlements against slashed hosts.
    pub(super) enforcement_gas: u64,
    /// Gas of each successful `submitProof` and `defendProof`, every host's.
    pub(super) proof_gas: Vec<u64>,
    /// Gas of every `anchorPeriods`, whoever sent it.
    pub(super) anchor_gas: u64,
    /// `anchorPeriods` transactions.
    pub(super) anchor_txs: u64,
    /// Periods from the first anchoring transaction's to the last block's, both included.
    pub(super) periods: u64,
    /// `ProofAccused` events.
    pub(super) accused: u64,
    /// `AccusationDismissed` events.
    pub(super) defended: u64,
    /// `ProofMissed` events.
    pub(super) settled: u64,
}

impl Economics {
    /// On-chain gas per honest proven slot-period (`None` when nothing was proved).
    pub(super) fn gas_per_slot_period(&self) -> Option<f64> {
        ratio(self.honest_gas, self.proved)
    }

    /// Anchoring gas per period (`None` before any anchoring).
    pub(super) fn anchor_gas_per_period(&self) -> Option<f64> {
        ratio(self.anchor_gas, self.periods)
    }

    /// Anchoring transactions per period (`None` before any anchoring).
    pub(super) fn anchors_per_period(&self) -> Option<f64> {
        ratio(self.anchor_txs, self.periods)
    }

    /// The median gas of a proof or a defence on chain (the upper one of an even count).
    pub(super) fn median_proof_gas(&self) -> Option<u64> {
        let mut gas = self.proof_gas.clone();
        gas.sort_unstable();
        gas.get(gas.len() / 2).copied()
    }
}

/// `total / count`, or `None` for a zero count.
fn ratio(total: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| total as f64 / count as f64)
}

/// Computes the economics of a run.
pub(super) fn economics(run: &Run) -> Economics {
    let tenures = tenures(&run.events);
    let (hosts, slashed) = hosts_and_slashed(&run.events, &tenures);
    let honest: BTreeSet<Address> = hosts.difference(&slashed).copied().collect();
    let mut e = Economics {
        honest_hosts: honest.len(),
        slashed_hosts: slashed.len(),
        proved: proved_slot_periods(run, &tenures, &honest),
        ..Economics::default()
    };
    for tx in &run.txs {
        match tx.call {
            Call::SubmitProof { .. } | Call::DefendProof { .. } if tx.ok => e.proof_gas.push(tx.gas),
            Call::AnchorPeriods => {
                e.anchor_gas = e.anchor_gas.saturating_add(tx.gas);
                e.anchor_txs = e.anchor_txs.saturating_add(1);
            }
            Call::SubmitProof { .. }
            | Call::DefendProof { .. }
            | Call::Accuse { .. }
            | Call::Settle { .. }
            | Call::Other => {}
        }
        let Some(host) = accused(tx, &run.events, &tenures) else { continue };
        if honest.contains(&host) {
            e.honest_gas = e.honest_gas.saturating_add(tx.gas);
        } else if slashed.contains(&host) && matches!(tx.call, Call::Accuse { .. } | Call::Settle { .. }) {
            e.enforcement_gas = e.enforcement_gas.saturating_add(tx.gas);
        }
    }
    let length = run.period_length();
    if let Some(first) = run.txs.iter().find(|tx| tx.call == Call::AnchorPeriods) {
        e.periods = (run.end / length).saturating_sub(first.time / length).saturating_add(1);
    }
    for l in &run.events {
        match l.event {
            MarketEvent::ProofAccused { .. } => e.accused = e.accused.saturating_add(1),
            MarketEvent::AccusationDismissed { .. } => e.defended = e.defended.saturating_add(1),
            MarketEvent::ProofMissed { .. } => e.settled = e.settled.saturating_add(1),
            _ => {}
        }
    }
    e
}

/// Dollars per TiB-month of proof gas, at `gas` per slot-period: 1,024 slots of 1 GiB per TiB,
/// each proven once a day for 30.44 days, at 0.01 gwei and $3,000 per ether.
pub(super) fn usd_per_tib_month(gas: f64) -> f64 {
    gas * SLOTS_PER_TIB * DAYS_PER_MONTH * ETH_PER_GAS * USD_PER_ETH
}

/// Where the gas of one proof verified on chain comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnChainProof {
    /// The median of this run's `submitProof` and `defendProof` transactions.
    Median { gas: u64, txs: usize },
    /// No proof went on chain: the least gas with which `Groth16Verifier.verifyProof` accepts the proof
    /// of this run's first `fillSlot` and its public inputs rebuilt from the chain (`verified`:
    /// whether the verifier accepted them).
    Estimated { gas: u64, verified: bool },
    /// Neither could be had (why).
    Unknown(String),
}

impl OnChainProof {
    fn gas(&self) -> Option<u64> {
        match self {
            OnChainProof::Median { gas, .. } | OnChainProof::Estimated { gas, .. } => Some(*gas),
            OnChainProof::Unknown(_) => None,
        }
    }
}

/// Gas as printed: whole units, digits grouped.
fn gas_text(gas: f64) -> String {
    thousands(gas.round() as u64)
}

fn usd_text(gas: Option<f64>) -> String {
    gas.map_or_else(|| "n/a".to_owned(), |g| format!("${:.2}", usd_per_tib_month(g)))
}

/// The summary's economics lines, each starting with its name.
pub(super) fn lines(e: &Economics, on_chain: &OnChainProof) -> Vec<String> {
    let per_slot_period = e.gas_per_slot_period();
    let on_chain_gas = on_chain.gas().map(|g| g as f64);
    let first = match per_slot_period {
        Some(g) => format!(
            "on-chain gas per honest proven slot-period: {} ({} gas over {} slot-periods proved by {} hosts never slashed)",
            gas_text(g),
            thousands(e.honest_gas),
            thousands(e.proved),
            e.honest_hosts
        ),
        None => format!(
            "on-chain gas per honest proven slot-period: n/a (no slot-period proved by a host never slashed; {} gas)",
            thousands(e.honest_gas)
        ),
    };
    let second = match on_chain {
        OnChainProof::Median { gas, txs } => format!(
            "on-chain gas per honest proven slot-period with proofs on chain: {} (median of this run's {txs} successful submitProof and defendProof transactions)",
            thousands(*gas)
        ),
        OnChainProof::Estimated { gas, verified } => format!(
            "on-chain gas per honest proven slot-period with proofs on chain: {} (no proof went on chain: the least gas with which Groth16Verifier.verifyProof accepts the first fillSlot's proof{})",
            thousands(*gas),
            if *verified { ", which verified" } else { ", which did NOT verify against the inputs rebuilt here" }
        ),
        OnChainProof::Unknown(why) => {
            format!("on-chain gas per honest proven slot-period with proofs on chain: n/a ({why})")
        }
    };
    let anchoring = match (e.anchor_gas_per_period(), e.anchors_per_period()) {
        (Some(gas), Some(txs)) => format!(
            "anchoring gas per period: {} ({} anchoring transactions over {} periods, {txs:.2} per period)",
            gas_text(gas),
            e.anchor_txs,
            e.periods
        ),
        _ => "anchoring gas per period: n/a (no anchoring transaction)".to_owned(),
    };
    vec![
        first,
        second,
        format!(
            "enforcement gas (accusations and settlements against slashed hosts, paid by the slashing): {} ({} slashed hosts)",
            thousands(e.enforcement_gas),
            e.slashed_hosts
        ),
        anchoring,
        format!("accusations: made {}, defended {}, settled {}", e.accused, e.defended, e.settled),
        format!("proof gas per TiB-month: {} ({ASSUMPTIONS})", usd_text(per_slot_period)),
        format!("proof gas per TiB-month with proofs on chain: {} ({ASSUMPTIONS})", usd_text(on_chain_gas)),
    ]
}

/// The public inputs of a fill proof sent at `time` by `filler` for slot `index` of a request
/// whose dataset root is `root`: [root, keccak256(abi.encode(challenge, filler)) mod r, index],
/// the challenge from the seed of the period of `time` (a late anchor serves fills too).
fn fill_inputs(run: &Run, time: u64, slot: B256, filler: Address, root: B256, index: u64) -> Option<[U256; 3]> {
    let period = time / run.period_length();
    let seed = run.seed(&run.anchors(), period, true)?;
    let challenge = rules::challenge(seed, slot, period);
    let mut words = [0u8; 64];
    words[..32].copy_from_slice(challenge.as_slice());
    words[44..].copy_from_slice(filler.as_slice());
    let entropy = U256::from_be_bytes(keccak256(words).0) % FIELD_R;
    Some([U256::from_be_bytes(root.0), entropy, U256::from(index)])
}

/// The gas of one proof on chain: the median of the run's proofs and defences if it has any;
/// otherwise the least gas with which `Groth16Verifier.verifyProof` (the verifier is
/// `Marketplace.verifier()`) with the proof of the run's first successful `fillSlot` (a fill
/// carries a whole proof) and its inputs rebuilt from the chain answers `true`. It covers the
/// verification and the transaction's base cost, not the marketplace's bookkeeping around it,
/// so it is a little below what a `submitProof` would use.
pub(super) async fn on_chain_proof(
    e: &Economics,
    provider: &DynProvider,
    marketplace: Address,
    record: &ChainRecord,
    run: &Run,
) -> OnChainProof {
    if let Some(gas) = e.median_proof_gas() {
        return OnChainProof::Median { gas, txs: e.proof_gas.len() };
    }
    match verify_gas_estimate(provider, marketplace, record, run).await {
        Ok(Some((gas, verified))) => OnChainProof::Estimated { gas, verified },
        Ok(None) => OnChainProof::Unknown("no proof and no fill on chain to measure".to_owned()),
        Err(err) => OnChainProof::Unknown(format!("the verifier's gas not estimated: {err}")),
    }
}

/// The gas of verifying the first successful fill's proof (the least gas limit with which the
/// verifier still answers `true`, within 256), and whether it verified.
pub(super) async fn verify_gas_estimate(
    provider: &DynProvider,
    marketplace: Address,
    record: &ChainRecord,
    run: &Run,
) -> anyhow::Result<Option<(u64, bool)>> {
    let fill = record.txs.iter().filter(|tx| tx.ok && tx.to == Some(marketplace)).find_map(|tx: &Mined| {
        let call = Marketplace::fillSlotCall::abi_decode(&tx.input).ok()?;
        Some((tx, call))
    });
    let Some((tx, call)) = fill else { return Ok(None) };
    let market = Marketplace::new(marketplace, provider.clone());
    let verifier = market.verifier().call().await?;
    let request = market.getRequest(call.requestId).call().await?;
    let slot = slot_id(call.requestId, call.slotIndex);
    let inputs = fill_inputs(run, tx.time, slot, tx.from, request.content.merkleRoot, call.slotIndex)
        .ok_or_else(|| anyhow::anyhow!("the fill's period has no known seed"))?;
    let verifier = Groth16Verifier::new(verifier, provider.clone());
    let verify = verifier.verifyProof(call.proof, inputs.to_vec());
    let verified = verify.call().await?;
    if !verified {
        return Ok(Some((verify.estimate_gas().await?, false)));
    }
    // Not eth_estimateGas: the verifier answers `false` rather than reverting when a pairing
    // runs out of gas, so the estimate is the gas of a failed check (~58k here). The least gas
    // with which the call still answers `true` is what a verification costs.
    let (mut failing, mut passing) = (21_000u64, 3_000_000u64);
    if !verify.clone().gas(passing).call().await.unwrap_or(false) {
        anyhow::bail!("the proof does not verify even with {passing} gas");
    }
    while passing - failing > 256 {
        let mid = failing + (passing - failing) / 2;
        if verify.clone().gas(mid).call().await.unwrap_or(false) {
            passing = mid;
        } else {
            failing = mid;
        }
    }
    Ok(Some((passing, true)))
}

#[cfg(test)]
mod tests {
    use contracts::events::Ask;

    use super::*;

    const LENGTH: u64 = 10;
    /// The gas the tests give a reverted transaction.
    const REVERTED: u64 = 23_456;
    const TIMEOUT: u64 = 5;

    fn request() -> B256 {
        B256::repeat_byte(0xaa)
    }

    fn host(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn validator() -> Address {
        Address::repeat_byte(0xee)
    }

    fn at(block: u64, tx: u64, log: u64) -> Position {
        Position { block, tx, log }
    }

    /// Builds a run block by block: one block a second from time 0, block n at time n.
    #[derive(Default)]
    struct Builder {
        run: Run,
    }

    impl Builder {
        fn new() -> Self {
            let mut run = Run { period_length: LENGTH, proof_timeout: TIMEOUT, ..Run::default() };
            for n in 0..=400u64 {
                run.hashes.insert(n, keccak256(n.to_be_bytes()));
            }
            run.end = 400;
            Builder { run }
        }

        fn event(&mut self, block: u64, tx: u64, log: u64, event: MarketEvent) -> &mut Self {
            self.run.events.push(Logged { at: at(block, tx, log), time: block, event });
            self
        }

        fn tx(&mut self, block: u64, tx: u64, from: Address, call: Call, gas: u64) -> &mut Self {
            self.run.txs.push(Tx { at: at(block, tx, 0), time: block, from, call, gas, ok: gas != REVERTED });
            self
        }

        /// Anchors periods `from..to` in advance (in block 10q - 5, during the period before).
        fn anchor(&mut self, from: u64, to: u64) -> &mut Self {
            for q in from..to {
                let block = (q * LENGTH).saturating_sub(5);
                self.tx(block, 0, validator(), Call::AnchorPeriods, 30_000);
                self.event(block, 0, 0, MarketEvent::PeriodAnchored { period: q, block_number: block, late: false });
            }
            self
        }

        /// A request of `slots` slots with proof probability 1, requested at 1, ending at 1000,
        /// slot i filled by host i + 1 at block 21 (period 2), started then.
        fn request(&mut self, slots: u64) -> &mut Self {
            let ask = Ask {
                slots: slots as u16,
                slot_size: 1 << 30,
                duration: 1000,
                proof_probability: 1,
                max_slot_loss: 1,
                repair_threshold: 1,
                price_per_byte_per_second: 1,
                collateral_per_byte: 1,
            };
            self.event(
                1,
                0,
                0,
                MarketEvent::StorageRequested {
                    request_id: request(),
                    client: host(0xc1),
                    ask,
                    expires_at: 100,
                    ends_at: 1001,
                },
            );
            for i in 0..slots {
                self.event(
                    21,
                    i,
                    0,
                    MarketEvent::SlotFilled { request_id: request(), slot_index: i, host: host(i as u8 + 1) },
                );
            }
            self.event(21, slots - 1, 1, MarketEvent::RequestFulfilled { request_id: request() })
        }

        fn done(&mut self) -> Run {
            self.run.txs.sort_by_key(|t| t.at);
            self.run.events.sort_by_key(|e| e.at);
            std::mem::take(&mut self.run)
        }
    }

    fn slot(i: u64) -> B256 {
        slot_id(request(), i)
    }

    #[test]
    fn slot_ids_are_the_contracts() {
        // keccak256(abi.encode(bytes32, uint64)): the index right-aligned in the second word
        let mut words = [0u8; 64];
        words[..32].copy_from_slice(request().as_slice());
        words[63] = 3;
        assert_eq!(slot_id(request(), 3), keccak256(words));
        assert_ne!(slot_id(request(), 3), slot_id(request(), 4));
    }

    #[test]
    fn calldata_decodes_to_its_call() {
        let id = B256::repeat_byte(7);
        let proof = [U256::from(1); 8];
        let submit = Marketplace::submitProofCall { id, proof }.abi_encode();
        assert_eq!(decode_call(&submit), Call::SubmitProof { slot: id });
        let defend = Marketplace::defendProofCall { id, period: U256::from(9), proof }.abi_encode();
        assert_eq!(decode_call(&defend), Call::DefendProof { slot: id, period: 9 });
        let accuse = Marketplace::accuseMissingProofCall { id, period: U256::from(4) }.abi_encode();
        assert_eq!(decode_call(&accuse), Call::Accuse { slot: id, period: 4 });
        let settle = Marketplace::settleAccusationCall { id, period: U256::from(4) }.abi_encode();
        assert_eq!(decode_call(&settle), Call::Settle { slot: id, period: 4 });
        assert_eq!(decode_call(&Marketplace::anchorPeriodsCall {}.abi_encode()), Call::AnchorPeriods);
        assert_eq!(decode_call(&Marketplace::claimEthCall {}.abi_encode()), Call::Other);
        // a period beyond u64, truncated calldata, no selector at all
        let far = Marketplace::accuseMissingProofCall { id, period: U256::MAX }.abi_encode();
        assert_eq!(decode_call(&far), Call::Other);
        assert_eq!(decode_call(submit.get(..40).unwrap_or_default()), Call::Other);
        assert_eq!(decode_call(&[1, 2]), Call::Other);
    }

    #[test]
    fn honest_and_slashed_hosts_are_told_apart() {
        // slots 0 and 1: host 1 proves on chain, host 2 is accused of period 3 and settled
        let run = Builder::new()
            .anchor(1, 40)
            .request(2)
            .tx(31, 0, host(1), Call::SubmitProof { slot: slot(0) }, 250_000)
            .tx(41, 1, validator(), Call::Accuse { slot: slot(1), period: 3 }, 80_000)
            .event(
                41,
                1,
                0,
                MarketEvent::ProofAccused { slot_id: slot(1), period: 3, accuser: validator(), deadline: 46 },
            )
            .tx(47, 1, validator(), Call::Settle { slot: slot(1), period: 3 }, 60_000)
            .event(
                47,
                1,
                0,
                MarketEvent::ProofMissed { slot_id: slot(1), period: 3, missed_proofs: 1, validator: validator() },
            )
            .done();
        let e = economics(&run);
        assert_eq!((e.honest_hosts, e.slashed_hosts), (1, 1));
        assert_eq!(e.honest_gas, 250_000, "host 1's proof only");
        assert_eq!(e.enforcement_gas, 140_000, "the accusation and the settlement against host 2");
        assert_eq!((e.accused, e.defended, e.settled), (1, 0, 1));
        assert_eq!(e.proof_gas, vec![250_000]);
    }

    #[test]
    fn accusations_against_honest_hosts_are_their_proving_cost() {
        // host 1 is accused of period 3, defends; host 2 is accused of period 4, defends too
        let run = Builder::new()
            .anchor(1, 40)
            .request(2)
            .tx(41, 0, validator(), Call::Accuse { slot: slot(0), period: 3 }, 80_000)
            .event(
                41,
                0,
                0,
                MarketEvent::ProofAccused { slot_id: slot(0), period: 3, accuser: validator(), deadline: 46 },
            )
            .tx(43, 0, host(1), Call::DefendProof { slot: slot(0), period: 3 }, 270_000)
            .event(43, 0, 0, MarketEvent::AccusationDismissed { slot_id: slot(0), period: 3 })
            .tx(51, 0, validator(), Call::Accuse { slot: slot(1), period: 4 }, 80_000)
            .event(
                51,
                0,
                0,
                MarketEvent::ProofAccused { slot_id: slot(1), period: 4, accuser: validator(), deadline: 56 },
            )
            .tx(53, 0, host(2), Call::DefendProof { slot: slot(1), period: 4 }, 270_000)
            .event(53, 0, 0, MarketEvent::AccusationDismissed { slot_id: slot(1), period: 4 })
            // a defence too late, reverted: its gas is spent but it measures no proof
            .tx(55, 0, host(2), Call::DefendProof { slot: slot(1), period: 4 }, REVERTED)
            .done();
        let e = economics(&run);
        assert_eq!((e.honest_hosts, e.slashed_hosts), (2, 0));
        assert_eq!(e.honest_gas, 2 * (80_000 + 270_000) + REVERTED);
        assert_eq!(e.proof_gas, vec![270_000, 270_000]);
        assert_eq!(e.enforcement_gas, 0);
        assert_eq!((e.accused, e.defended, e.settled), (2, 2, 0));
        assert_eq!(e.median_proof_gas(), Some(270_000));
    }

    #[test]
    fn proved_slot_periods_follow_the_rule() {
        // filled and started at 21 (period 2); periods 3.. owe proofs; the run ends at 400:
        // period q's window closes at 10(q + 1) + 5 <= 400, so q <= 38: periods 3..=38 (36)
        let run = Builder::new().anchor(1, 45).request(1).done();
        let e = economics(&run);
        assert_eq!(e.proved, 36);
        assert_eq!(e.gas_per_slot_period(), Some(0.0));

        // a period anchored late owes nothing; nor does one never anchored
        let mut late = Builder::new();
        late.anchor(1, 45).request(1);
        for l in &mut late.run.events {
            if let MarketEvent::PeriodAnchored { period: 10, late, .. } = &mut l.event {
                *late = true;
            }
        }
        late.run.events.retain(|l| !matches!(l.event, MarketEvent::PeriodAnchored { period: 11, .. }));
        assert_eq!(economics(&late.done()).proved, 34);

        // a slashed host's slot-periods do not count: two slots, the second slashed
        let run = Builder::new()
            .anchor(1, 45)
            .request(2)
            .event(
                47,
                0,
                0,
                MarketEvent::ProofMissed { slot_id: slot(1), period: 3, missed_proofs: 1, validator: validator() },
            )
            .done();
        assert_eq!(economics(&run).proved, 36);
    }

    #[test]
    fn a_repairer_of_a_slashed_hosts_slot_is_honest_from_its_fill() {
        // host 2 loses slot 1 at block 100 (after a miss); host 9 refills it at 121 (period 12):
        // it owes periods 13..=38 (26), host 1 periods 3..=38 (36)
        let run = Builder::new()
            .anchor(1, 45)
            .request(2)
            .tx(47, 0, validator(), Call::Settle { slot: slot(1), period: 3 }, 60_000)
            .event(
                47,
                0,
                0,
                MarketEvent::ProofMissed { slot_id: slot(1), period: 3, missed_proofs: 3, validator: validator() },
            )
            .event(47, 0, 1, MarketEvent::SlotLost { request_id: request(), slot_index: 1, host: host(2) })
            .event(121, 0, 0, MarketEvent::SlotRepaired { request_id: request(), slot_index: 1, host: host(9) })
            // an accusation against the repairer, dismissed
            .tx(141, 0, validator(), Call::Accuse { slot: slot(1), period: 13 }, 80_000)
            .event(
                141,
                0,
                0,
                MarketEvent::ProofAccused { slot_id: slot(1), period: 13, accuser: validator(), deadline: 146 },
            )
            .done();
        let e = economics(&run);
        assert_eq!((e.honest_hosts, e.slashed_hosts), (2, 1));
        assert_eq!(e.proved, 36 + 26);
        assert_eq!(e.honest_gas, 80_000);
        assert_eq!(e.enforcement_gas, 60_000, "the settlement in the loss's transaction is against host 2");
    }

    #[test]
    fn nothing_proved_prints_not_applicable() {
        let run = Builder::new().done();
        let e = economics(&run);
        assert_eq!(e.proved, 0);
        assert_eq!(e.gas_per_slot_period(), None);
        assert_eq!(e.anchor_gas_per_period(), None);
        assert_eq!(e.median_proof_gas(), None);
        let text = lines(&e, &OnChainProof::Unknown("nothing".into()));
        assert!(text[0].starts_with("on-chain gas per honest proven slot-period: n/a"), "{text:?}");
        assert!(text[1].starts_with("on-chain gas per honest proven slot-period with proofs on chain: n/a"));
        assert!(text[3].starts_with("anchoring gas per period: n/a"), "{text:?}");
        assert!(text[5].starts_with("proof gas per TiB-month: n/a"), "{text:?}");
    }

    #[test]
    fn anchoring_counts_transactions_per_period() {
        // anchored in periods 0..=38 by one transaction each, plus 6 extra; the run ends in
        // period 40 and the first anchoring was in block 5 (period 0): 41 periods
        let mut b = Builder::new();
        b.anchor(1, 40);
        for n in 0..6 {
            b.tx(300 + n, 1, host(1), Call::AnchorPeriods, 25_000);
        }
        let e = economics(&b.done());
        assert_eq!((e.anchor_txs, e.periods), (45, 41));
        assert_eq!(e.anchor_gas, 39 * 30_000 + 6 * 25_000);
        let per = e.anchors_per_period().unwrap_or(0.0);
        assert!((per - 45.0 / 41.0).abs() < 1e-9, "{per}");
        let line = &lines(&e, &OnChainProof::Median { gas: 1, txs: 1 })[3];
        assert_eq!(
            line,
            "anchoring gas per period: 32,195 (45 anchoring transactions over 41 periods, 1.10 per period)"
        );
    }

    #[test]
    fn dollars_per_tib_month() {
        let by_hand = |gas: f64| gas * 1024.0 * 30.44 * 0.01e-9 * 3000.0;
        for gas in [0.0, 5_000.0, 252_283.0] {
            assert!((usd_per_tib_month(gas) - by_hand(gas)).abs() < 1e-9, "{gas}");
        }
        let on_chain = usd_per_tib_month(252_283.0);
        assert!((230.0..240.0).contains(&on_chain), "{on_chain}");
        let small = usd_per_tib_month(5_000.0);
        assert!((4.6..4.7).contains(&small), "{small}");
        assert!((usd_per_tib_month(10_000.0) - 2.0 * small).abs() < 1e-9, "proportional to gas");

        let e = Economics { honest_gas: 10_000, proved: 2, ..Economics::default() };
        let text = lines(&e, &OnChainProof::Median { gas: 252_283, txs: 3 });
        assert_eq!(
            text[0],
            "on-chain gas per honest proven slot-period: 5,000 (10,000 gas over 2 slot-periods proved by 0 hosts never slashed)"
        );
        assert_eq!(text[5], format!("proof gas per TiB-month: ${small:.2} ({ASSUMPTIONS})"));
        assert_eq!(text[6], format!("proof gas per TiB-month with proofs on chain: ${on_chain:.2} ({ASSUMPTIONS})"));
        assert!(text[1].starts_with("on-chain gas per honest proven slot-period with proofs on chain: 252,283 "));
    }

    #[test]
    fn every_line_starts_with_its_name() {
        let text = lines(&Economics::default(), &OnChainProof::Estimated { gas: 230_000, verified: true });
        let names = [
            "on-chain gas per honest proven slot-period: ",
            "on-chain gas per honest proven slot-period with proofs on chain: ",
            "enforcement gas (accusations and settlements against slashed hosts, paid by the slashing): ",
            "anchoring gas per period: ",
            "accusations: made 0, defended 0, settled 0",
            "proof gas per TiB-month: ",
            "proof gas per TiB-month with proofs on chain: $",
        ];
        assert_eq!(text.len(), names.len());
        for (line, name) in text.iter().zip(names) {
            assert!(line.starts_with(name), "{line}");
        }
    }

    #[test]
    fn the_chain_record_becomes_a_run() {
        use alloy::rpc::types::Log;
        use alloy::sol_types::SolEvent;

        let market = Address::repeat_byte(0x4d);
        let token = Address::repeat_byte(0x70);
        let log = |address: Address, data: alloy::primitives::LogData| Log {
            inner: alloy::primitives::Log { address, data },
            ..Log::default()
        };
        let filled = Marketplace::SlotFilled { requestId: request(), slotIndex: U256::from(1), host: host(2) };
        let transfer = contracts::TestToken::Transfer { from: host(2), to: market, value: U256::from(5) };
        let proof = [U256::from(1); 8];
        let mined = |index: u64, to: Address, input: Vec<u8>, logs: Vec<Log>| Mined {
            block: 7,
            index,
            time: 70,
            from: host(2),
            to: Some(to),
            input: input.into(),
            gas: 100 + index,
            ok: true,
            logs,
        };
        let record = ChainRecord {
            txs: vec![
                mined(
                    0,
                    market,
                    Marketplace::fillSlotCall { requestId: request(), slotIndex: 1, proof }.abi_encode(),
                    vec![log(token, transfer.encode_log_data()), log(market, filled.encode_log_data())],
                ),
                // the marketplace's calldata sent to another contract is not a marketplace call
                mined(1, token, Marketplace::submitProofCall { id: slot(1), proof }.abi_encode(), vec![]),
                mined(2, market, Marketplace::submitProofCall { id: slot(1), proof }.abi_encode(), vec![]),
            ],
            hashes: BTreeMap::from([(7, B256::repeat_byte(7))]),
            end: 70,
        };
        let run = Run::from_chain(&record, market, LENGTH, TIMEOUT);
        let calls: Vec<(Position, Call, u64)> = run.txs.iter().map(|t| (t.at, t.call, t.gas)).collect();
        assert_eq!(
            calls,
            vec![
                (at(7, 0, 0), Call::Other, 100),
                (at(7, 1, 0), Call::Other, 101),
                (at(7, 2, 0), Call::SubmitProof { slot: slot(1) }, 102)
            ]
        );
        let expected = MarketEvent::SlotFilled { request_id: request(), slot_index: 1, host: host(2) };
        assert_eq!(run.events, vec![Logged { at: at(7, 0, 1), time: 70, event: expected }], "the token's log left out");
        assert_eq!((run.period_length, run.proof_timeout, run.end), (LENGTH, TIMEOUT, 70));
        let e = economics(&run);
        assert_eq!((e.honest_hosts, e.honest_gas, e.proof_gas.clone()), (1, 102, vec![102]));
    }

    #[test]
    fn fill_inputs_bind_the_filler() {
        let run = Builder::new().anchor(1, 45).done();
        let root = B256::repeat_byte(3);
        let a = fill_inputs(&run, 21, slot(0), host(1), root, 0);
        let b = fill_inputs(&run, 21, slot(0), host(2), root, 0);
        let (Some(a), Some(b)) = (a, b) else { panic!("period 2 is anchored") };
        assert_eq!(a[0], U256::from_be_bytes(root.0));
        assert!(a[1] < FIELD_R);
        assert_ne!(a[1], b[1], "the entropy is bound to the filler");
        assert_eq!(a[2], U256::ZERO);
        assert_eq!(fill_inputs(&run, 1000, slot(0), host(1), root, 0), None, "period 100 never anchored");
    }
}
