//! The marketplace's events (`IMarketplaceEvents` in `contracts/src/IMarketplaceEvents.sol`) as
//! one typed enum with plain Rust fields, decoded from a log in one place: the node, the validator,
//! the devnet and the scenarios read logs through [`MarketEvent::decode`] and never decode them by
//! hand. This module owns the mapping from the ABI to Rust; it does not select logs (callers
//! filter by the marketplace's address) and never guesses a value that does not fit.
//!
//! Logs are data from the chain: an index, a period or a count beyond `u64` is not clamped or
//! wrapped: such a log does not decode ([`EventError::BeyondU64`] says which value).

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEventInterface;

use crate::Marketplace::{self, MarketplaceEvents};

/// What a storage request asks for (the contract's `Ask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ask {
    /// Slots (K + M).
    pub slots: u16,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Seconds the request runs once started.
    pub duration: u64,
    /// One proof per this many periods on average.
    pub proof_probability: u32,
    /// Slots that may be lost at once before the request fails.
    pub max_slot_loss: u16,
    /// Lost slots that open repair.
    pub repair_threshold: u16,
    /// Price per byte per second (token base units).
    pub price_per_byte_per_second: u128,
    /// Collateral per byte a host deposits (token base units).
    pub collateral_per_byte: u128,
}

impl From<Marketplace::Ask> for Ask {
    fn from(a: Marketplace::Ask) -> Self {
        Ask {
            slots: a.slots,
            slot_size: a.slotSize,
            duration: a.duration,
            proof_probability: a.proofProbability,
            max_slot_loss: a.maxSlotLoss,
            repair_threshold: a.repairThreshold,
            price_per_byte_per_second: a.pricePerBytePerSecond,
            collateral_per_byte: a.collateralPerByte,
        }
    }
}

impl From<Ask> for Marketplace::Ask {
    fn from(a: Ask) -> Self {
        Marketplace::Ask {
            slots: a.slots,
            slotSize: a.slot_size,
            duration: a.duration,
            proofProbability: a.proof_probability,
            maxSlotLoss: a.max_slot_loss,
            repairThreshold: a.repair_threshold,
            pricePerBytePerSecond: a.price_per_byte_per_second,
            collateralPerByte: a.collateral_per_byte,
        }
    }
}

/// An event of the marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    /// A client requested storage.
    StorageRequested {
        /// The request.
        request_id: B256,
        /// Its client.
        client: Address,
        /// What it asks for.
        ask: Ask,
        /// When it expires unless every slot is filled (unix seconds).
        expires_at: u64,
        /// When it ends (unix seconds).
        ends_at: u64,
    },
    /// A host took a slot's reservation (exclusive) until `lapses_at`, with a deposit.
    SlotReserved {
        /// The request.
        request_id: B256,
        /// The slot's index.
        slot_index: u64,
        /// The host.
        host: Address,
        /// When the reservation lapses (unix seconds).
        lapses_at: u64,
    },
    /// A host filled a slot.
    SlotFilled {
        /// The request.
        request_id: B256,
        /// The slot's index.
        slot_index: u64,
        /// The host.
        host: Address,
    },
    /// Every slot of a request was filled: it started.
    RequestFulfilled {
        /// The request.
        request_id: B256,
    },
    /// A slot's proof of a period was accepted.
    ProofSubmitted {
        /// The slot.
        slot_id: B256,
        /// The period.
        period: u64,
    },
    /// An accusation was settled undefended: the host missed the period's proof and was slashed.
    ProofMissed {
        /// The slot.
        slot_id: B256,
        /// The period whose proof is missing.
        period: u64,
        /// The slot's missed proofs so far.
        missed_proofs: u64,
        /// Who accused it (and is rewarded).
        validator: Address,
    },
    /// Someone accused a slot's host of missing a period's proof; it may defend until `deadline`.
    ProofAccused {
        /// The slot.
        slot_id: B256,
        /// The period.
        period: u64,
        /// Who accused it.
        accuser: Address,
        /// The last second the host may defend (unix seconds).
        deadline: u64,
    },
    /// The accused host defended with a valid proof: the period counts as proven.
    AccusationDismissed {
        /// The slot.
        slot_id: B256,
        /// The period.
        period: u64,
    },
    /// A slot's host was removed after too many missed proofs.
    SlotLost {
        /// The request.
        request_id: B256,
        /// The slot's index.
        slot_index: u64,
        /// The host removed.
        host: Address,
    },
    /// Repair opened for the request's lost slots.
    RepairOpened {
        /// The request.
        request_id: B256,
        /// The slots open for repair.
        slot_indices: Vec<u64>,
    },
    /// A host refilled a slot under repair.
    SlotRepaired {
        /// The request.
        request_id: B256,
        /// The slot's index.
        slot_index: u64,
        /// The new host.
        host: Address,
    },
    /// A request lost more slots at once than it tolerates.
    RequestFailed {
        /// The request.
        request_id: B256,
    },
    /// A request ran until its end.
    RequestFinished {
        /// The request.
        request_id: B256,
    },
    /// A request expired before every slot was filled.
    RequestCancelled {
        /// The request.
        request_id: B256,
    },
    /// A host was paid out and left a slot.
    SlotFreed {
        /// The request.
        request_id: B256,
        /// The slot's index.
        slot_index: u64,
        /// The host.
        host: Address,
        /// What it was paid (token base units).
        amount: U256,
    },
    /// A client withdrew what its request left over.
    FundsWithdrawn {
        /// The request.
        request_id: B256,
        /// The client.
        client: Address,
        /// What it got (token base units).
        amount: U256,
    },
    /// A period got its anchor block, whose hash is the period's seed.
    PeriodAnchored {
        /// The period.
        period: u64,
        /// The anchor block.
        block_number: u64,
        /// A late anchor requires no proofs.
        late: bool,
    },
}

