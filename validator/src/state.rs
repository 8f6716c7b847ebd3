//! What the validator knows, rebuilt from the marketplace's logs and kept in one JSON file (written
//! to a temporary file, synced, renamed), with the block it has read up to. Only slots of this
//! validator's group are kept; proofs are kept for the last few periods only. The accusations it
//! made and has not yet settled are kept too, so that a restarted validator settles them (and
//! gets its bonds back).
//!
//! Logs are data from the chain: a log whose values do not fit (a slot index or a period beyond
//! `u64`, a slot index beyond its request's slots, no block time where one is needed) is ignored
//! ([`Applied::Ignored`]), never wrapped, clamped or unwrapped. A log's time is its block's
//! timestamp: the caller fills in the ones the endpoint left out ([`blocks_without_time`],
//! [`fill_block_times`]); the head's time is never used instead, or a fill read while catching up
//! would look recent and its missed proofs would go unowed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::Log;
use contracts::MarketEvent;
use contracts::events::EventError;
use serde::{Deserialize, Serialize};

use crate::challenge::{ProofTimes, in_group};

/// Periods of proofs remembered.
const PROOF_PERIODS_KEPT: u64 = 4;

/// A request the validator follows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestWatch {
    /// One proof per this many periods on average.
    pub probability: u32,
    /// Its number of slots: a fill of an index at or beyond it is ignored (state files written
    /// before it was kept read [`u16::MAX`]).
    #[serde(default = "unknown_slots")]
    pub slots: u16,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Collateral per byte.
    pub collateral_per_byte: u128,
    /// When it ends (unix seconds).
    pub ends_at: u64,
    /// When its last slot was filled, once it has started.
    pub started_at: Option<u64>,
    /// Its dataset root (a proof's public input), once read from the chain.
    #[serde(default)]
    pub root: Option<B256>,
}

/// A filled slot of this validator's group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotWatch {
    /// Its request.
    pub request_id: B256,
    /// Its index.
    pub index: u64,
    /// When its current host filled it (unix seconds).
    pub filled_at: u64,
    /// Its current host's wallet (who is asked for a missing proof).
    #[serde(default)]
    pub host: Address,
}

/// An accusation of a missing proof this validator made, waiting for its response window to end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenAccusation {
    /// The accused slot.
    pub slot_id: B256,
    /// Its request.
    pub request_id: B256,
    /// The period whose proof is missing.
    pub period: u64,
    /// The last second the host may defend; it can be settled after it (unix seconds).
    pub deadline: u64,
    /// The reward it earns once settled as a missed proof (token base units).
    #[serde(default)]
    pub reward: u128,
}

/// Counters for operators.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Missed proofs this validator got on chain: its accusations settled undefended.
    pub marks: u64,
    /// Tokens it earned for them (decimal).
    pub rewards: String,
    /// Accusations that failed (another validator was first, or the window closed).
    pub marks_refused: u64,
    /// Accusations it made (each with a bond).
    #[serde(default)]
    pub accusations: u64,
    /// Of those, dismissed because the host defended with its proof.
    #[serde(default)]
    pub dismissed: u64,
}

/// The validator's knowledge.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Next block to read.
    pub cursor: u64,
    /// Requests that have not ended.
    pub requests: BTreeMap<B256, RequestWatch>,
    /// Filled slots of this group.
    pub slots: BTreeMap<B256, SlotWatch>,
    /// Slots proven, per recent period.
    pub proven: BTreeMap<u64, BTreeSet<B256>>,
    /// The last period whose missed proofs were handled.
    pub checked_period: Option<u64>,
    /// This validator's accusations not yet settled.
    #[serde(default)]
    pub accusations: Vec<OpenAccusation>,
    /// Counters.
    pub stats: Stats,
}

fn unknown_slots() -> u16 {
    u16::MAX
}

/// What [`State::apply`] did with a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Taken into the state, or of no concern to it.
    Taken,
    /// Ignored because its values do not fit (why); the state is unchanged.
    Ignored(&'static str),
}

