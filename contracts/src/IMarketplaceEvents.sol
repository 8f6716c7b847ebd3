// SPDX-License-Identifier: MIT
// Events and errors emitted by the Vellum marketplace.
pragma solidity 0.8.37;

import {Ask} from "./MarketplaceTypes.sol";

interface IMarketplaceEvents {
    event StorageRequested(bytes32 indexed requestId, address indexed client, Ask ask, uint64 expiresAt, uint64 endsAt);
    /// A host took the slot's reservation (exclusive) until `lapsesAt`, with a deposit.
    event SlotReserved(bytes32 indexed requestId, uint256 slotIndex, address indexed host, uint64 lapsesAt);
    event SlotFilled(bytes32 indexed requestId, uint256 slotIndex, address indexed host);
    event RequestFulfilled(bytes32 indexed requestId);
    event ProofSubmitted(bytes32 indexed slotId, uint256 period);
    /// A required proof was found missing (an accusation settled undefended): the host was slashed.
    event ProofMissed(bytes32 indexed slotId, uint256 period, uint256 missedProofs, address indexed validator);
    /// Someone accused the slot's host of missing the period's proof; it may defend until `deadline`.
    event ProofAccused(bytes32 indexed slotId, uint256 period, address indexed accuser, uint64 deadline);
    /// The accused host defended with a valid proof: the period counts as proven.
    event AccusationDismissed(bytes32 indexed slotId, uint256 period);
    event SlotLost(bytes32 indexed requestId, uint256 slotIndex, address indexed host);
    event RepairOpened(bytes32 indexed requestId, uint256[] slotIndices);
    event SlotRepaired(bytes32 indexed requestId, uint256 slotIndex, address indexed host);
    event RequestFailed(bytes32 indexed requestId);
    event RequestFinished(bytes32 indexed requestId);
    event RequestCancelled(bytes32 indexed requestId);
    event SlotFreed(bytes32 indexed requestId, uint256 slotIndex, address indexed host, uint256 amount);
    event FundsWithdrawn(bytes32 indexed requestId, address indexed client, uint256 amount);
    /// A period got its anchor block, whose hash is the period's seed; `late` anchors require no proofs.
    event PeriodAnchored(uint256 indexed period, uint256 blockNumber, bool late);
}

interface IMarketplaceErrors {
    error InvalidConfig();
    error InvalidRequest();
    error NotClient();
    error RequestExists();
    error UnknownRequest();
    error InvalidSlotIndex();
    error SlotNotAvailable();
    error RequestNotAccepting();
    error AlreadyReserved();
    /// Another host holds the slot's reservation (until it lapses).
    error SlotReservedByOther();
    /// The host's address is not yet within the slot's dispersal window (see eligibleAt).
    error NotYetEligible();
    error NotReserved();
    error InvalidProof();
    error NotSlotHost();
    error RequestNotRunning();
    error ProofAlreadySubmitted();
    error PeriodNotEnded();
    error MarkingWindowClosed();
    error ProofNotRequired();
    error ProofNotMissing();
    error RequestNotEnded();
    error WrongBond();
    error NoAccusation();
    error ResponseWindowClosed();
    error ResponseWindowOpen();
    error AlreadyPaid();
    error AlreadyWithdrawn();
    error TransferFailed();
    error ChallengeNotReady();
    error NotDelegated();
}