/// Why a log is not a [`MarketEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// No topic, or the topic of an event the marketplace does not have.
    #[error("not an event of the marketplace")]
    Foreign,
    /// The marketplace's topic, but topics or data that do not decode as its event.
    #[error("undecodable")]
    Undecodable,
    /// A value does not fit in `u64` (which: "slot index beyond u64", "period beyond u64", …).
    #[error("{0}")]
    BeyondU64(&'static str),
}

/// A chain value that must fit in `u64`.
fn fit(value: U256, beyond: &'static str) -> Result<u64, EventError> {
    u64::try_from(value).map_err(|_| EventError::BeyondU64(beyond))
}

fn slot_index(value: U256) -> Result<u64, EventError> {
    fit(value, "slot index beyond u64")
}

fn period(value: U256) -> Result<u64, EventError> {
    fit(value, "period beyond u64")
}

impl MarketEvent {
    /// The marketplace event `log` carries; `None` for a log of another event (or contract) and
    /// for one that does not decode or whose values do not fit (see [`MarketEvent::try_decode`]).
    /// The log's address is not checked: select the marketplace's logs by address.
    pub fn decode(log: &Log) -> Option<MarketEvent> {
        MarketEvent::try_decode(log).ok()
    }

    /// The marketplace event `log` carries, or why it carries none.
    pub fn try_decode(log: &Log) -> Result<MarketEvent, EventError> {
        let topics = log.topics();
        let Some(topic) = topics.first() else { return Err(EventError::Foreign) };
        if MarketplaceEvents::SELECTORS.binary_search(&topic.0).is_err() {
            return Err(EventError::Foreign);
        }
        let event = MarketplaceEvents::decode_raw_log(topics, &log.data().data).map_err(|_| EventError::Undecodable)?;
        Ok(match event {
            MarketplaceEvents::StorageRequested(e) => MarketEvent::StorageRequested {
                request_id: e.requestId,
                client: e.client,
                ask: e.ask.into(),
                expires_at: e.expiresAt,
                ends_at: e.endsAt,
            },
            MarketplaceEvents::SlotReserved(e) => MarketEvent::SlotReserved {
                request_id: e.requestId,
                slot_index: slot_index(e.slotIndex)?,
                host: e.host,
                lapses_at: e.lapsesAt,
            },
            MarketplaceEvents::SlotFilled(e) => {
                MarketEvent::SlotFilled { request_id: e.requestId, slot_index: slot_index(e.slotIndex)?, host: e.host }
            }
            MarketplaceEvents::RequestFulfilled(e) => MarketEvent::RequestFulfilled { request_id: e.requestId },
            MarketplaceEvents::ProofSubmitted(e) => {
                MarketEvent::ProofSubmitted { slot_id: e.slotId, period: period(e.period)? }
            }
            MarketplaceEvents::ProofMissed(e) => MarketEvent::ProofMissed {
                slot_id: e.slotId,
                period: period(e.period)?,
                missed_proofs: fit(e.missedProofs, "missed proofs beyond u64")?,
                validator: e.validator,
            },
            MarketplaceEvents::ProofAccused(e) => MarketEvent::ProofAccused {
                slot_id: e.slotId,
                period: period(e.period)?,
                accuser: e.accuser,
                deadline: e.deadline,
            },
            MarketplaceEvents::AccusationDismissed(e) => {
                MarketEvent::AccusationDismissed { slot_id: e.slotId, period: period(e.period)? }
            }
            MarketplaceEvents::SlotLost(e) => {
                MarketEvent::SlotLost { request_id: e.requestId, slot_index: slot_index(e.slotIndex)?, host: e.host }
            }
            MarketplaceEvents::RepairOpened(e) => MarketEvent::RepairOpened {
                request_id: e.requestId,
                slot_indices: e.slotIndices.into_iter().map(slot_index).collect::<Result<_, _>>()?,
            },
            MarketplaceEvents::SlotRepaired(e) => MarketEvent::SlotRepaired {
                request_id: e.requestId,
                slot_index: slot_index(e.slotIndex)?,
                host: e.host,
            },
            MarketplaceEvents::RequestFailed(e) => MarketEvent::RequestFailed { request_id: e.requestId },
            MarketplaceEvents::RequestFinished(e) => MarketEvent::RequestFinished { request_id: e.requestId },
            MarketplaceEvents::RequestCancelled(e) => MarketEvent::RequestCancelled { request_id: e.requestId },
            MarketplaceEvents::SlotFreed(e) => MarketEvent::SlotFreed {
                request_id: e.requestId,
                slot_index: slot_index(e.slotIndex)?,
                host: e.host,
                amount: e.amount,
            },
            MarketplaceEvents::FundsWithdrawn(e) => {
                MarketEvent::FundsWithdrawn { request_id: e.requestId, client: e.client, amount: e.amount }
            }
            MarketplaceEvents::PeriodAnchored(e) => MarketEvent::PeriodAnchored {
                period: period(e.period)?,
                block_number: fit(e.blockNumber, "block number beyond u64")?,
                late: e.late,
            },
        })
    }