/// The numbers of the blocks whose logs carry no block timestamp (endpoints need not give it):
/// the caller reads these blocks' timestamps, once each, for [`fill_block_times`].
pub fn blocks_without_time(logs: &[Log]) -> BTreeSet<u64> {
    logs.iter().filter(|l| l.block_timestamp.is_none()).filter_map(|l| l.block_number).collect()
}

/// Gives each log without a block timestamp its block's, from `times` (block number → unix
/// seconds). Returns how many logs are still without one (their block is not in `times`, or they
/// name no block); [`State::apply`] ignores those of them that need a time.
pub fn fill_block_times(logs: &mut [Log], times: &BTreeMap<u64, u64>) -> usize {
    let mut missing = 0;
    for log in logs.iter_mut().filter(|l| l.block_timestamp.is_none()) {
        log.block_timestamp = log.block_number.and_then(|n| times.get(&n).copied());
        if log.block_timestamp.is_none() {
            missing += 1;
        }
    }
    missing
}

/// The accusation `log` records if `accuser` made it: its slot, period and deadline. `None` for
/// any other log, another accuser's accusation, or a period beyond `u64` (no accusation of such a
/// period can be settled).
pub fn accusation_by(log: &Log, accuser: Address) -> Option<(B256, u64, u64)> {
    match MarketEvent::decode(log)? {
        MarketEvent::ProofAccused { slot_id, period, accuser: by, deadline } if by == accuser => {
            Some((slot_id, period, deadline))
        }
        _ => None,
    }
}

/// The marketplace's slot id of a request's slot.
pub fn slot_id(request_id: B256, index: u64) -> B256 {
    let mut words = [0u8; 64];
    words[..32].copy_from_slice(request_id.as_slice());
    words[32..].copy_from_slice(&U256::from(index).to_be_bytes::<32>());
    keccak256(words)
}

