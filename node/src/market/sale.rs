//! A sale's states and transitions, pure: no chain, no disk, no clock. The engine
//! ([`super::selling`], [`super::proving`]) asks [`next`] what a step's outcome makes of a sale
//! and does the effects it answers (delete the slot's data, give the availability back), and
//! records the sale before and after each chain step. The rules that keep a host's collateral
//! safe live here, where they are unit-tested on their own:
//! - a fill that failed or whose outcome is unknown is never the end of a sale: the host asks the
//!   chain who holds the slot ([`after_fill`]), and only a chain that answers "not this host" lets
//!   the sale give up and delete its data;
//! - data is deleted only on the way into a state where nobody pays this host to keep it.
//!
//! A sale starts in `Reserving`, recorded before the reservation is sent; a reservation the
//! chain refused leaves nothing on chain, and its record is dropped rather than moved on.
//!
//! ```text
//! Reserving ──Reserved──▶ Downloading ──Fetched──▶ Filling ──Filled / HolderIsThis──▶ Proving
//!                              │                      │                                 │
//!                         FetchFailed          HolderIsOther                 RequestOver │ SlotTaken
//!                              ▼                      ▼                                 ▼   ▼
//!                           Errored               Errored                    Payout    Failed
//!                                                                               │
//!                                                                        PaidOut ▼
//!                                                                    Finished | Cancelled
//! ```

use std::path::PathBuf;

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

use super::types::{SlotAgent, StorageRequest};
use super::words::id_hex;

/// Where a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SaleState {
    /// Reserving the slot (recorded first: a reservation whose answer is lost may stand, and
    /// its deposit is used by the resumed sale rather than paid again for another slot).
    Reserving,
    /// Reserved; fetching and checking the slot.
    Downloading,
    /// Slot held and checked; filling it on chain (a fill may have been sent: its outcome is
    /// read from the chain before anything else is done).
    Filling,
    /// Filled; proving every period that requires it.
    Proving,
    /// The request ended; collecting the payout.
    Payout,
    /// Paid out.
    Finished,
    /// The slot was lost or the request failed and nothing is owed.
    Failed,
    /// The request expired before it started; collateral and pay for the time held returned.
    Cancelled,
    /// Gave up on this slot (another host took it, or it could not be fetched or checked).
    Errored,
}

impl SaleState {
    /// Whether the sale still holds (or may yet hold) its slot.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SaleState::Reserving | SaleState::Downloading | SaleState::Filling | SaleState::Proving | SaleState::Payout
        )
    }

    /// Whether this host holds the slot on chain.
    pub fn holds_slot(self) -> bool {
        matches!(self, SaleState::Filling | SaleState::Proving | SaleState::Payout)
    }
}

/// What happened to a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaleEvent {
    /// The slot's reservation is this host's.
    Reserved,
    /// The slot was fetched and checked.
    Fetched,
    /// It could not be fetched or did not check.
    FetchFailed,
    /// The fill was accepted.
    Filled,
    /// The chain says this host holds the slot (a fill whose answer was lost, a resend, a restart).
    HolderIsThis,
    /// The chain says this host does not hold the slot and its fill is no longer under way.
    HolderIsOther,
    /// The request is over (finished, cancelled or failed).
    RequestOver,
    /// The payout was collected (`cancelled`: the request never started).
    PaidOut {
        /// The request was cancelled.
        cancelled: bool,
    },
    /// The slot was taken from this host (missed proofs), or its request failed.
    SlotTaken,
}

/// What the engine must do on a transition, after the new state is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Delete the slot's data and tree.
    DeleteData,
    /// Give the slot's size back to its availability, and `collateral` (true) or not (false,
    /// when it was slashed or is still on chain).
    ReturnToAvailability {
        /// Whether the collateral comes back too.
        collateral: bool,
    },
}

/// A transition the rules do not allow (a bug in the engine, or a record edited by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sale in state {from:?} cannot take {event:?}")]
pub(crate) struct IllegalTransition {
    /// The state.
    pub(crate) from: SaleState,
    /// The event.
    pub(crate) event: SaleEvent,
}

