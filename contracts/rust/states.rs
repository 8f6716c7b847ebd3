//! The marketplace's request and slot states as typed enums (the `RequestState` and `SlotState`
//! of `contracts/src/MarketplaceTypes.sol`, in the same order): the views `requestState` and
//! `slotState` return them as `uint8`, and [`TryFrom<u8>`] turns that into a state or an
//! [`UnknownState`] error for a value the contract does not define. This module owns the
//! numbering; nothing else should compare the raw numbers.

/// A value that is not a state of the contract's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a {what} of the marketplace")]
pub struct UnknownState {
    /// Which enum (`RequestState` or `SlotState`).
    pub what: &'static str,
    /// The value read.
    pub value: u8,
}

/// A storage request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Unknown id.
    None,
    /// Waiting for its slots to be filled.
    New,
    /// All slots filled, proofs are due.
    Started,
    /// Expired before all slots were filled.
    Cancelled,
    /// Ran until its end.
    Finished,
    /// Lost more than `maxSlotLoss` slots at once.
    Failed,
}

impl RequestState {
    /// Whether the request is over (cancelled, finished or failed): payouts and refunds follow.
    pub fn is_over(self) -> bool {
        matches!(self, RequestState::Cancelled | RequestState::Finished | RequestState::Failed)
    }
}

impl TryFrom<u8> for RequestState {
    type Error = UnknownState;

    fn try_from(value: u8) -> Result<Self, UnknownState> {
        Ok(match value {
            0 => RequestState::None,
            1 => RequestState::New,
            2 => RequestState::Started,
            3 => RequestState::Cancelled,
            4 => RequestState::Finished,
            5 => RequestState::Failed,
            _ => return Err(UnknownState { what: "RequestState", value }),
        })
    }
}

impl From<RequestState> for u8 {
    fn from(state: RequestState) -> u8 {
        state as u8
    }
}

/// A slot's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Never filled (or unknown id).
    Free,
    /// Has a host; the request is new or started.
    Filled,
    /// Its host was removed after too many missed proofs; waiting for the repair threshold.
    Lost,
    /// Open for a new host to refill.
    Repair,
    /// The request finished; the host may free it for its payout.
    Finished,
    /// The request failed; the host may free it for its collateral and payment so far.
    Failed,
    /// The request was cancelled; the host may free it for its collateral and payment so far.
    Cancelled,
    /// The host has been paid out.
    Paid,
}

impl TryFrom<u8> for SlotState {
    type Error = UnknownState;

    fn try_from(value: u8) -> Result<Self, UnknownState> {
        Ok(match value {
            0 => SlotState::Free,
            1 => SlotState::Filled,
            2 => SlotState::Lost,
            3 => SlotState::Repair,
            4 => SlotState::Finished,
            5 => SlotState::Failed,
            6 => SlotState::Cancelled,
            7 => SlotState::Paid,
            _ => return Err(UnknownState { what: "SlotState", value }),
        })
    }
}

impl From<SlotState> for u8 {
    fn from(state: SlotState) -> u8 {
        state as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_values_are_errors() {
        for v in 0..=5u8 {
            assert_eq!(u8::from(RequestState::try_from(v).expect("a request state")), v);
        }
        for v in 0..=7u8 {
            assert_eq!(u8::from(SlotState::try_from(v).expect("a slot state")), v);
        }
        assert_eq!(RequestState::try_from(6), Err(UnknownState { what: "RequestState", value: 6 }));
        assert_eq!(SlotState::try_from(8), Err(UnknownState { what: "SlotState", value: 8 }));
        assert_eq!(RequestState::try_from(2), Ok(RequestState::Started));
        assert!(RequestState::Cancelled.is_over() && !RequestState::Started.is_over());
    }
}
