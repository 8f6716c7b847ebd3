//! The marketplace's custom errors (`IMarketplaceErrors` in `contracts/src/IMarketplaceEvents.sol`)
//! as a typed enum, so that callers match a revert by variant instead of comparing its name:
//! [`crate::client::ChainError::market_error`] gives the error a call reverted with. This module
//! owns the list; a revert that names no error of it (a token's revert, raw revert data) gives
//! `None` there, and the name alone stays available from `revert_reason`.

macro_rules! market_errors {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A custom error the marketplace reverts with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MarketError {
            $($(#[$doc])* $name,)*
        }

        impl MarketError {
            /// Every error, in the order of the interface.
            pub const ALL: &'static [MarketError] = &[$(MarketError::$name,)*];

            /// The error's name as Solidity spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(MarketError::$name => stringify!($name),)*
                }
            }

            /// The error named `name`, if the marketplace has one by that name.
            pub fn from_name(name: &str) -> Option<MarketError> {
                match name {
                    $(stringify!($name) => Some(MarketError::$name),)*
                    _ => None,
                }
            }
        }
    };
}

market_errors!(
    /// The configuration breaks a rule of the constructor.
    InvalidConfig,
    /// The request breaks a rule of `requestStorage`.
    InvalidRequest,
    /// The caller is not the request's client.
    NotClient,
    /// A request with the same id exists.
    RequestExists,
    /// No request has that id.
    UnknownRequest,
    /// The slot index is beyond the request's slots.
    InvalidSlotIndex,
    /// The slot cannot be filled now.
    SlotNotAvailable,
    /// The request takes no more hosts.
    RequestNotAccepting,
    /// The caller holds the slot's reservation already.
    AlreadyReserved,
    /// Another host holds the slot's reservation (until it lapses).
    SlotReservedByOther,
    /// The host's address is not yet within the slot's dispersal window.
    NotYetEligible,
    /// The caller holds no reservation of the slot.
    NotReserved,
    /// The verifier refused the proof.
    InvalidProof,
    /// The caller does not host the slot.
    NotSlotHost,
    /// The request is not running.
    RequestNotRunning,
    /// The slot's proof of this period was given already.
    ProofAlreadySubmitted,
    /// The period has not ended.
    PeriodNotEnded,
    /// The period's accusation window closed.
    MarkingWindowClosed,
    /// No proof was required of the slot in that period.
    ProofNotRequired,
    /// The proof was given.
    ProofNotMissing,
    /// The request has not ended.
    RequestNotEnded,
    /// The ether sent is not the accusation bond.
    WrongBond,
    /// No accusation is open for the slot and period.
    NoAccusation,
    /// The accused host's window to defend closed.
    ResponseWindowClosed,
    /// The accused host may still defend.
    ResponseWindowOpen,
    /// The slot was paid out already.
    AlreadyPaid,
    /// The client withdrew already.
    AlreadyWithdrawn,
    /// A token transfer failed.
    TransferFailed,
    /// The period's seed is not known yet.
    ChallengeNotReady,
    /// The call must come through the marketplace.
    NotDelegated,
);

impl std::fmt::Display for MarketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolInterface;

    use super::*;
    use crate::Marketplace::MarketplaceErrors;

    #[test]
    fn names_round_trip_and_match_the_bindings() {
        for e in MarketError::ALL {
            assert_eq!(MarketError::from_name(e.name()), Some(*e));
        }
        assert_eq!(MarketError::from_name("revert data 0x12"), None);
        // every error of the bindings' interface has a variant of the same name
        assert_eq!(MarketError::ALL.len(), MarketplaceErrors::COUNT, "as many errors as the ABI");
        for selector in MarketplaceErrors::SELECTORS {
            let decoded = MarketplaceErrors::abi_decode(selector.as_slice()).expect("a bare error decodes");
            let name = format!("{decoded:?}");
            let name = name.split(['(', ' ', '{']).next().unwrap_or_default();
            assert!(MarketError::from_name(name).is_some(), "{name} has no variant");
        }
    }
}
