// SPDX-License-Identifier: MIT
// Marketplace: storage requests, reservations with deposits and fair dispersal, fills bound to
// the filler, periodic storage proofs, period anchoring and the slot views. Accusations,
// settlement, lazy repair's bookkeeping and payouts live in MarketplaceSettlement, to which
// every call this contract does not know is delegated.
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";
import {MarketplaceCore} from "./MarketplaceCore.sol";
import {MarketplaceSettlement} from "./MarketplaceSettlement.sol";
import {Ask, Request, ActiveSlot, MarketplaceConfig, RequestState, SlotState} from "./MarketplaceTypes.sol";

/// @title Vellum storage marketplace
/// @notice Money flows (all amounts in `token`, except accusation bonds, in ether):
///  - the client pays slots * slotSize * duration * pricePerBytePerSecond up front;
///  - a host reserves a slot with a deposit (part of the collateral) and then holds it alone
///    for `reservationDuration`; filling in time credits the deposit towards the collateral
///    (collateral = slotSize * collateralPerByte; a repairing host puts up collateral minus the
///    repair reward); a reservation that lapses unfilled forfeits its deposit to the client;
///  - each missed proof (an accusation the host did not answer) slashes slashPercentage% of the
///    collateral; validatorRewardPercentage% of that goes to the accuser, the rest to the client;
///  - after maxMissedProofs misses the host loses the slot and forfeits what is left of its
///    collateral to the client (minus the repair reward of whoever refills the slot);
///  - when the request stops (finished, failed or cancelled) every current host gets paid for
///    the time it held its slot plus its remaining collateral, and the client gets the rest.
///  The token balance always equals what is owed; the ether balance equals the open bonds plus
///  the ether credits not yet claimed.
contract Marketplace is MarketplaceCore {
    /// Where a slot's fill round stands.
    struct Round {
        bytes32 id; // slot id
        bytes32 key; // reservation and dispersal key of the round
        RequestData data;
        Ask ask;
        bool repair;
        uint256 origin; // when the round opened (dispersal windows grow from here)
        uint256 closesAt; // last second a fill is accepted
        bytes4 err; // why the round cannot be filled now (0: it can)
    }

    /// The settlement module (accusations, payouts, views off the hot path).
    address public immutable settlement;

    constructor(MarketplaceConfig memory c) MarketplaceCore(c) {
        settlement = address(new MarketplaceSettlement(c));
    }

    /// Every function not defined here runs in MarketplaceSettlement, on this contract's storage.
    fallback() external payable {
        address target = settlement;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// Plain ether is refused (bonds come with accuseMissingProof).
    receive() external payable {
        revert WrongBond();
    }

    // ------------------------------------------------------------------ requests

    /// @notice Publishes a storage request and takes its full payment from the caller.
    function requestStorage(Request calldata request) external returns (bytes32 requestId) {
        if (request.client != msg.sender) revert NotClient();
        Ask calldata ask = request.ask;
        if (
            ask.slots == 0 || ask.slotSize == 0 || ask.duration == 0 || ask.proofProbability == 0
                || ask.maxSlotLoss >= ask.slots || ask.repairThreshold == 0 || ask.repairThreshold > MAX_REPAIR_THRESHOLD
                || (ask.maxSlotLoss > 0 && ask.repairThreshold > ask.maxSlotLoss) || request.expiry == 0
                || request.expiry > MAX_REQUEST_EXPIRY || request.expiry >= ask.duration
                || uint256(request.content.merkleRoot) >= FIELD_R
                || block.timestamp + 2 * uint256(ask.duration) > type(uint32).max
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

    // ------------------------------------------------------------------ slots

    /// @notice Reserves a slot for the caller alone until the reservation lapses, taking the
    ///         deposit. Allowed once the caller's address is within the slot's dispersal window
    ///         (eligibleAt) and nobody else holds a live reservation of it.
    function reserveSlot(bytes32 requestId, uint64 slotIndex) external {
        (Round memory r, uint256 lapsesAt) = _reservable(requestId, slotIndex, msg.sender);
        if (r.err != 0) _raise(r.err);
        _leases[r.key] = uint256(uint160(msg.sender)) | lapsesAt << 160;
        _leasesTaken[requestId] += 1;
        emit SlotReserved(requestId, slotIndex, msg.sender, uint64(lapsesAt));
        _pull(msg.sender, _money(r.ask).deposit);
    }

    /// @notice Whether the caller may reserve the slot now.
    function canReserveSlot(bytes32 requestId, uint64 slotIndex) external view returns (bool) {
        (Round memory r,) = _reservable(requestId, slotIndex, msg.sender);
        return r.err == 0;
    }

    /// @notice The slot's current reservation: its holder and the last second it holds
    ///         (the holder is zero when there is none or the slot is not open).
    function reservation(bytes32 requestId, uint64 slotIndex) external view returns (address holder, uint64 lapsesAt) {
        Round memory r = _round(requestId, slotIndex);
        if (r.err != 0) return (address(0), 0);
        uint256 lease = _leases[r.key];
        return (address(uint160(lease)), uint64(lease >> 160));
    }

    /// @notice When `host` may first reserve the slot in its current fill round (fair
    ///         dispersal: the window around the round's random position widens linearly from
    ///         the round's opening until, after dispersalWindow seconds, it holds every address).
    ///         Reverts with the reason when the slot is not open to reservations.
    function eligibleAt(bytes32 requestId, uint64 slotIndex, address host) external view returns (uint256) {
        Round memory r = _round(requestId, slotIndex);
        if (r.err != 0) _raise(r.err);
        return _eligibleAt(r, host);
    }

    /// @notice Fills a slot the caller holds the reservation of, with a proof of storage (its
    ///         entropy bound to the caller: fillEntropy) and the collateral less the deposit.
    ///         Filling a slot that is open for repair pays the repair reward (as a collateral discount).
    function fillSlot(bytes32 requestId, uint64 slotIndex, uint256[8] calldata proof) external {
        Round memory r = _round(requestId, slotIndex);
        if (r.err != 0) _raise(r.err);
        uint256 lease = _leases[r.key];
        if (address(uint160(lease)) != msg.sender || block.timestamp > lease >> 160) revert NotReserved();

        uint256 period = _currentPeriod();
        (bool ready, uint256 entropy) = _fillEntropy(r.id, period, msg.sender);
        if (!ready) revert ChallengeNotReady();
        if (!_verify(requestId, entropy, slotIndex, proof)) revert InvalidProof();

        Money memory m = _money(r.ask);
        RequestData memory data = r.data;
        SlotData storage slot = _slots[r.id];
        slot.requestId = requestId;
        slot.host = msg.sender;
        slot.lastHandled = uint32(period);
        slot.filledAt = uint32(block.timestamp);
        slot.index = uint16(slotIndex);
        slot.missed = 0;
        // the fill is the proof of this period, and the host owes none for the period before
        // (a repairer refilling in period q must not be accused for q - 1)
        slot.flags = PREV_HANDLED;
        data.sumFilledAt += uint48(block.timestamp);
        uint256 collateral = m.collateral - m.deposit;
        if (r.repair) {
            data.refills += 1;
            collateral -= m.repairReward;
            emit SlotRepaired(requestId, slotIndex, msg.sender);
        } else {
            data.filled += 1;
            emit SlotFilled(requestId, slotIndex, msg.sender);
            if (data.filled == r.ask.slots) {
                data.state = RequestState.Started;
                data.startedAt = uint32(block.timestamp);
                emit RequestFulfilled(requestId);
            }
        }
        _data[requestId] = data;
        delete _leases[r.key];
        _pull(msg.sender, collateral);
    }

    /// @notice The slot's host proves it still stores the slot, once per period, in every
    ///         period up to the one that contains the request's end. Public inputs:
    ///         [merkleRoot, entropy, slotIndex].
    function submitProof(bytes32 id, uint256[8] calldata proof) external {
        SlotData storage slot = _slots[id];
        if (slot.host != msg.sender) revert NotSlotHost();
        uint256 lastHandled = slot.lastHandled;
        uint8 flags = slot.flags;
        uint256 index = slot.index;
        bytes32 requestId = slot.requestId;
        RequestData memory data = _data[requestId];
        uint256 period = _currentPeriod();
        if (data.state != RequestState.Started || period > _lastPeriod(data)) revert RequestNotRunning();
        if (lastHandled == period) revert ProofAlreadySubmitted();
        (bool ready, uint256 entropy) = _entropy(id, period);
        if (!ready) revert ChallengeNotReady();
        if (!_verify(requestId, entropy, index, proof)) revert InvalidProof();
        slot.lastHandled = uint32(period);
        slot.flags = lastHandled + 1 == period ? flags | PREV_HANDLED : flags & ~PREV_HANDLED;
        emit ProofSubmitted(id, period);
    }

    // ------------------------------------------------------------------ views

    function token() external view returns (IERC20) {
        return TOKEN;
    }

    function verifier() external view returns (IGroth16Verifier) {
        return VERIFIER;
    }

    function slotId(bytes32 requestId, uint64 slotIndex) external pure returns (bytes32) {
        return _slotId(requestId, slotIndex);
    }

    function currentPeriod() external view returns (uint256) {
        return _currentPeriod();
    }

    function getRequest(bytes32 requestId) external view returns (Request memory) {
        if (_data[requestId].state == RequestState.None) revert UnknownRequest();
        return _requests[requestId];
    }

    /// @notice The request's state; a started request reads Finished once the last period's
    ///         accusations can no longer be made or answered (settlesAt).
    function requestState(bytes32 requestId) public view returns (RequestState) {
        return _projectSettle(requestId).state;
    }

    /// @return startedAt, endsAt and expiresAt timestamps (startedAt is 0 until all slots are filled)
    function requestTimes(bytes32 requestId) external view returns (uint64, uint64, uint64) {
        RequestData memory data = _data[requestId];
        if (data.state == RequestState.None) revert UnknownRequest();
        return (data.startedAt, data.endsAt, uint64(_expiresAt(requestId, data)));
    }

    function slotState(bytes32 id) external view returns (SlotState) {
        SlotData memory slot = _slots[id];
        if (slot.requestId == 0) return SlotState.Free;
        if (slot.flags & PAID != 0) return SlotState.Paid;
        RequestData memory data = _projectSettle(slot.requestId);
        RequestState rs = data.state;
        if (slot.flags & LOST != 0) {
            bool open = uint16(slot.filledAt) <= data.repairOpenedUpTo && block.timestamp < data.endsAt;
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

    /// @notice Entropy public input for a periodic proof submitted now (challenge mod r);
    ///         reverts until the current period's seed is known.
    function getEntropy(bytes32 id) external view returns (uint256) {
        return entropyAt(id, _currentPeriod());
    }

    /// @notice Entropy public input for a periodic proof of `period` (lets a host prepare the
    ///         next period's proof ahead); reverts until that period's seed is known.
    function entropyAt(bytes32 id, uint256 period) public view returns (uint256 entropy) {
        bool ready;
        (ready, entropy) = _entropy(id, period);
        if (!ready) revert ChallengeNotReady();
    }

    /// @notice Entropy public input of a fill proof sent now by `filler`
    ///         (keccak256(challenge, filler) mod r); reverts until the current seed is known.
    function fillEntropy(bytes32 id, address filler) external view returns (uint256 entropy) {
        bool ready;
        (ready, entropy) = _fillEntropy(id, _currentPeriod(), filler);
        if (!ready) revert ChallengeNotReady();
    }

    /// @notice Whether the host of the slot must submit a proof for the current period (and has not yet).
    function isProofRequired(bytes32 id) external view returns (bool) {
        uint256 period = _currentPeriod();
        return _due(id, period) && _slots[id].lastHandled != period;
    }

    /// @notice Whether the slot's host will have to prove in the next period: its seed is already
    ///         known, so the host can prepare the proof ahead.
    function willProofBeRequired(bytes32 id) external view returns (bool) {
        return _due(id, _currentPeriod() + 1);
    }

    // ------------------------------------------------------------------ internals

    /// Whether the slot's current host owes a proof for `period` (ignoring whether it gave one):
    /// the request started before the period, the period overlaps its time, the challenge selects it.
    function _due(bytes32 id, uint256 period) private view returns (bool) {
        SlotData memory slot = _slots[id];
        if (slot.host == address(0)) return false;
        RequestData memory data = _data[slot.requestId];
        bool running = data.state == RequestState.Started && period > _periodOf(data.startedAt)
            && period <= _lastPeriod(data);
        return running && _selected(id, period, _requests[slot.requestId].ask.proofProbability);
    }

    /// Where slot `slotIndex` of the request stands: which fill round is open, since when,
    /// until when, or why none is.
    function _round(bytes32 requestId, uint64 slotIndex) private view returns (Round memory r) {
        r.data = _data[requestId];
        if (r.data.state == RequestState.None) {
            r.err = UnknownRequest.selector;
            return r;
        }
        r.ask = _requests[requestId].ask;
        if (slotIndex >= r.ask.slots) {
            r.err = InvalidSlotIndex.selector;
            return r;
        }
        r.id = _slotId(requestId, slotIndex);
        SlotData storage slot = _slots[r.id];
        uint256 round;
        if (r.data.state == RequestState.New) {
            r.closesAt = _expiresAt(requestId, r.data);
            r.origin = r.data.endsAt - r.ask.duration;
            if (block.timestamp > r.closesAt) r.err = RequestNotAccepting.selector;
            else if (slot.requestId != 0) r.err = SlotNotAvailable.selector;
        } else if (r.data.state == RequestState.Started && block.timestamp < r.data.endsAt) {
            round = uint16(slot.filledAt); // the loss ordinal while LOST
            r.repair = true;
            r.closesAt = r.data.endsAt - 1;
            r.origin = slot.lastHandled; // when repair opened for it
            if (slot.flags & LOST == 0 || round > r.data.repairOpenedUpTo) r.err = SlotNotAvailable.selector;
        } else {
            r.err = RequestNotAccepting.selector;
        }
        r.key = _roundKey(r.id, round);
    }

    /// The round's state for a host that wants to reserve now, and when its reservation would lapse.
    function _reservable(bytes32 requestId, uint64 slotIndex, address host)
        private
        view
        returns (Round memory r, uint256 lapsesAt)
    {
        r = _round(requestId, slotIndex);
        if (r.err != 0) return (r, 0);
        uint256 lease = _leases[r.key];
        if (block.timestamp <= lease >> 160) {
            r.err = address(uint160(lease)) == host ? AlreadyReserved.selector : SlotReservedByOther.selector;
        } else if (block.timestamp < _eligibleAt(r, host)) {
            r.err = NotYetEligible.selector;
        }
        lapsesAt = block.timestamp + RESERVATION_DURATION;
        if (lapsesAt > r.closesAt) lapsesAt = r.closesAt;
    }

    /// origin + dispersalWindow * d / 2^160, d the XOR distance between the host's address and
    /// the round's position (the low 160 bits of its key): the window around the position grows
    /// linearly, so the nearest of n hosts is first in line, each host about 1/n of the time.
    function _eligibleAt(Round memory r, address host) private view returns (uint256) {
        uint256 distance = uint160(uint256(r.key)) ^ uint160(host);
        return r.origin + (distance * DISPERSAL_WINDOW >> 160);
    }
}