/// The state a sale moves to and what to do.
pub(crate) fn next(from: SaleState, event: SaleEvent) -> Result<(SaleState, &'static [Effect]), IllegalTransition> {
    use Effect::*;
    use SaleEvent as E;
    use SaleState as S;
    const GIVE_UP: &[Effect] = &[DeleteData, ReturnToAvailability { collateral: true }];
    Ok(match (from, event) {
        (S::Reserving, E::Reserved) => (S::Downloading, &[]),
        (S::Downloading, E::Fetched) => (S::Filling, &[]),
        (S::Downloading, E::FetchFailed) => (S::Errored, GIVE_UP),
        (S::Filling, E::Filled | E::HolderIsThis) => (S::Proving, &[]),
        (S::Filling, E::HolderIsOther) => (S::Errored, GIVE_UP),
        (S::Proving, E::HolderIsThis) => (S::Proving, &[]),
        (S::Proving, E::RequestOver) => (S::Payout, &[]),
        (S::Payout, E::PaidOut { cancelled: false }) => (S::Finished, GIVE_UP),
        (S::Payout, E::PaidOut { cancelled: true }) => (S::Cancelled, GIVE_UP),
        (S::Proving | S::Payout, E::SlotTaken) => {
            (S::Failed, &[DeleteData, ReturnToAvailability { collateral: false }])
        }
        (from, event) => return Err(IllegalTransition { from, event }),
    })
}

/// How a fill attempt ended, as far as the host can tell from its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillAnswer {
    /// Mined and accepted.
    Accepted,
    /// Refused because the proof's challenge had moved on (a new period began while proving).
    StaleProof,
    /// Refused for another reason (the slot is filled, the lease lapsed, the request closed).
    Refused,
    /// No answer: the endpoint failed, or the receipt did not come in time (it may still land).
    Unknown,
}

/// Who holds the slot, as the chain answered after a fill attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// This host.
    This,
    /// Another host, or nobody.
    NotThis,
    /// The chain did not answer.
    Unknown,
}

/// What the engine does after a fill attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillDecision {
    /// The slot is this host's: prove it.
    Hold,
    /// Prove against the new challenge and fill again.
    ProveAgain,
    /// The slot is not this host's and no fill of it is under way: give the sale up.
    GiveUp,
    /// Not known yet: keep everything and ask the chain again later.
    AskAgainLater,
}

/// The rule that stops a host from deleting a slot it holds: whatever the fill's answer, the
/// chain's word on the holder decides, and a silent chain decides nothing. A stale proof is
/// proved again only when the chain confirms the slot is not already this host's.
pub(crate) fn after_fill(answer: FillAnswer, holder: Holder) -> FillDecision {
    match (answer, holder) {
        (FillAnswer::Accepted, _) | (_, Holder::This) => FillDecision::Hold,
        (_, Holder::Unknown) | (FillAnswer::Unknown, Holder::NotThis) => FillDecision::AskAgainLater,
        (FillAnswer::StaleProof, Holder::NotThis) => FillDecision::ProveAgain,
        (FillAnswer::Refused, Holder::NotThis) => FillDecision::GiveUp,
    }
}

/// One sale, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleRecord {
    /// The slot.
    pub slot_id: B256,
    /// Its request.
    pub request_id: B256,
    /// Its index.
    pub slot_index: u64,
    /// The request as it was read from the chain.
    pub request: StorageRequest,
    /// Where it stands.
    pub state: SaleState,
    /// The availability it draws on.
    pub availability_id: String,
    /// Collateral put up (decimal).
    pub collateral: String,
    /// The slot's cells (a dataset's data file), once accepted.
    pub cells: Option<PathBuf>,
    /// The slot's tree, once accepted.
    pub tree: Option<PathBuf>,
    /// Accepted periodic proofs.
    pub proofs_submitted: u64,
    /// The last period proven (the fill counts).
    pub last_proven_period: Option<u64>,
    /// Why it failed or errored.
    pub error: Option<String>,
    /// For a repair: every slot that repair opened with this one (lost together).
    #[serde(default)]
    pub repair_of: Vec<u64>,
    /// The slot dataset's manifest CID, once fetched.
    #[serde(default)]
    pub slot_cid: Option<String>,
    /// Fill attempts whose answer never came (each one may have landed).
    #[serde(default)]
    pub fills_unanswered: u32,
}

