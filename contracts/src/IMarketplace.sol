// SPDX-License-Identifier: MIT
// IMarketplace: the whole external interface of a deployed Marketplace, including the functions
// its MarketplaceSettlement module serves through the Marketplace's address.
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";
import {IMarketplaceEvents, IMarketplaceErrors} from "./IMarketplaceEvents.sol";
import {Request, ActiveSlot, MarketplaceConfig, RequestState, SlotState} from "./MarketplaceTypes.sol";

interface IMarketplace is IMarketplaceEvents, IMarketplaceErrors {
    // requests and slots (Marketplace)
    function requestStorage(Request calldata request) external returns (bytes32 requestId);
    function reserveSlot(bytes32 requestId, uint64 slotIndex) external;
    function canReserveSlot(bytes32 requestId, uint64 slotIndex) external view returns (bool);
    function reservation(bytes32 requestId, uint64 slotIndex) external view returns (address holder, uint64 lapsesAt);
    function eligibleAt(bytes32 requestId, uint64 slotIndex, address host) external view returns (uint256);
    function fillSlot(bytes32 requestId, uint64 slotIndex, uint256[8] calldata proof) external;
    function submitProof(bytes32 id, uint256[8] calldata proof) external;

    // views (Marketplace)
    function settlement() external view returns (address);
    function token() external view returns (IERC20);
    function verifier() external view returns (IGroth16Verifier);
    function slotId(bytes32 requestId, uint64 slotIndex) external pure returns (bytes32);
    function currentPeriod() external view returns (uint256);
    function getRequest(bytes32 requestId) external view returns (Request memory);
    function requestState(bytes32 requestId) external view returns (RequestState);
    function requestTimes(bytes32 requestId) external view returns (uint64, uint64, uint64);
    function slotState(bytes32 id) external view returns (SlotState);
    function getHost(bytes32 id) external view returns (address);
    function getActiveSlot(bytes32 id) external view returns (ActiveSlot memory);
    function missingProofs(bytes32 id) external view returns (uint256);
    function slotFilledAt(bytes32 id) external view returns (uint256);

    // periods and challenges (Marketplace)
    function anchorPeriods() external;
    function periodSeed(uint256 period) external view returns (bool ready, bool late, uint256 anchorBlock);
    function getChallenge(bytes32 id) external view returns (bytes32);
    function getEntropy(bytes32 id) external view returns (uint256);
    function entropyAt(bytes32 id, uint256 period) external view returns (uint256);
    function fillEntropy(bytes32 id, address filler) external view returns (uint256);
    function isProofRequired(bytes32 id) external view returns (bool);
    function willProofBeRequired(bytes32 id) external view returns (bool);

    // accusations (MarketplaceSettlement)
    function accuseMissingProof(bytes32 id, uint256 period) external payable;
    function defendProof(bytes32 id, uint256 period, uint256[8] calldata proof) external;
    function settleAccusation(bytes32 id, uint256 period) external;
    function accusation(bytes32 id, uint256 period) external view returns (address accuser, uint64 deadline);
    function claimEth() external;
    function ethCredit(address who) external view returns (uint256);

    // payouts and views (MarketplaceSettlement)
    function withdrawFunds(bytes32 requestId) external;
    function freeSlot(bytes32 id) external;
    function config() external view returns (MarketplaceConfig memory);
    function settlesAt(bytes32 requestId) external view returns (uint256);
    function reservationsTaken(bytes32 requestId) external view returns (uint256);
    function requestSlotCounts(bytes32 requestId) external view returns (uint256 filled, uint256 lost, uint256 repaired);
    function pendingLostSlots(bytes32 requestId) external view returns (uint16[] memory indices, uint256 repairOpened);
    function slotPayout(bytes32 id) external view returns (uint256);
    function withdrawableFunds(bytes32 requestId) external view returns (uint256);
}
