// SPDX-License-Identifier: MIT
// Public data types of the Vellum marketplace (requests, configuration, states).
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";

/// @notice What a client asks for. Field order is chosen so the struct packs into two
///         storage words (counts and sizes first, prices last).
struct Ask {
    uint16 slots; // number of slots (hosts) the dataset is spread over
    uint64 slotSize; // bytes per slot
    uint64 duration; // seconds from the request until its end
    uint32 proofProbability; // a proof is required with probability 1/proofProbability per period
    uint16 maxSlotLoss; // the request fails when more slots than this are lost at once
    uint16 repairThreshold; // lost slots are opened for repair in batches of this size
    uint128 pricePerBytePerSecond; // payment, token base units
    uint128 collateralPerByte; // host collateral, token base units
}

/// @notice What is stored.
struct Content {
    bytes cid; // content identifier of the dataset
    bytes32 merkleRoot; // dataset root, a BN254 scalar field element (public proof input)
}

/// @notice A storage request; its id is keccak256(abi.encode(request)).
/// @dev `expiry` (seconds after the request within which every slot must be filled) sits next
///      to `client` so that both share one storage word.
struct Request {
    address client;
    uint64 expiry;
    Ask ask;
    Content content;
    bytes32 nonce;
}

/// @notice A slot together with the request it belongs to.
struct ActiveSlot {
    Request request;
    uint64 slotIndex;
}

/// @notice Deployment-time configuration (kept in immutables). Percentages are of the slot's
///         collateral unless said otherwise; durations are in seconds.
struct MarketplaceConfig {
    IERC20 token;
    IGroth16Verifier verifier;
    uint32 periodLength; // seconds per proof period (at least MIN_PERIOD_LENGTH)
    uint32 proofTimeout; // after a period ends, how long its missing proofs can be accused (<= periodLength)
    uint32 responseWindow; // how long an accused host has to defend with its proof (<= periodLength)
    uint8 maxMissedProofs; // missed proofs after which the slot is lost
    uint8 slashPercentage; // % of the slot collateral slashed per missed proof
    uint8 validatorRewardPercentage; // % of a slashed amount paid to the accuser of the miss
    uint8 repairRewardPercentage; // % of forfeited collateral credited to the repairing host
    uint8 reservationDepositPercentage; // % of the collateral a reservation takes (credited at fill)
    uint32 reservationDuration; // how long a reservation holds the slot for its host
    uint32 dispersalWindow; // seconds after a slot opens until every host may reserve it (0: at once)
    uint32 maxRequestExpiry; // upper bound on Request.expiry
    uint96 accusationBond; // wei an accuser deposits per accusation
    uint8 defenceSharePercentage; // % of the bond paid to a host that defends (the rest back to the accuser)
}

enum RequestState {
    None, // unknown id
    New, // waiting for its slots to be filled
    Started, // all slots filled, proofs are due
    Cancelled, // expired before all slots were filled
    Finished, // ran until its end
    Failed // lost more than maxSlotLoss slots at once
}

enum SlotState {
    Free, // never filled (or unknown id)
    Filled, // has a host; request New or Started
    Lost, // host removed after too many missed proofs, waiting for the repair threshold
    Repair, // open for a new host to refill
    Finished, // request finished; host may free it for its payout
    Failed, // request failed; host may free it for its collateral and payment so far
    Cancelled, // request cancelled; host may free it for its collateral and payment so far
    Paid // host has been paid out
}