impl SaleRecord {
    /// The REST view of the sale.
    pub(super) fn agent(&self) -> SlotAgent {
        SlotAgent {
            slot_index: self.slot_index,
            request_id: id_hex(&self.request_id),
            request: self.request.clone(),
            state: format!("Sale{:?}", self.state),
            proofs_submitted: self.proofs_submitted,
            error: self.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SaleState; 9] = [
        SaleState::Reserving,
        SaleState::Downloading,
        SaleState::Filling,
        SaleState::Proving,
        SaleState::Payout,
        SaleState::Finished,
        SaleState::Failed,
        SaleState::Cancelled,
        SaleState::Errored,
    ];
    const EVENTS: [SaleEvent; 10] = [
        SaleEvent::Reserved,
        SaleEvent::Fetched,
        SaleEvent::FetchFailed,
        SaleEvent::Filled,
        SaleEvent::HolderIsThis,
        SaleEvent::HolderIsOther,
        SaleEvent::RequestOver,
        SaleEvent::PaidOut { cancelled: false },
        SaleEvent::PaidOut { cancelled: true },
        SaleEvent::SlotTaken,
    ];

    #[test]
    fn a_sale_that_holds_its_slot_never_deletes_its_data() {
        for from in ALL {
            for event in EVENTS {
                if let Ok((to, effects)) = next(from, event)
                    && to.holds_slot()
                {
                    assert!(!effects.contains(&Effect::DeleteData), "{from:?} + {event:?} → {to:?} deletes held data");
                }
            }
        }
    }

    #[test]
    fn every_way_a_sale_ends_deletes_its_data_and_returns_its_space() {
        let endings = [
            (SaleState::Downloading, SaleEvent::FetchFailed, SaleState::Errored, true),
            (SaleState::Filling, SaleEvent::HolderIsOther, SaleState::Errored, true),
            (SaleState::Payout, SaleEvent::PaidOut { cancelled: false }, SaleState::Finished, true),
            (SaleState::Payout, SaleEvent::PaidOut { cancelled: true }, SaleState::Cancelled, true),
            (SaleState::Proving, SaleEvent::SlotTaken, SaleState::Failed, false),
            (SaleState::Payout, SaleEvent::SlotTaken, SaleState::Failed, false),
        ];
        for (from, event, want, collateral) in endings {
            let (to, effects) = next(from, event).expect("allowed");
            assert_eq!(to, want);
            assert!(!to.is_live());
            assert!(effects.contains(&Effect::DeleteData), "{from:?} + {event:?}");
            assert!(effects.contains(&Effect::ReturnToAvailability { collateral }), "{from:?} + {event:?}");
        }
    }

    #[test]
    fn ended_sales_take_no_further_event() {
        for from in [SaleState::Finished, SaleState::Failed, SaleState::Cancelled, SaleState::Errored] {
            for event in EVENTS {
                assert_eq!(next(from, event), Err(IllegalTransition { from, event }));
            }
        }
    }

    #[test]
    fn a_filling_sale_gives_up_only_on_the_chains_word() {
        // Only HolderIsOther ends a fill: a failed fill attempt is not an event of its own.
        let ends: Vec<SaleEvent> =
            EVENTS.into_iter().filter(|e| next(SaleState::Filling, *e).is_ok_and(|(to, _)| !to.is_live())).collect();
        assert_eq!(ends, vec![SaleEvent::HolderIsOther]);
    }

    #[test]
    fn after_a_fill_only_a_chain_that_answers_not_this_host_lets_the_sale_go() {
        use FillAnswer::*;
        use FillDecision::*;
        use Holder::*;
        let table = [
            (Accepted, This, Hold),
            (Accepted, Holder::Unknown, Hold),
            (StaleProof, This, Hold),
            (StaleProof, NotThis, ProveAgain),
            (StaleProof, Holder::Unknown, AskAgainLater),
            (Refused, This, Hold),
            (Refused, NotThis, GiveUp),
            (Refused, Holder::Unknown, AskAgainLater),
            (FillAnswer::Unknown, This, Hold),
            (FillAnswer::Unknown, NotThis, AskAgainLater),
            (FillAnswer::Unknown, Holder::Unknown, AskAgainLater),
        ];
        for (answer, holder, want) in table {
            assert_eq!(after_fill(answer, holder), want, "{answer:?}, {holder:?}");
        }
    }

    #[test]
    fn records_of_the_previous_format_still_load() {
        let old = r#"{"slot_id":"0x0101010101010101010101010101010101010101010101010101010101010101",
            "request_id":"0x0202020202020202020202020202020202020202020202020202020202020202","slot_index":3,
            "request":{"id":"0x02","client":"0x00","ask":{"slots":4,"slotSize":1024,"duration":60,
            "proofProbability":"1","pricePerBytePerSecond":"1","collateralPerByte":"1","maxSlotLoss":1,
            "repairThreshold":1},"content":{"cid":"z","merkleRoot":"0x00"},"expiry":30,"nonce":"0x00"},
            "state":"Proving","availability_id":"0x03","collateral":"1024","cells":null,"tree":null,
            "proofs_submitted":2,"last_proven_period":7,"error":null}"#;
        let record: SaleRecord = serde_json::from_str(old).expect("loads");
        assert_eq!(record.state, SaleState::Proving);
        assert_eq!(record.fills_unanswered, 0);
        assert!(record.repair_of.is_empty());
    }
}