impl State {
    /// Loads the state file, or starts from `start_block`.
    pub fn load(path: &Path, start_block: u64) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self { cursor: start_block, ..Self::default() }),
            Err(e) => Err(e),
        }
    }

    /// Writes the state file durably and atomically: a temporary file, synced, renamed over the
    /// file, and the directory synced so that the rename survives a crash.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp: PathBuf = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    }

    /// Applies one marketplace log (in chain order). `groups`/`group` select the slots kept. The
    /// log's time is its block's timestamp, which it must carry (see [`fill_block_times`]): a
    /// log that needs it and has none is ignored, as is one whose values do not fit.
    pub fn apply(&mut self, log: &Log, groups: u64, group: u64) -> Applied {
        const NO_TIME: Applied = Applied::Ignored("no block timestamp");
        let event = match MarketEvent::try_decode(log) {
            Ok(event) => event,
            Err(EventError::Foreign) => return Applied::Taken,
            Err(EventError::Undecodable) => return Applied::Ignored("undecodable"),
            Err(EventError::BeyondU64(why)) => return Applied::Ignored(why),
        };
        let time = log.block_timestamp;
        match event {
            MarketEvent::StorageRequested { request_id, ask, ends_at, .. } => {
                self.requests.insert(
                    request_id,
                    RequestWatch {
                        probability: ask.proof_probability,
                        slots: ask.slots,
                        slot_size: ask.slot_size,
                        collateral_per_byte: ask.collateral_per_byte,
                        ends_at,
                        started_at: None,
                        root: None,
                    },
                );
            }
            MarketEvent::RequestFulfilled { request_id } => {
                let Some(time) = time else { return NO_TIME };
                if let Some(r) = self.requests.get_mut(&request_id) {
                    r.started_at = Some(time);
                }
            }
            MarketEvent::SlotFilled { request_id, slot_index: index, host }
            | MarketEvent::SlotRepaired { request_id, slot_index: index, host } => {
                if self.requests.get(&request_id).is_some_and(|r| index >= u64::from(r.slots)) {
                    return Applied::Ignored("slot index beyond the request's slots");
                }
                let Some(time) = time else { return NO_TIME };
                let id = slot_id(request_id, index);
                if in_group(id, groups, group) {
                    self.slots.insert(id, SlotWatch { request_id, index, filled_at: time, host });
                }
            }
            MarketEvent::SlotLost { request_id, slot_index, .. } => {
                self.slots.remove(&slot_id(request_id, slot_index));
            }
            MarketEvent::ProofSubmitted { slot_id, period } => {
                if self.slots.contains_key(&slot_id) {
                    self.proven.entry(period).or_default().insert(slot_id);
                }
            }
            MarketEvent::AccusationDismissed { slot_id, period } => {
                let before = self.accusations.len();
                self.accusations.retain(|a| !(a.slot_id == slot_id && a.period == period));
                if self.accusations.len() < before {
                    self.stats.dismissed = self.stats.dismissed.saturating_add(1);
                }
            }
            MarketEvent::RequestFailed { request_id }
            | MarketEvent::RequestFinished { request_id }
            | MarketEvent::RequestCancelled { request_id } => self.forget_request(request_id),
            MarketEvent::SlotReserved { .. }
            | MarketEvent::ProofMissed { .. }
            | MarketEvent::ProofAccused { .. }
            | MarketEvent::RepairOpened { .. }
            | MarketEvent::SlotFreed { .. }
            | MarketEvent::FundsWithdrawn { .. }
            | MarketEvent::PeriodAnchored { .. } => {}
        }
        Applied::Taken
    }

    /// Drops a request and its slots.
    pub fn forget_request(&mut self, request_id: B256) {
        self.requests.remove(&request_id);
        self.slots.retain(|_, s| s.request_id != request_id);
    }

    /// Drops requests that have settled by `now` (no proof of theirs can be accused any more:
    /// see [`crate::challenge::settles_at`]) and proofs older than a few periods before `period`.
    pub fn prune(&mut self, now: u64, period: u64, params: &ProofTimes) {
        let ended: Vec<B256> = self
            .requests
            .iter()
            .filter(|(_, r)| crate::challenge::settles_at(r.ends_at, params) <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.forget_request(id);
        }
        self.proven.retain(|p, _| p.saturating_add(PROOF_PERIODS_KEPT) >= period);
    }
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolEvent;
    use contracts::Marketplace;

    use super::*;

    /// A marketplace log of `event` mined in block `block`, as `eth_getLogs` gives it: endpoints
    /// need not fill in the block's timestamp.
    fn log_of<E: SolEvent>(event: &E, block: u64) -> Log {
        Log {
            inner: alloy::primitives::Log { address: alloy::primitives::Address::ZERO, data: event.encode_log_data() },
            block_number: Some(block),
            ..Log::default()
        }
    }

    fn request_of(slots: u16, ends_at: u64) -> Marketplace::StorageRequested {
        let ask = Marketplace::Ask {
            slots,
            slotSize: 4096,
            duration: ends_at,
            proofProbability: 1,
            maxSlotLoss: 0,
            repairThreshold: 1,
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
        };
        Marketplace::StorageRequested {
            requestId: B256::repeat_byte(1),
            client: alloy::primitives::Address::ZERO,
            ask,
            expiresAt: 0,
            endsAt: ends_at,
        }
    }

    #[test]
    fn an_old_fill_read_while_catching_up_owes_its_missed_proof() {
        // 10-second periods. The request started and its slot was filled in block 10 at 25
        // (period 2); the validator reads those logs only when the head is at 1_005 (period 100)
        // and checks period 99, which the slot owed.
        const LENGTH: u64 = 10;
        let r = B256::repeat_byte(1);
        let fill = Marketplace::SlotFilled { requestId: r, slotIndex: U256::ZERO, host: Address::ZERO };
        let mut logs = vec![
            log_of(&request_of(1, 2_000), 9),
            log_of(&Marketplace::RequestFulfilled { requestId: r }, 10),
            log_of(&fill, 10),
        ];
        assert_eq!(blocks_without_time(&logs), BTreeSet::from([9, 10]), "each block read once");
        let times = BTreeMap::from([(9, 23), (10, 25)]);
        assert_eq!(fill_block_times(&mut logs, &times), 0);
        let mut s = State::default();
        for log in &logs {
            assert_eq!(s.apply(log, 1, 0), Applied::Taken);
        }
        let slot = &s.slots[&slot_id(r, 0)];
        let request = &s.requests[&r];
        assert_eq!(slot.filled_at, 25, "filled at its block's time, not the head's");
        let started = request.started_at.expect("started");
        assert_eq!(started, 25);
        assert!(crate::challenge::owes_proof(99, started, slot.filled_at, request.ends_at, LENGTH));
        // a log whose block time is unknown is not given another time: it is ignored
        let mut late = vec![log_of(&fill, 11)];
        assert_eq!(fill_block_times(&mut late, &times), 1);
        let before = s.clone();
        assert_eq!(s.apply(&late[0], 1, 0), Applied::Ignored("no block timestamp"));
        assert_eq!(s, before);
        // a log that carries its time keeps it
        let mut timed = vec![log_of(&fill, 12)];
        timed[0].block_timestamp = Some(40);
        assert!(blocks_without_time(&timed).is_empty());
        assert_eq!(fill_block_times(&mut timed, &times), 0);
        assert_eq!(s.apply(&timed[0], 1, 0), Applied::Taken);
        assert_eq!(s.slots[&slot_id(r, 0)].filled_at, 40, "a refill's own time");
    }

    #[test]
    fn hostile_chain_values_are_ignored_without_panic() {
        let r = B256::repeat_byte(1);
        let host = Address::ZERO;
        let timed = |mut log: Log, time: u64| {
            log.block_timestamp = Some(time);
            log
        };
        let mut s = State::default();
        // the largest sizes, prices and collateral, and an end before the start
        let mut huge = request_of(2, 0);
        huge.ask.slotSize = u64::MAX;
        huge.ask.collateralPerByte = u128::MAX;
        huge.ask.pricePerBytePerSecond = u128::MAX;
        huge.ask.proofProbability = 0;
        huge.expiresAt = u64::MAX;
        assert_eq!(s.apply(&timed(log_of(&huge, 1), 5), 1, 0), Applied::Taken);
        assert_eq!(
            s.apply(&timed(log_of(&Marketplace::RequestFulfilled { requestId: r }, 2), 25), 1, 0),
            Applied::Taken
        );
        let fill =
            |index: U256| timed(log_of(&Marketplace::SlotFilled { requestId: r, slotIndex: index, host }, 2), 25);
        assert_eq!(s.apply(&fill(U256::from(1)), 1, 0), Applied::Taken);
        let watched = s.clone();
        let ignored = [
            (fill(U256::MAX), "slot index beyond u64"),
            // not slot 0 (nor u64::MAX) under another name
            (fill(U256::from(1) << 64), "slot index beyond u64"),
            (fill(U256::from(2)), "slot index beyond the request's slots"),
            (fill(U256::from(u64::MAX)), "slot index beyond the request's slots"),
            (
                log_of(
                    &Marketplace::SlotLost { requestId: r, slotIndex: (U256::from(1) << 64) | U256::from(1), host },
                    3,
                ),
                "slot index beyond u64",
            ),
            (log_of(&Marketplace::ProofSubmitted { slotId: slot_id(r, 1), period: U256::MAX }, 3), "period beyond u64"),
            (
                Log {
                    inner: alloy::primitives::Log::new_unchecked(
                        Address::ZERO,
                        vec![Marketplace::SlotFilled::SIGNATURE_HASH],
                        alloy::primitives::Bytes::from_static(&[0xff; 7]),
                    ),
                    block_timestamp: Some(25),
                    ..Log::default()
                },
                "undecodable",
            ),
        ];
        for (log, why) in &ignored {
            assert_eq!(s.apply(log, 1, 0), Applied::Ignored(why));
            assert_eq!(s, watched, "{why}: state unchanged");
        }
        let dismissed = Marketplace::AccusationDismissed { slotId: slot_id(r, 1), period: U256::MAX };
        assert_eq!(s.apply(&log_of(&dismissed, 3), 1, 0), Applied::Ignored("period beyond u64"));
        assert_eq!(s, watched, "no accusation of such a period");
        let accused =
            Marketplace::ProofAccused { slotId: slot_id(r, 1), period: U256::MAX, accuser: host, deadline: u64::MAX };
        assert_eq!(accusation_by(&log_of(&accused, 3), host), None, "period beyond u64: not remembered");
        let fair = Marketplace::ProofAccused { period: U256::from(7), ..accused };
        assert_eq!(accusation_by(&log_of(&fair, 3), host), Some((slot_id(r, 1), 7, u64::MAX)));
        assert_eq!(accusation_by(&log_of(&fair, 3), Address::repeat_byte(9)), None, "another accuser's");
        // ending before it started: no period owes a proof
        let (slot, request) = (&s.slots[&slot_id(r, 1)], &s.requests[&r]);
        let started = request.started_at.expect("started");
        for q in [0, 1, 2, 3, u64::MAX] {
            assert!(!crate::challenge::owes_proof(q, started, slot.filled_at, request.ends_at, 10));
        }
        // a proof of the last period there is is kept, and pruning next to it does not overflow
        let last = Marketplace::ProofSubmitted { slotId: slot_id(r, 1), period: U256::from(u64::MAX) };
        assert_eq!(s.apply(&log_of(&last, 3), 1, 0), Applied::Taken);
        let endless = ProofTimes { period_length: 10, proof_timeout: u64::MAX, response_window: u64::MAX };
        s.prune(30, 3, &endless);
        assert!(s.proven.contains_key(&u64::MAX) && !s.requests.is_empty());
        s.prune(u64::MAX, u64::MAX, &endless);
        assert!(s.proven.contains_key(&u64::MAX));
        assert!(s.requests.is_empty() && s.slots.is_empty(), "settled at the end of time");
    }

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("validator.json");
        let fresh = State::load(&path, 17).expect("load");
        assert_eq!(fresh.cursor, 17);
        let mut s = fresh;
        let r = B256::repeat_byte(1);
        s.requests.insert(
            r,
            RequestWatch {
                probability: 2,
                slots: 1,
                slot_size: 4096,
                collateral_per_byte: 3,
                ends_at: 100,
                started_at: Some(10),
                root: None,
            },
        );
        s.slots.insert(slot_id(r, 0), SlotWatch { request_id: r, index: 0, filled_at: 5, host: Address::ZERO });
        s.proven.entry(3).or_default().insert(slot_id(r, 0));
        s.save(&path).expect("save");
        assert_eq!(State::load(&path, 0).expect("reload"), s);
        s.accusations.push(OpenAccusation {
            slot_id: slot_id(r, 0),
            request_id: r,
            period: 4,
            deadline: 55,
            reward: 7,
        });
        s.save(&path).expect("save");
        assert_eq!(State::load(&path, 0).expect("reload"), s, "open accusations survive a restart");
        let times = ProofTimes { period_length: 10, proof_timeout: 5, response_window: 5 };
        s.prune(50, 20, &times);
        assert!(s.proven.is_empty(), "old proofs pruned");
        // ends at 100: its last period is 9, accusable until 105, answerable until 110 and
        // settled with a reward until 115
        s.prune(114, 20, &times);
        assert!(!s.requests.is_empty(), "a request is kept until it settles");
        s.prune(115, 20, &times);
        assert!(s.requests.is_empty() && s.slots.is_empty(), "settled requests forgotten");
        assert_eq!(s.accusations.len(), 1, "open accusations outlive their request");
    }
}
