// SPDX-License-Identifier: MIT
// MarketplaceCore: the storage, configuration and shared rules of the marketplace's two contracts
// (Marketplace, the entry point, and MarketplaceSettlement, which it delegates to).
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";
import {ProofPeriods} from "./ProofPeriods.sol";
import {IMarketplaceErrors} from "./IMarketplaceEvents.sol";
import {Ask, Request, MarketplaceConfig, RequestState} from "./MarketplaceTypes.sol";

/// @notice Both contracts inherit this and declare no state of their own, so the settlement
///         code, run by DELEGATECALL, reads and writes the marketplace's storage with the same
///         layout. Configuration lives in immutables; both contracts are built from one config.
abstract contract MarketplaceCore is ProofPeriods, IMarketplaceErrors {
    /// Per-slot storage: two words, requestId and the packed hot fields.
    struct SlotData {
        bytes32 requestId;
        address host;
        uint32 lastHandled; // last period proven (or accused); the fill counts as a proof; while LOST
        // and open for repair: when repair opened (the round's dispersal window starts then)
        uint32 filledAt; // timestamp the current host filled the slot; while LOST: the loss ordinal
        // (low 16 bits) and 1 + the index of the slot lost before it in the request (high 16 bits)
        uint16 index;
        uint8 missed; // missed proofs of the current host
        uint8 flags; // PREV_HANDLED | LOST | PAID
    }

    /// Per-request bookkeeping, one storage word.
    struct RequestData {
        RequestState state;
        uint16 lastLost; // 1 + index of the slot lost last (0: none); lost slots link back from it
        uint16 filled; // slots filled before the start
        uint16 losses; // slots lost so far
        uint16 refills; // lost slots refilled so far
        uint16 repairOpenedUpTo; // losses[0 .. repairOpenedUpTo) are open for repair
        uint24 misses; // missed proofs so far (all hosts)
        uint32 startedAt;
        uint32 endsAt;
        uint32 stoppedAt; // set when the request reaches a terminal state
        uint48 sumFilledAt; // sum of filledAt over the current hosts
    }

    /// Amounts derived from an Ask and the configuration.
    struct Money {
        uint256 pricePerSlotSecond;
        uint256 collateral;
        uint256 slash;
        uint256 validatorReward;
        uint256 forfeit;
        uint256 repairReward;
        uint256 deposit;
    }

    /// Shortest period allowed: a period must not pass without a block (deployment checks the
    /// chain's own block interval against it too).
    uint256 internal constant MIN_PERIOD_LENGTH = 4;
    /// Most lost slots one repair can open at once (the opening lists them in one event).
    uint256 internal constant MAX_REPAIR_THRESHOLD = 128;

    uint8 internal constant PREV_HANDLED = 1; // period lastHandled - 1 was handled too
    uint8 internal constant LOST = 2;
    uint8 internal constant PAID = 4;

    IERC20 internal immutable TOKEN;
    IGroth16Verifier internal immutable VERIFIER;
    uint256 internal immutable PROOF_TIMEOUT;
    uint256 internal immutable RESPONSE_WINDOW;
    uint256 internal immutable MAX_MISSED_PROOFS;
    uint256 internal immutable SLASH_PERCENTAGE;
    uint256 internal immutable VALIDATOR_REWARD_PERCENTAGE;
    uint256 internal immutable REPAIR_REWARD_PERCENTAGE;
    uint256 internal immutable DEPOSIT_PERCENTAGE;
    uint256 internal immutable RESERVATION_DURATION;
    uint256 internal immutable DISPERSAL_WINDOW;
    uint256 internal immutable MAX_REQUEST_EXPIRY;
    uint256 internal immutable ACCUSATION_BOND;
    uint256 internal immutable DEFENCE_SHARE_PERCENTAGE;

    mapping(bytes32 => Request) internal _requests;
    mapping(bytes32 => RequestData) internal _data;
    /// Reservations taken per request (each fill uses one, the others' deposits go to the
    /// client), and WITHDRAWN once the client withdrew.
    mapping(bytes32 => uint256) internal _leasesTaken;
    uint256 internal constant WITHDRAWN = 1 << 255;
    mapping(bytes32 => SlotData) internal _slots;
    /// The reservation of a slot's fill round (key: _roundKey): holder | lapsesAt << 160.
    mapping(bytes32 => uint256) internal _leases;
    /// Open accusation of a slot's period (key: _accusationKey): accuser | deadline << 160 |
    /// the accused host's filledAt << 192.
    mapping(bytes32 => uint256) internal _accusations;
    /// Ether owed to addresses whose payout could not be pushed (see claimEth).
    mapping(address => uint256) internal _ethCredits;

    constructor(MarketplaceConfig memory c) ProofPeriods(c.periodLength) {
        if (
            address(c.token) == address(0) || address(c.verifier) == address(0)
                || c.periodLength < MIN_PERIOD_LENGTH || c.proofTimeout == 0 || c.proofTimeout > c.periodLength
                || c.responseWindow == 0 || c.responseWindow > c.periodLength || c.maxMissedProofs == 0
                || uint256(c.maxMissedProofs) * c.slashPercentage > 100 || c.validatorRewardPercentage > 100
                || uint256(c.repairRewardPercentage) + c.reservationDepositPercentage > 100
                || c.reservationDuration == 0 || c.maxRequestExpiry == 0 || c.defenceSharePercentage > 100
        ) revert InvalidConfig();
        TOKEN = c.token;
        VERIFIER = c.verifier;
        PROOF_TIMEOUT = c.proofTimeout;
        RESPONSE_WINDOW = c.responseWindow;
        MAX_MISSED_PROOFS = c.maxMissedProofs;
        SLASH_PERCENTAGE = c.slashPercentage;
        VALIDATOR_REWARD_PERCENTAGE = c.validatorRewardPercentage;
        REPAIR_REWARD_PERCENTAGE = c.repairRewardPercentage;
        DEPOSIT_PERCENTAGE = c.reservationDepositPercentage;
        RESERVATION_DURATION = c.reservationDuration;
        DISPERSAL_WINDOW = c.dispersalWindow;
        MAX_REQUEST_EXPIRY = c.maxRequestExpiry;
        ACCUSATION_BOND = c.accusationBond;
        DEFENCE_SHARE_PERCENTAGE = c.defenceSharePercentage;
    }

    function _slotId(bytes32 requestId, uint64 slotIndex) internal pure returns (bytes32) {
        return keccak256(abi.encode(requestId, slotIndex));
    }

    /// Reservations and dispersal positions are per slot and per fill round (0 for the first
    /// fill, the loss ordinal for a repair).
    function _roundKey(bytes32 id, uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, round));
    }

    function _accusationKey(bytes32 id, uint256 period) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, period, "accusation"));
    }

    function _expiresAt(bytes32 requestId, RequestData memory data) internal view returns (uint256) {
        Request storage request = _requests[requestId];
        return data.endsAt - request.ask.duration + request.expiry;
    }

    /// The last period that overlaps the request's time: its proofs are required too.
    function _lastPeriod(RequestData memory data) internal view returns (uint256) {
        return _periodOf(data.endsAt - 1);
    }

    /// When a started request becomes Finished: after the last period's accusation window, the
    /// response window of an accusation made at its very end, and one more response window in
    /// which to settle that accusation. Accusations still open then are only refunded.
    function _settlesAt(RequestData memory data) internal view returns (uint256) {
        return (_lastPeriod(data) + 1) * PERIOD_LENGTH + PROOF_TIMEOUT + 2 * RESPONSE_WINDOW;
    }

    /// The request's bookkeeping with a time-reached terminal state applied (Cancelled, Finished).
    function _projectSettle(bytes32 requestId) internal view returns (RequestData memory data) {
        data = _data[requestId];
        if (data.state == RequestState.New) {
            uint256 expiresAt = _expiresAt(requestId, data);
            if (block.timestamp > expiresAt) {
                data.state = RequestState.Cancelled;
                data.stoppedAt = uint32(expiresAt);
            }
        } else if (data.state == RequestState.Started && block.timestamp >= _settlesAt(data)) {
            data.state = RequestState.Finished;
            data.stoppedAt = data.endsAt;
        }
    }

    function _money(Ask memory ask) internal view returns (Money memory m) {
        m.pricePerSlotSecond = uint256(ask.slotSize) * ask.pricePerBytePerSecond;
        m.collateral = uint256(ask.slotSize) * ask.collateralPerByte;
        m.slash = m.collateral * SLASH_PERCENTAGE / 100;
        m.validatorReward = m.slash * VALIDATOR_REWARD_PERCENTAGE / 100;
        m.forfeit = m.collateral - MAX_MISSED_PROOFS * m.slash;
        m.repairReward = m.forfeit * REPAIR_REWARD_PERCENTAGE / 100;
        m.deposit = m.collateral * DEPOSIT_PERCENTAGE / 100;
    }

    /// Verifies a proof with public inputs [merkleRoot, entropy, slotIndex].
    function _verify(bytes32 requestId, uint256 entropy, uint256 index, uint256[8] calldata proof)
        internal
        view
        returns (bool)
    {
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(_requests[requestId].content.merkleRoot);
        inputs[1] = entropy;
        inputs[2] = index;
        return VERIFIER.verifyProof(proof, inputs);
    }

    function _pull(address from, uint256 amount) internal {
        if (amount > 0 && !TOKEN.transferFrom(from, address(this), amount)) revert TransferFailed();
    }

    function _push(address to, uint256 amount) internal {
        if (amount > 0 && !TOKEN.transfer(to, amount)) revert TransferFailed();
    }

    function _raise(bytes4 err) internal pure {
        assembly {
            mstore(0, err)
            revert(0, 4)
        }
    }
}
