//! What the validator knows, rebuilt from the marketplace's logs and kept in one JSON file (written
//! to a temporary file, synced, renamed), with the block it has read up to. Only slots of this
//! validator's group are kept; proofs are kept for the last few periods only. The accusations it
//! made and has not yet settled are kept too, so that a restarted validator settles them (and
//! gets its bonds back).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use alloy::primitives::{B256, U256, keccak256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use contracts::Marketplace;
use serde::{Deserialize, Serialize};

use crate::challenge::{ProofTimes, in_group};

/// Periods of proofs remembered.
const PROOF_PERIODS_KEPT: u64 = 4;

/// A request the validator follows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestWatch {
    /// One proof per this many periods on average.
    pub probability: u32,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Collateral per byte.
    pub collateral_per_byte: u128,
    /// When it ends (unix seconds).
    pub ends_at: u64,
    /// When its last slot was filled, once it has started.
    pub started_at: Option<u64>,
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

    /// Writes the state file durably.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp: PathBuf = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Applies one marketplace log (in chain order). `groups`/`group` select the slots kept;
    /// `block_time` gives a log's block timestamp when the log does not carry it.
    pub fn apply(&mut self, log: &Log, groups: u64, group: u64, block_time: u64) {
        let Some(topic) = log.topic0().copied() else { return };
        let time = log.block_timestamp.unwrap_or(block_time);
        if topic == Marketplace::StorageRequested::SIGNATURE_HASH {
            if let Ok(e) = log.log_decode::<Marketplace::StorageRequested>() {
                let e = e.inner.data;
                self.requests.insert(
                    e.requestId,
                    RequestWatch {
                        probability: e.ask.proofProbability,
                        slot_size: e.ask.slotSize,
                        collateral_per_byte: e.ask.collateralPerByte,
                        ends_at: e.endsAt,
                        started_at: None,
                    },
                );
            }
        } else if topic == Marketplace::RequestFulfilled::SIGNATURE_HASH {
            if let Ok(e) = log.log_decode::<Marketplace::RequestFulfilled>()
                && let Some(r) = self.requests.get_mut(&e.inner.data.requestId)
            {
                r.started_at = Some(time);
            }
        } else if topic == Marketplace::SlotFilled::SIGNATURE_HASH || topic == Marketplace::SlotRepaired::SIGNATURE_HASH
        {
            let decoded = if topic == Marketplace::SlotFilled::SIGNATURE_HASH {
                log.log_decode::<Marketplace::SlotFilled>()
                    .ok()
                    .map(|e| (e.inner.data.requestId, e.inner.data.slotIndex))
            } else {
                log.log_decode::<Marketplace::SlotRepaired>()
                    .ok()
                    .map(|e| (e.inner.data.requestId, e.inner.data.slotIndex))
            };
            if let Some((request_id, index)) = decoded {
                let index = index.saturating_to::<u64>();
                let id = slot_id(request_id, index);
                if in_group(id, groups, group) {
                    self.slots.insert(id, SlotWatch { request_id, index, filled_at: time });
                }
            }
        } else if topic == Marketplace::SlotLost::SIGNATURE_HASH {
            if let Ok(e) = log.log_decode::<Marketplace::SlotLost>() {
                self.slots.remove(&slot_id(e.inner.data.requestId, e.inner.data.slotIndex.saturating_to()));
            }
        } else if topic == Marketplace::ProofSubmitted::SIGNATURE_HASH {
            if let Ok(e) = log.log_decode::<Marketplace::ProofSubmitted>()
                && self.slots.contains_key(&e.inner.data.slotId)
            {
                self.proven.entry(e.inner.data.period.saturating_to()).or_default().insert(e.inner.data.slotId);
            }
        } else if topic == Marketplace::AccusationDismissed::SIGNATURE_HASH {
            if let Ok(e) = log.log_decode::<Marketplace::AccusationDismissed>() {
                let (slot, period) = (e.inner.data.slotId, e.inner.data.period);
                let before = self.accusations.len();
                self.accusations.retain(|a| !(a.slot_id == slot && U256::from(a.period) == period));
                if self.accusations.len() < before {
                    self.stats.dismissed += 1;
                }
            }
        } else if (topic == Marketplace::RequestFailed::SIGNATURE_HASH
            || topic == Marketplace::RequestFinished::SIGNATURE_HASH
            || topic == Marketplace::RequestCancelled::SIGNATURE_HASH)
            && let Some(id) = log.topics().get(1).copied()
        {
            self.forget_request(id);
        }
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
        self.proven.retain(|p, _| p + PROOF_PERIODS_KEPT >= period);
    }
}

#[cfg(test)]
mod tests {
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
        let head_time = 1_005;
        let r = B256::repeat_byte(1);
        let mut s = State::default();
        s.apply(&log_of(&request_of(1, 2_000), 9), 1, 0, head_time);
        s.apply(&log_of(&Marketplace::RequestFulfilled { requestId: r }, 10), 1, 0, head_time);
        let fill = Marketplace::SlotFilled { requestId: r, slotIndex: U256::ZERO, host: Default::default() };
        s.apply(&log_of(&fill, 10), 1, 0, head_time);
        let slot = &s.slots[&slot_id(r, 0)];
        let request = &s.requests[&r];
        assert_eq!(slot.filled_at, 25, "filled at its block's time, not the head's");
        let started = request.started_at.expect("started");
        assert!(crate::challenge::owes_proof(99, started, slot.filled_at, request.ends_at, LENGTH));
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
                slot_size: 4096,
                collateral_per_byte: 3,
                ends_at: 100,
                started_at: Some(10),
            },
        );
        s.slots.insert(slot_id(r, 0), SlotWatch { request_id: r, index: 0, filled_at: 5 });
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
