// SPDX-License-Identifier: MIT
// Marketplace: storage requests, slot reservation and filling, periodic storage proofs,
// slashing of missed proofs, lazy repair of lost slots, and the payouts at the end.
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";
import {ProofPeriods} from "./ProofPeriods.sol";
import {IMarketplaceEvents, IMarketplaceErrors} from "./IMarketplaceEvents.sol";
import {
    Ask, Content, Request, ActiveSlot, MarketplaceConfig, RequestState, SlotState
} from "./MarketplaceTypes.sol";

/// @title Vellum storage marketplace
/// @notice Money flows (all amounts in `token`):
///  - the client pays slots * slotSize * duration * pricePerBytePerSecond up front;
///  - a host puts up collateral = slotSize * collateralPerByte per slot it fills (a host that
///    repairs a lost slot puts up collateral minus the repair reward: the reward is paid up front);
///  - each missed proof slashes slashPercentage% of the collateral; validatorRewardPercentage%
///    of that goes to whoever marked the miss, the rest to the client;
///  - after maxMissedProofs misses the host loses the slot and forfeits what is left of its
///    collateral to the client (minus the repair reward of whoever refills the slot);
///  - when the request stops (finished, failed or cancelled) every current host gets paid for
///    the time it held its slot plus its remaining collateral, and the client gets the rest.
///  The contract's token balance always equals the sum of what it still owes.
contract Marketplace is ProofPeriods, IMarketplaceErrors {
    /// Per-slot storage: two words, requestId and the packed hot fields.
    struct SlotData {
        bytes32 requestId;
        address host;
        uint32 lastHandled; // last period proven (or marked missing); the fill counts as a proof
        uint32 filledAt; // timestamp the current host filled the slot; while LOST: the loss ordinal
        uint16 index;
        uint8 missed; // missed proofs of the current host
        uint8 flags; // PREV_HANDLED | LOST | PAID
    }

    /// Per-request bookkeeping, one storage word.
    struct RequestData {
        RequestState state;
        bool withdrawn;
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
    }

    uint8 private constant PREV_HANDLED = 1; // period lastHandled - 1 was handled too
    uint8 private constant LOST = 2;
    uint8 private constant PAID = 4;

    IERC20 public immutable token;
    IGroth16Verifier public immutable verifier;
    uint256 private immutable PROOF_TIMEOUT;
    uint256 private immutable MAX_MISSED_PROOFS;
    uint256 private immutable SLASH_PERCENTAGE;
    uint256 private immutable VALIDATOR_REWARD_PERCENTAGE;
    uint256 private immutable REPAIR_REWARD_PERCENTAGE;
    uint256 private immutable MAX_REQUEST_EXPIRY;
    uint256 private immutable MAX_RESERVATIONS;

    mapping(bytes32 => Request) private _requests;
    mapping(bytes32 => RequestData) private _data;
    mapping(bytes32 => SlotData) private _slots;
    /// Lost slot indices per request in loss order, 16 uint16 lanes per word (count: losses).
    mapping(bytes32 => mapping(uint256 => uint256)) private _lostSlots;
    mapping(bytes32 => uint256) private _reservationCount;
    mapping(bytes32 => mapping(address => bool)) private _reserved;

    constructor(MarketplaceConfig memory c)
        ProofPeriods(c.periodLength)
    {
        if (
            address(c.token) == address(0) || address(c.verifier) == address(0) || c.periodLength == 0
                || c.proofTimeout == 0 || c.proofTimeout > c.periodLength || c.maxMissedProofs == 0
                || uint256(c.maxMissedProofs) * c.slashPercentage > 100 || c.validatorRewardPercentage > 100
                || c.repairRewardPercentage > 100 || c.maxRequestExpiry == 0 || c.maxReservations == 0
        ) revert InvalidConfig();
        token = c.token;
        verifier = c.verifier;
        PROOF_TIMEOUT = c.proofTimeout;
        MAX_MISSED_PROOFS = c.maxMissedProofs;
        SLASH_PERCENTAGE = c.slashPercentage;
        VALIDATOR_REWARD_PERCENTAGE = c.validatorRewardPercentage;
        REPAIR_REWARD_PERCENTAGE = c.repairRewardPercentage;
        MAX_REQUEST_EXPIRY = c.maxRequestExpiry;
        MAX_RESERVATIONS = c.maxReservations;
    }

    // ------------------------------------------------------------------ requests

    /// @notice Publishes a storage request and takes its full payment from the caller.
    function requestStorage(Request calldata request) external returns (bytes32 requestId) {
        if (request.client != msg.sender) revert NotClient();
        Ask calldata ask = request.ask;
        if (
            ask.slots == 0 || ask.slotSize == 0 || ask.duration == 0 || ask.proofProbability == 0
                || ask.maxSlotLoss >= ask.slots || ask.repairThreshold == 0
                || (ask.maxSlotLoss > 0 && ask.repairThreshold > ask.maxSlotLoss) || request.expiry == 0
                || request.expiry > MAX_REQUEST_EXPIRY || request.expiry >= ask.duration
                || uint256(request.content.merkleRoot) >= FIELD_R
                || block.timestamp + ask.duration > type(uint32).max
        ) revert InvalidRequest();

        requestId = keccak256(abi.encode(request));
        RequestData storage data = _data[requestId];
        if (data.state != RequestState.None) revert RequestExists();

        uint256 payment = uint256(ask.slots) * ask.slotSize * ask.duration * ask.pricePerBytePerSecond;
        uint32 endsAt = uint32(block.timestamp + ask.duration);
        _requests[requestId] = request;
        data.state = RequestState.New;
        data.endsAt = endsAt;

        emit StorageRequested(requestId, msg.sender, ask, uint64(block.timestamp + request.expiry), endsAt);
        _pull(msg.sender, payment);
    }

    /// @notice Client takes back what it is owed once the request was cancelled, failed or finished.
    function withdrawFunds(bytes32 requestId) external {
        Request storage request = _requests[requestId];
        if (request.client != msg.sender) revert NotClient();
        RequestData memory data = _settle(requestId);
        if (data.stoppedAt == 0) revert RequestNotEnded();
        if (data.withdrawn) revert AlreadyWithdrawn();
        uint256 amount = _clientShare(data, request.ask);
        _data[requestId].withdrawn = true;
        emit FundsWithdrawn(requestId, msg.sender, amount);
        _push(msg.sender, amount);
    }

    // ------------------------------------------------------------------ slots

    /// @notice Reserves the right to fill a slot (a few hosts per slot).
    function reserveSlot(bytes32 requestId, uint64 slotIndex) external {
        (bytes32 key, uint256 count, bytes4 err) = _reservation(requestId, slotIndex, msg.sender);
        if (err != 0) _raise(err);
        _reservationCount[key] = count + 1;
        _reserved[key][msg.sender] = true;
        emit SlotReserved(requestId, slotIndex, msg.sender);
    }

    /// @notice Whether the caller may reserve the slot now.
    function canReserveSlot(bytes32 requestId, uint64 slotIndex) external view returns (bool) {
        (,, bytes4 err) = _reservation(requestId, slotIndex, msg.sender);
        return err == 0;
    }

    /// @notice Fills a reserved slot with a proof of storage and the slot's collateral.
    ///         Filling a slot that is open for repair pays the repair reward (as a collateral discount).
    function fillSlot(bytes32 requestId, uint64 slotIndex, uint256[8] calldata proof) external {
        (bytes32 id, RequestData memory data, Ask memory ask, bool repair, uint256 round, bytes4 err) =
            _fillable(requestId, slotIndex);
        if (err != 0) _raise(err);
        if (!_reserved[_reservationKey(id, round)][msg.sender]) revert NotReserved();

        uint256 period = _currentPeriod();
        if (!_verify(requestId, id, slotIndex, period, proof)) revert InvalidProof();

        Money memory m = _money(ask);
        SlotData storage slot = _slots[id];
        slot.requestId = requestId;
        slot.host = msg.sender;
        slot.lastHandled = uint32(period);
        slot.filledAt = uint32(block.timestamp);
        slot.index = uint16(slotIndex);
        slot.missed = 0;
        // the fill is the proof of this period, and the host owes none for the period before
        // (a repairer refilling in period q must not be marked for q - 1)
        slot.flags = PREV_HANDLED;
        data.sumFilledAt += uint48(block.timestamp);
        uint256 collateral = m.collateral;
        if (repair) {
            data.refills += 1;
            collateral -= m.repairReward;
            emit SlotRepaired(requestId, slotIndex, msg.sender);
        } else {
            data.filled += 1;
            emit SlotFilled(requestId, slotIndex, msg.sender);
            if (data.filled == ask.slots) {
                data.state = RequestState.Started;
                data.startedAt = uint32(block.timestamp);
                emit RequestFulfilled(requestId);
            }
        }
        _data[requestId] = data;
        _pull(msg.sender, collateral);
    }

    /// @notice The slot's host proves it still stores the slot, once per period.
    ///         Public inputs: [merkleRoot, entropy, slotIndex].
    function submitProof(bytes32 id, uint256[8] calldata proof) external {
        SlotData storage slot = _slots[id];
        if (slot.host != msg.sender) revert NotSlotHost();
        uint256 lastHandled = slot.lastHandled;
        uint8 flags = slot.flags;
        uint256 index = slot.index;
        bytes32 requestId = slot.requestId;
        RequestData storage data = _data[requestId];
        if (data.state != RequestState.Started || block.timestamp >= data.endsAt) revert RequestNotRunning();
        uint256 period = _currentPeriod();
        if (lastHandled == period) revert ProofAlreadySubmitted();
        if (!_verify(requestId, id, index, period, proof)) revert InvalidProof();
        slot.lastHandled = uint32(period);
        slot.flags = lastHandled + 1 == period ? flags | PREV_HANDLED : flags & ~PREV_HANDLED;
        emit ProofSubmitted(id, period);
    }

    /// @notice Anyone may mark a required proof that was not submitted, after its period ended
    ///         and before the timeout. The host is slashed and the caller rewarded; after
    ///         maxMissedProofs misses the host loses the slot.
    function markProofAsMissing(bytes32 id, uint256 period) external {
        SlotData memory slot = _slots[id];
        if (slot.host == address(0)) revert SlotNotAvailable();
        RequestData memory data = _data[slot.requestId];
        if (data.state != RequestState.Started || block.timestamp >= data.endsAt) revert RequestNotRunning();
        if (period >= _currentPeriod()) revert PeriodNotEnded();
        if (block.timestamp >= (period + 1) * PERIOD_LENGTH + PROOF_TIMEOUT) revert MarkingWindowClosed();
        if (period <= _periodOf(data.startedAt)) revert ProofNotRequired();
        // Only period current-1 can be marked (timeout <= period length), so lastHandled is
        // either <= period or period + 1.
        uint256 last = slot.lastHandled;
        if (last == period || (last == period + 1 && slot.flags & PREV_HANDLED != 0)) revert ProofNotMissing();
        Ask memory ask = _requests[slot.requestId].ask;
        if (!_selected(id, period, ask.proofProbability)) revert ProofNotRequired();

        if (last == period + 1) {
            slot.flags |= PREV_HANDLED;
        } else {
            slot.flags = last + 1 == period ? slot.flags | PREV_HANDLED : slot.flags & ~PREV_HANDLED;
            slot.lastHandled = uint32(period);
        }
        slot.missed += 1;
        data.misses += 1;
        Money memory m = _money(ask);
        emit ProofMissed(id, period, slot.missed, msg.sender);

        if (slot.missed >= MAX_MISSED_PROOFS) {
            _loseSlot(id, slot, data, ask);
        } else {
            _storeSlotHot(id, slot);
        }
        _data[slot.requestId] = data;
        if (m.validatorReward > 0) _push(msg.sender, m.validatorReward);
    }

    /// @notice After the request stopped, the host collects its payment and remaining collateral.
    function freeSlot(bytes32 id) external {
        SlotData storage slot = _slots[id];
        if (slot.host != msg.sender) revert NotSlotHost();
        if (slot.flags & PAID != 0) revert AlreadyPaid();
        bytes32 requestId = slot.requestId;
        RequestData memory data = _settle(requestId);
        if (data.stoppedAt == 0) revert RequestNotEnded();
        uint256 amount = _hostPayout(slot, data, _requests[requestId].ask);
        slot.flags |= PAID;
        emit SlotFreed(requestId, slot.index, msg.sender, amount);
        _push(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    function config() external view returns (MarketplaceConfig memory c) {
        c.token = token;
        c.verifier = verifier;
        c.periodLength = uint32(PERIOD_LENGTH);
        c.proofTimeout = uint32(PROOF_TIMEOUT);
        c.maxMissedProofs = uint8(MAX_MISSED_PROOFS);
        c.slashPercentage = uint8(SLASH_PERCENTAGE);
        c.validatorRewardPercentage = uint8(VALIDATOR_REWARD_PERCENTAGE);
        c.repairRewardPercentage = uint8(REPAIR_REWARD_PERCENTAGE);
        c.maxRequestExpiry = uint32(MAX_REQUEST_EXPIRY);
        c.maxReservations = uint8(MAX_RESERVATIONS);
    }

    function slotId(bytes32 requestId, uint64 slotIndex) public pure returns (bytes32) {
        return keccak256(abi.encode(requestId, slotIndex));
    }

    function currentPeriod() external view returns (uint256) {
        return _currentPeriod();
    }

    function getRequest(bytes32 requestId) external view returns (Request memory) {
        if (_data[requestId].state == RequestState.None) revert UnknownRequest();
        return _requests[requestId];
    }

    function requestState(bytes32 requestId) public view returns (RequestState) {
        RequestData memory data = _data[requestId];
        if (data.state == RequestState.New && block.timestamp > _expiresAt(requestId, data)) {
            return RequestState.Cancelled;
        }
        if (data.state == RequestState.Started && block.timestamp >= data.endsAt) return RequestState.Finished;
        return data.state;
    }

    /// @return startedAt, endsAt and expiresAt timestamps (startedAt is 0 until all slots are filled)
    function requestTimes(bytes32 requestId) external view returns (uint64, uint64, uint64) {
        RequestData memory data = _data[requestId];
        if (data.state == RequestState.None) revert UnknownRequest();
        return (data.startedAt, data.endsAt, _expiresAt(requestId, data));
    }

    /// @return filled slots filled before the start, lost slots lost so far, repaired lost slots refilled
    function requestSlotCounts(bytes32 requestId) external view returns (uint256 filled, uint256 lost, uint256 repaired) {
        RequestData memory data = _data[requestId];
        return (data.filled, data.losses, data.refills);
    }

    /// @notice Slot indices lost so far, in the order they were lost, and how many of the first
    ///         ones have been opened for repair.
    function lostSlots(bytes32 requestId) external view returns (uint16[] memory indices, uint256 repairOpened) {
        RequestData memory data = _data[requestId];
        indices = new uint16[](data.losses);
        for (uint256 i = 0; i < indices.length; i++) {
            indices[i] = _lostSlotAt(requestId, i);
        }
        return (indices, data.repairOpenedUpTo);
    }

    function slotState(bytes32 id) public view returns (SlotState) {
        SlotData memory slot = _slots[id];
        if (slot.requestId == 0) return SlotState.Free;
        if (slot.flags & PAID != 0) return SlotState.Paid;
        RequestState rs = requestState(slot.requestId);
        if (slot.flags & LOST != 0) {
            bool open = slot.filledAt <= _data[slot.requestId].repairOpenedUpTo;
            return open && rs == RequestState.Started ? SlotState.Repair : SlotState.Lost;
        }
        if (rs == RequestState.Finished) return SlotState.Finished;
        if (rs == RequestState.Failed) return SlotState.Failed;
        if (rs == RequestState.Cancelled) return SlotState.Cancelled;
        return SlotState.Filled;
    }

    function getHost(bytes32 id) external view returns (address) {
        return _slots[id].host;
    }

    function getActiveSlot(bytes32 id) external view returns (ActiveSlot memory) {
        SlotData memory slot = _slots[id];
        if (slot.host == address(0)) revert SlotNotAvailable();
        return ActiveSlot(_requests[slot.requestId], slot.index);
    }

    /// @notice Missed proofs of the slot's current host.
    function missingProofs(bytes32 id) external view returns (uint256) {
        return _slots[id].missed;
    }

    /// @notice Timestamp the current host filled the slot (0 if none).
    function slotFilledAt(bytes32 id) external view returns (uint256) {
        SlotData memory slot = _slots[id];
        return slot.host == address(0) ? 0 : slot.filledAt;
    }

    /// @notice What freeSlot would pay the host now (0 while the request runs or when nothing is owed).
    function slotPayout(bytes32 id) external view returns (uint256) {
        SlotData memory slot = _slots[id];
        if (slot.host == address(0) || slot.flags & PAID != 0) return 0;
        RequestData memory data = _projectSettle(slot.requestId);
        if (data.stoppedAt == 0) return 0;
        return _hostPayout(slot, data, _requests[slot.requestId].ask);
    }

    /// @notice What withdrawFunds would pay the client now (0 while the request runs or after withdrawal).
    function withdrawableFunds(bytes32 requestId) external view returns (uint256) {
        RequestData memory data = _projectSettle(requestId);
        if (data.stoppedAt == 0 || data.withdrawn) return 0;
        return _clientShare(data, _requests[requestId].ask);
    }

    // ------------------------------------------------------------------ periods and challenges

    /// @notice Anchors the seed of the next period (and of the current one, late, if nobody did),
    ///         and stores the seeds of the previous, current and next periods once their blocks
    ///         exist. Anyone may call it; validators do twice per period. See ProofPeriods.
    function anchorPeriods() external {
        _anchorPeriods();
    }

    /// @notice A period's seed: known yet, anchored late (no proofs required), the anchor block.
    function periodSeed(uint256 period) external view returns (bool ready, bool late, uint256 anchorBlock) {
        (ready, late,, anchorBlock) = _seed(period);
    }

    /// @notice The slot's challenge in the current period; reverts until the period's seed is known.
    function getChallenge(bytes32 id) external view returns (bytes32) {
        (bool ready,, bytes32 challenge) = _challenge(id, _currentPeriod());
        if (!ready) revert ChallengeNotReady();
        return challenge;
    }

    /// @notice Entropy public input for a proof submitted now (challenge mod r); reverts until
    ///         the current period's seed is known.
    function getEntropy(bytes32 id) external view returns (uint256) {
        return entropyAt(id, _currentPeriod());
    }

    /// @notice Entropy public input for a proof of `period` (lets a host prepare the next
    ///         period's proof ahead); reverts until that period's seed is known.
    function entropyAt(bytes32 id, uint256 period) public view returns (uint256 entropy) {
        bool ready;
        (ready, entropy) = _entropy(id, period);
        if (!ready) revert ChallengeNotReady();
    }

    /// @notice Whether the host of the slot must submit a proof for the current period (and has not yet).
    function isProofRequired(bytes32 id) external view returns (bool) {
        uint256 period = _currentPeriod();
        return _due(id, period, block.timestamp) && _slots[id].lastHandled != period;
    }

    /// @notice Whether the slot's host will have to prove in the next period: its seed is already
    ///         known, so the host can prepare the proof ahead.
    function willProofBeRequired(bytes32 id) external view returns (bool) {
        uint256 next = _currentPeriod() + 1;
        return _due(id, next, next * PERIOD_LENGTH);
    }

    // ------------------------------------------------------------------ internals

    /// Whether the slot's current host owes a proof for `period`, asked at `time` (ignoring
    /// whether it gave one).
    function _due(bytes32 id, uint256 period, uint256 time) private view returns (bool) {
        SlotData memory slot = _slots[id];
        if (slot.host == address(0)) return false;
        RequestData memory data = _data[slot.requestId];
        bool running = data.state == RequestState.Started && time < data.endsAt
            && period > _periodOf(data.startedAt);
        return running && _selected(id, period, _requests[slot.requestId].ask.proofProbability);
    }

    function _verify(bytes32 requestId, bytes32 id, uint256 index, uint256 period, uint256[8] calldata proof)
        private
        view
        returns (bool)
    {
        (bool ready, uint256 entropy) = _entropy(id, period);
        if (!ready) revert ChallengeNotReady();
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(_requests[requestId].content.merkleRoot);
        inputs[1] = entropy;
        inputs[2] = index;
        return verifier.verifyProof(proof, inputs);
    }

    /// Checks whether slot `slotIndex` of the request can be filled now.
    function _fillable(bytes32 requestId, uint64 slotIndex)
        private
        view
        returns (bytes32 id, RequestData memory data, Ask memory ask, bool repair, uint256 round, bytes4 err)
    {
        data = _data[requestId];
        if (data.state == RequestState.None) return (id, data, ask, false, 0, UnknownRequest.selector);
        ask = _requests[requestId].ask;
        if (slotIndex >= ask.slots) return (id, data, ask, false, 0, InvalidSlotIndex.selector);
        id = slotId(requestId, slotIndex);
        SlotData storage slot = _slots[id];
        if (data.state == RequestState.New) {
            if (block.timestamp > _expiresAt(requestId, data)) err = RequestNotAccepting.selector;
            else if (slot.requestId != 0) err = SlotNotAvailable.selector;
        } else if (data.state == RequestState.Started && block.timestamp < data.endsAt) {
            round = slot.filledAt; // the loss ordinal while LOST
            repair = true;
            if (slot.flags & LOST == 0 || round > data.repairOpenedUpTo) err = SlotNotAvailable.selector;
        } else {
            err = RequestNotAccepting.selector;
        }
    }

    function _reservation(bytes32 requestId, uint64 slotIndex, address host)
        private
        view
        returns (bytes32 key, uint256 count, bytes4 err)
    {
        bytes32 id;
        uint256 round;
        (id,,,, round, err) = _fillable(requestId, slotIndex);
        if (err != 0) return (key, 0, err);
        key = _reservationKey(id, round);
        count = _reservationCount[key];
        if (_reserved[key][host]) err = AlreadyReserved.selector;
        else if (count >= MAX_RESERVATIONS) err = ReservationsFull.selector;
    }

    /// Reservations are per slot and per fill round (0 for the first fill, the loss ordinal for repairs).
    function _reservationKey(bytes32 id, uint256 round) private pure returns (bytes32) {
        return keccak256(abi.encode(id, round));
    }

    function _loseSlot(bytes32 id, SlotData memory slot, RequestData memory data, Ask memory ask) private {
        address host = slot.host;
        bytes32 requestId = slot.requestId;
        data.losses += 1;
        data.sumFilledAt -= slot.filledAt;
        uint256 ordinal = data.losses - 1;
        _lostSlots[requestId][ordinal / 16] |= uint256(slot.index) << (16 * (ordinal % 16));
        slot.host = address(0);
        slot.flags |= LOST;
        slot.filledAt = data.losses;
        _storeSlotHot(id, slot);
        emit SlotLost(requestId, slot.index, host);

        if (data.losses - data.refills > ask.maxSlotLoss) {
            data.state = RequestState.Failed;
            data.stoppedAt = uint32(block.timestamp);
            emit RequestFailed(requestId);
        } else if (data.losses - data.repairOpenedUpTo >= ask.repairThreshold) {
            uint256[] memory indices = new uint256[](data.losses - data.repairOpenedUpTo);
            for (uint256 i = 0; i < indices.length; i++) {
                indices[i] = _lostSlotAt(requestId, data.repairOpenedUpTo + i);
            }
            data.repairOpenedUpTo = data.losses;
            emit RepairOpened(requestId, indices);
        }
    }

    function _lostSlotAt(bytes32 requestId, uint256 ordinal) private view returns (uint16) {
        return uint16(_lostSlots[requestId][ordinal / 16] >> (16 * (ordinal % 16)));
    }

    /// Writes the hot word of a slot (requestId and index are unchanged).
    function _storeSlotHot(bytes32 id, SlotData memory slot) private {
        SlotData storage s = _slots[id];
        s.host = slot.host;
        s.lastHandled = slot.lastHandled;
        s.filledAt = slot.filledAt;
        s.missed = slot.missed;
        s.flags = slot.flags;
    }

    /// Moves a request whose time ran out to its terminal state (Cancelled or Finished).
    function _settle(bytes32 requestId) private returns (RequestData memory data) {
        RequestState before = _data[requestId].state;
        data = _projectSettle(requestId);
        if (data.state != before) {
            _data[requestId] = data;
            if (data.state == RequestState.Cancelled) emit RequestCancelled(requestId);
            else emit RequestFinished(requestId);
        }
    }

    function _projectSettle(bytes32 requestId) private view returns (RequestData memory data) {
        data = _data[requestId];
        if (data.state == RequestState.New) {
            uint256 expiresAt = _expiresAt(requestId, data);
            if (block.timestamp > expiresAt) {
                data.state = RequestState.Cancelled;
                data.stoppedAt = uint32(expiresAt);
            }
        } else if (data.state == RequestState.Started && block.timestamp >= data.endsAt) {
            data.state = RequestState.Finished;
            data.stoppedAt = data.endsAt;
        }
    }

    function _expiresAt(bytes32 requestId, RequestData memory data) private view returns (uint64) {
        Request storage request = _requests[requestId];
        return uint64(data.endsAt - request.ask.duration + request.expiry);
    }

    function _money(Ask memory ask) private view returns (Money memory m) {
        m.pricePerSlotSecond = uint256(ask.slotSize) * ask.pricePerBytePerSecond;
        m.collateral = uint256(ask.slotSize) * ask.collateralPerByte;
        m.slash = m.collateral * SLASH_PERCENTAGE / 100;
        m.validatorReward = m.slash * VALIDATOR_REWARD_PERCENTAGE / 100;
        m.forfeit = m.collateral - MAX_MISSED_PROOFS * m.slash;
        m.repairReward = m.forfeit * REPAIR_REWARD_PERCENTAGE / 100;
    }

    function _hostPayout(SlotData memory slot, RequestData memory data, Ask memory ask)
        private
        view
        returns (uint256)
    {
        Money memory m = _money(ask);
        return m.pricePerSlotSecond * (data.stoppedAt - slot.filledAt) + m.collateral - slot.missed * m.slash;
    }

    /// payment + slashed (minus validator rewards) + forfeited (minus repair rewards) - host payments
    function _clientShare(RequestData memory data, Ask memory ask) private view returns (uint256) {
        Money memory m = _money(ask);
        uint256 payment = uint256(ask.slots) * ask.duration * m.pricePerSlotSecond;
        uint256 compensation = uint256(data.misses) * (m.slash - m.validatorReward)
            + uint256(data.losses) * m.forfeit - uint256(data.refills) * m.repairReward;
        uint256 hosts = uint256(data.filled) + data.refills - data.losses;
        uint256 hostTime = hosts * data.stoppedAt - data.sumFilledAt;
        return payment + compensation - hostTime * m.pricePerSlotSecond;
    }

    function _pull(address from, uint256 amount) private {
        if (amount > 0 && !token.transferFrom(from, address(this), amount)) revert TransferFailed();
    }

    function _push(address to, uint256 amount) private {
        if (amount > 0 && !token.transfer(to, amount)) revert TransferFailed();
    }

    function _raise(bytes4 err) private pure {
        assembly {
            mstore(0, err)
            revert(0, 4)
        }
    }
}