    /// The request the event is about, for the events that name one (the proof events name a
    /// slot instead: see [`MarketEvent::slot_id`]).
    pub fn request_id(&self) -> Option<B256> {
        match self {
            MarketEvent::StorageRequested { request_id, .. }
            | MarketEvent::SlotReserved { request_id, .. }
            | MarketEvent::SlotFilled { request_id, .. }
            | MarketEvent::RequestFulfilled { request_id }
            | MarketEvent::SlotLost { request_id, .. }
            | MarketEvent::RepairOpened { request_id, .. }
            | MarketEvent::SlotRepaired { request_id, .. }
            | MarketEvent::RequestFailed { request_id }
            | MarketEvent::RequestFinished { request_id }
            | MarketEvent::RequestCancelled { request_id }
            | MarketEvent::SlotFreed { request_id, .. }
            | MarketEvent::FundsWithdrawn { request_id, .. } => Some(*request_id),
            MarketEvent::ProofSubmitted { .. }
            | MarketEvent::ProofMissed { .. }
            | MarketEvent::ProofAccused { .. }
            | MarketEvent::AccusationDismissed { .. }
            | MarketEvent::PeriodAnchored { .. } => None,
        }
    }

    /// The slot the event names by its id (the proof and accusation events).
    pub fn slot_id(&self) -> Option<B256> {
        match self {
            MarketEvent::ProofSubmitted { slot_id, .. }
            | MarketEvent::ProofMissed { slot_id, .. }
            | MarketEvent::ProofAccused { slot_id, .. }
            | MarketEvent::AccusationDismissed { slot_id, .. } => Some(*slot_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, LogData};
    use alloy::sol_types::SolEvent;

    use super::*;

    fn rpc_log(data: LogData) -> Log {
        Log { inner: alloy::primitives::Log { address: Address::repeat_byte(0x4d), data }, ..Log::default() }
    }

    fn log_of<E: SolEvent>(event: &E) -> Log {
        rpc_log(event.encode_log_data())
    }

    fn ask() -> Marketplace::Ask {
        Marketplace::Ask {
            slots: 4,
            slotSize: 1 << 20,
            duration: 600,
            proofProbability: 3,
            maxSlotLoss: 2,
            repairThreshold: 1,
            pricePerBytePerSecond: 7,
            collateralPerByte: u128::MAX,
        }
    }

    #[test]
    fn every_event_decodes_to_its_variant() {
        let (r, s) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let (host, other) = (Address::repeat_byte(3), Address::repeat_byte(4));
        let big = U256::MAX - U256::from(5);
        let cases: Vec<(Log, MarketEvent)> = vec![
            (
                log_of(&Marketplace::StorageRequested {
                    requestId: r,
                    client: other,
                    ask: ask(),
                    expiresAt: 60,
                    endsAt: u64::MAX,
                }),
                MarketEvent::StorageRequested {
                    request_id: r,
                    client: other,
                    ask: Ask {
                        slots: 4,
                        slot_size: 1 << 20,
                        duration: 600,
                        proof_probability: 3,
                        max_slot_loss: 2,
                        repair_threshold: 1,
                        price_per_byte_per_second: 7,
                        collateral_per_byte: u128::MAX,
                    },
                    expires_at: 60,
                    ends_at: u64::MAX,
                },
            ),
            (
                log_of(&Marketplace::SlotReserved { requestId: r, slotIndex: U256::from(3), host, lapsesAt: 99 }),
                MarketEvent::SlotReserved { request_id: r, slot_index: 3, host, lapses_at: 99 },
            ),
            (
                log_of(&Marketplace::SlotFilled { requestId: r, slotIndex: U256::from(u64::MAX), host }),
                MarketEvent::SlotFilled { request_id: r, slot_index: u64::MAX, host },
            ),
            (log_of(&Marketplace::RequestFulfilled { requestId: r }), MarketEvent::RequestFulfilled { request_id: r }),
            (
                log_of(&Marketplace::ProofSubmitted { slotId: s, period: U256::from(12) }),
                MarketEvent::ProofSubmitted { slot_id: s, period: 12 },
            ),
            (
                log_of(&Marketplace::ProofMissed {
                    slotId: s,
                    period: U256::from(13),
                    missedProofs: U256::from(2),
                    validator: other,
                }),
                MarketEvent::ProofMissed { slot_id: s, period: 13, missed_proofs: 2, validator: other },
            ),
            (
                log_of(&Marketplace::ProofAccused { slotId: s, period: U256::from(14), accuser: other, deadline: 77 }),
                MarketEvent::ProofAccused { slot_id: s, period: 14, accuser: other, deadline: 77 },
            ),
            (
                log_of(&Marketplace::AccusationDismissed { slotId: s, period: U256::from(15) }),
                MarketEvent::AccusationDismissed { slot_id: s, period: 15 },
            ),
            (
                log_of(&Marketplace::SlotLost { requestId: r, slotIndex: U256::from(1), host }),
                MarketEvent::SlotLost { request_id: r, slot_index: 1, host },
            ),
            (
                log_of(&Marketplace::RepairOpened { requestId: r, slotIndices: vec![U256::from(0), U256::from(3)] }),
                MarketEvent::RepairOpened { request_id: r, slot_indices: vec![0, 3] },
            ),
            (
                log_of(&Marketplace::SlotRepaired { requestId: r, slotIndex: U256::from(3), host: other }),
                MarketEvent::SlotRepaired { request_id: r, slot_index: 3, host: other },
            ),
            (log_of(&Marketplace::RequestFailed { requestId: r }), MarketEvent::RequestFailed { request_id: r }),
            (log_of(&Marketplace::RequestFinished { requestId: r }), MarketEvent::RequestFinished { request_id: r }),
            (log_of(&Marketplace::RequestCancelled { requestId: r }), MarketEvent::RequestCancelled { request_id: r }),
            (
                log_of(&Marketplace::SlotFreed { requestId: r, slotIndex: U256::from(2), host, amount: big }),
                MarketEvent::SlotFreed { request_id: r, slot_index: 2, host, amount: big },
            ),
            (
                log_of(&Marketplace::FundsWithdrawn { requestId: r, client: other, amount: U256::from(5) }),
                MarketEvent::FundsWithdrawn { request_id: r, client: other, amount: U256::from(5) },
            ),
            (
                log_of(&Marketplace::PeriodAnchored { period: U256::from(8), blockNumber: U256::from(80), late: true }),
                MarketEvent::PeriodAnchored { period: 8, block_number: 80, late: true },
            ),
        ];
        assert_eq!(cases.len(), MarketplaceEvents::COUNT, "one case per event of the ABI");
        let mut topics = std::collections::BTreeSet::new();
        for (log, expected) in &cases {
            assert_eq!(MarketEvent::decode(log).as_ref(), Some(expected));
            topics.insert(log.topic0().copied());
            let named = if expected.slot_id().is_some() { Some(s) } else { None };
            assert_eq!(expected.slot_id(), named);
            let anchored = matches!(expected, MarketEvent::PeriodAnchored { .. });
            assert_eq!(expected.request_id().is_some(), named.is_none() && !anchored, "{expected:?}");
            assert!(expected.request_id().is_none_or(|id| id == r));
        }
        assert_eq!(topics.len(), cases.len(), "each case a different event");
    }

    #[test]
    fn foreign_and_malformed_logs_decode_to_nothing() {
        let r = B256::repeat_byte(1);
        // no topic at all; another contract's event (an ERC-20 transfer)
        let anonymous = rpc_log(LogData::new_unchecked(vec![], Bytes::from_static(&[0; 32])));
        assert_eq!(MarketEvent::try_decode(&anonymous), Err(EventError::Foreign));
        let transfer = crate::TestToken::Transfer { from: Address::ZERO, to: Address::ZERO, value: U256::from(1) };
        assert_eq!(MarketEvent::try_decode(&log_of(&transfer)), Err(EventError::Foreign));
        assert_eq!(MarketEvent::decode(&log_of(&transfer)), None);

        // the marketplace's topic with truncated data, or without its indexed topics
        let filled = Marketplace::SlotFilled { requestId: r, slotIndex: U256::from(1), host: Address::ZERO };
        let whole = filled.encode_log_data();
        let cut = LogData::new_unchecked(whole.topics().to_vec(), whole.data.slice(..whole.data.len() - 1));
        assert_eq!(MarketEvent::try_decode(&rpc_log(cut)), Err(EventError::Undecodable));
        let bare = LogData::new_unchecked(whole.topics()[..1].to_vec(), whole.data.clone());
        assert_eq!(MarketEvent::decode(&rpc_log(bare)), None);
        let opened = Marketplace::RepairOpened { requestId: r, slotIndices: vec![U256::from(1); 3] }.encode_log_data();
        let cut = LogData::new_unchecked(opened.topics().to_vec(), opened.data.slice(..opened.data.len() - 32));
        assert_eq!(MarketEvent::try_decode(&rpc_log(cut)), Err(EventError::Undecodable));

        // values beyond u64 are not clamped
        let beyond = U256::from(1) << 64;
        let far = Marketplace::SlotFilled { requestId: r, slotIndex: beyond, host: Address::ZERO };
        assert_eq!(MarketEvent::try_decode(&log_of(&far)), Err(EventError::BeyondU64("slot index beyond u64")));
        let late = Marketplace::ProofSubmitted { slotId: r, period: U256::MAX };
        assert_eq!(MarketEvent::try_decode(&log_of(&late)), Err(EventError::BeyondU64("period beyond u64")));
        let one_far = Marketplace::RepairOpened { requestId: r, slotIndices: vec![U256::from(1), beyond] };
        assert_eq!(MarketEvent::decode(&log_of(&one_far)), None, "no index dropped or clamped");
    }
}
