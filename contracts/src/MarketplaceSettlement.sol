// SPDX-License-Identifier: MIT
// MarketplaceSettlement: accusations of missing proofs (accuse, defend, settle), slot loss and
// the opening of lazy repair, payouts to hosts and clients, and the views off the hot path.
// It runs only by DELEGATECALL from the Marketplace, on the Marketplace's storage.
pragma solidity 0.8.37;

import {MarketplaceCore} from "./MarketplaceCore.sol";
import {Ask, MarketplaceConfig, RequestState} from "./MarketplaceTypes.sol";

/// @notice Proofs off the chain, the chain's half: a host need not submit its proofs; anyone
///         who finds a required proof missing after its period accuses it with a bond (in
///         ether, since it pays for the defence's gas). The host defends within the response
///         window by submitting the proof: the accusation is dismissed, defenceSharePercentage%
///         of the bond goes to the host and the rest back to the accuser. Undefended, the
///         accusation settles as a missed proof: the host is slashed, the accuser gets the
///         validator reward and its bond back, and after maxMissedProofs misses the slot is lost.
///         A request settles as Finished one response window after the last accusation of
///         its last period had to be answered; an accusation left unsettled until then, or
///         open when the request failed, only returns the bond.
contract MarketplaceSettlement is MarketplaceCore {
    address private immutable SELF;

    constructor(MarketplaceConfig memory c) MarketplaceCore(c) {
        SELF = address(this);
    }

    /// Runs only as the Marketplace's code (its storage); a direct call has nothing to act on.
    modifier delegated() {
        if (address(this) == SELF) revert NotDelegated();
        _;
    }

    // ------------------------------------------------------------------ accusations

    /// @notice Accuses the slot's host of missing the required proof of `period`, which must
    ///         have ended no more than proofTimeout ago and have no proof on chain. Takes the
    ///         bond (msg.value == accusationBond). One accusation per slot and period.
    function accuseMissingProof(bytes32 id, uint256 period) external payable delegated {
        if (msg.value != ACCUSATION_BOND) revert WrongBond();
        SlotData memory slot = _slots[id];
        if (slot.host == address(0)) revert SlotNotAvailable();
        RequestData memory data = _data[slot.requestId];
        if (data.state != RequestState.Started) revert RequestNotRunning();
        if (period >= _currentPeriod()) revert PeriodNotEnded();
        if (block.timestamp >= (period + 1) * PERIOD_LENGTH + PROOF_TIMEOUT) revert MarkingWindowClosed();
        if (period <= _periodOf(data.startedAt) || period > _lastPeriod(data)) revert ProofNotRequired();
        // proofTimeout <= periodLength, so only period current - 1 can be accused and
        // lastHandled is either <= period or period + 1
        uint256 last = slot.lastHandled;
        if (last == period || (last == period + 1 && slot.flags & PREV_HANDLED != 0)) revert ProofNotMissing();
        _cacheSeed(period); // the defence must find the period's seed however long it takes
        if (!_selected(id, period, _requests[slot.requestId].ask.proofProbability)) revert ProofNotRequired();

        SlotData storage s = _slots[id];
        if (last == period + 1) {
            s.flags = slot.flags | PREV_HANDLED;
        } else {
            s.flags = last + 1 == period ? slot.flags | PREV_HANDLED : slot.flags & ~PREV_HANDLED;
            s.lastHandled = uint32(period);
        }
        uint256 deadline = block.timestamp + RESPONSE_WINDOW;
        _accusations[_accusationKey(id, period)] =
            uint256(uint160(msg.sender)) | deadline << 160 | uint256(slot.filledAt) << 192;
        emit ProofAccused(id, period, msg.sender, uint64(deadline));
    }

    /// @notice The accused host answers with the period's proof before the deadline: the
    ///         accusation is dismissed and the bond shared between the host and the accuser.
    function defendProof(bytes32 id, uint256 period, uint256[8] calldata proof) external delegated {
        bytes32 key = _accusationKey(id, period);
        uint256 word = _accusations[key];
        if (word == 0) revert NoAccusation();
        if (block.timestamp > uint32(word >> 160)) revert ResponseWindowClosed();
        SlotData storage slot = _slots[id];
        if (slot.host != msg.sender || slot.filledAt != uint32(word >> 192)) revert NotSlotHost();
        bytes32 requestId = slot.requestId;
        (bool ready, uint256 entropy) = _entropy(id, period);
        if (!ready) revert ChallengeNotReady();
        if (!_verify(requestId, entropy, slot.index, proof)) revert InvalidProof();
        delete _accusations[key];
        emit AccusationDismissed(id, period);
        uint256 share = ACCUSATION_BOND * DEFENCE_SHARE_PERCENTAGE / 100;
        _payEth(msg.sender, share);
        _payEth(address(uint160(word)), ACCUSATION_BOND - share);
    }

    /// @notice After the response window, anyone settles an undefended accusation: a missed
    ///         proof (slash, the accuser's reward and bond back, the slot lost after too many).
    ///         If the accused host lost the slot meanwhile, the request failed, or the request
    ///         reached settlesAt, the accuser only gets its bond back.
    function settleAccusation(bytes32 id, uint256 period) external delegated {
        bytes32 key = _accusationKey(id, period);
        uint256 word = _accusations[key];
        if (word == 0) revert NoAccusation();
        if (block.timestamp <= uint32(word >> 160)) revert ResponseWindowOpen();
        delete _accusations[key];
        address accuser = address(uint160(word));
        SlotData memory slot = _slots[id];
        bytes32 requestId = slot.requestId;
        RequestData memory data = _data[requestId];
        uint256 reward;
        if (
            slot.host != address(0) && slot.filledAt == uint32(word >> 192) && data.state == RequestState.Started
                && block.timestamp < _settlesAt(data)
        ) {
            Ask memory ask = _requests[requestId].ask;
            slot.missed += 1;
            data.misses += 1;
            emit ProofMissed(id, period, slot.missed, accuser);
            if (slot.missed >= MAX_MISSED_PROOFS) {
                _loseSlot(id, slot, data, ask);
            } else {
                _slots[id].missed = slot.missed;
            }
            _data[requestId] = data;
            reward = _money(ask).validatorReward;
        }
        _push(accuser, reward);
        _payEth(accuser, ACCUSATION_BOND);
    }

    /// @notice The open accusation of the slot's period: the accuser (zero if none) and the
    ///         last second the host may defend.
    function accusation(bytes32 id, uint256 period) external view returns (address accuser, uint64 deadline) {
        uint256 a = _accusations[_accusationKey(id, period)];
        return (address(uint160(a)), uint32(a >> 160));
    }

    /// @notice Pays out the ether owed to the caller that could not be pushed to it.
    function claimEth() external delegated {
        uint256 amount = _ethCredits[msg.sender];
        _ethCredits[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Ether owed to `who` that it can claim with claimEth.
    function ethCredit(address who) external view returns (uint256) {
        return _ethCredits[who];
    }

    // ------------------------------------------------------------------ payouts

    /// @notice Client takes back what it is owed once the request was cancelled, failed or finished.
    function withdrawFunds(bytes32 requestId) external delegated {
        if (_requests[requestId].client != msg.sender) revert NotClient();
        RequestData memory data = _settle(requestId);
        if (data.stoppedAt == 0) revert RequestNotEnded();
        uint256 leases = _leasesTaken[requestId];
        if (leases & WITHDRAWN != 0) revert AlreadyWithdrawn();
        uint256 amount = _clientShare(requestId, data);
        _leasesTaken[requestId] = leases | WITHDRAWN;
        emit FundsWithdrawn(requestId, msg.sender, amount);
        _push(msg.sender, amount);
    }

    /// @notice After the request stopped, the host collects its payment and remaining collateral.
    function freeSlot(bytes32 id) external delegated {
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
        c.token = TOKEN;
        c.verifier = VERIFIER;
        c.periodLength = uint32(PERIOD_LENGTH);
        c.proofTimeout = uint32(PROOF_TIMEOUT);
        c.responseWindow = uint32(RESPONSE_WINDOW);
        c.maxMissedProofs = uint8(MAX_MISSED_PROOFS);
        c.slashPercentage = uint8(SLASH_PERCENTAGE);
        c.validatorRewardPercentage = uint8(VALIDATOR_REWARD_PERCENTAGE);
        c.repairRewardPercentage = uint8(REPAIR_REWARD_PERCENTAGE);
        c.reservationDepositPercentage = uint8(DEPOSIT_PERCENTAGE);
        c.reservationDuration = uint32(RESERVATION_DURATION);
        c.dispersalWindow = uint32(DISPERSAL_WINDOW);
        c.maxRequestExpiry = uint32(MAX_REQUEST_EXPIRY);
        c.accusationBond = uint96(ACCUSATION_BOND);
        c.defenceSharePercentage = uint8(DEFENCE_SHARE_PERCENTAGE);
    }

    /// @notice When a started request becomes Finished (0 before it starts).
    function settlesAt(bytes32 requestId) external view returns (uint256) {
        RequestData memory data = _data[requestId];
        return data.startedAt == 0 ? 0 : _settlesAt(data);
    }

    /// @notice Reservations taken on the request's slots so far (each fill uses one; the
    ///         deposits of the others are the client's).
    function reservationsTaken(bytes32 requestId) external view returns (uint256) {
        return _leasesTaken[requestId] & ~WITHDRAWN;
    }

    /// @return filled slots filled before the start, lost slots lost so far, repaired lost slots refilled
    function requestSlotCounts(bytes32 requestId) external view returns (uint256 filled, uint256 lost, uint256 repaired) {
        RequestData memory data = _data[requestId];
        return (data.filled, data.losses, data.refills);
    }

    /// @notice Lost slots not yet opened for repair (waiting for the threshold), in the order
    ///         they were lost, and how many losses have been opened so far.
    function pendingLostSlots(bytes32 requestId) external view returns (uint16[] memory indices, uint256 repairOpened) {
        RequestData memory data = _data[requestId];
        indices = _lostChain(requestId, data.lastLost, data.losses - data.repairOpenedUpTo);
        return (indices, data.repairOpenedUpTo);
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
        if (data.stoppedAt == 0 || _leasesTaken[requestId] & WITHDRAWN != 0) return 0;
        return _clientShare(requestId, data);
    }

    // ------------------------------------------------------------------ internals

    function _loseSlot(bytes32 id, SlotData memory slot, RequestData memory data, Ask memory ask) private {
        address host = slot.host;
        bytes32 requestId = slot.requestId;
        data.losses += 1;
        data.sumFilledAt -= slot.filledAt;
        SlotData storage s = _slots[id];
        s.host = address(0);
        s.flags = slot.flags | LOST;
        s.filledAt = uint32(data.losses) | uint32(data.lastLost) << 16; // ordinal, link to the loss before
        s.missed = slot.missed;
        s.lastHandled = uint32(block.timestamp); // when repair opened, if it opens now
        data.lastLost = slot.index + 1;
        emit SlotLost(requestId, slot.index, host);

        if (data.state != RequestState.Started) return;
        if (data.losses - data.refills > ask.maxSlotLoss) {
            data.state = RequestState.Failed;
            data.stoppedAt = uint32(block.timestamp < data.endsAt ? block.timestamp : data.endsAt);
            emit RequestFailed(requestId);
        } else if (block.timestamp < data.endsAt && data.losses - data.repairOpenedUpTo >= ask.repairThreshold) {
            uint256[] memory indices = new uint256[](data.losses - data.repairOpenedUpTo);
            uint256 link = data.lastLost;
            for (uint256 i = indices.length; i > 0; i--) {
                uint256 index = link - 1;
                indices[i - 1] = index;
                SlotData storage lost = i == indices.length ? s : _slots[_slotId(requestId, uint64(index))];
                link = lost.filledAt >> 16;
                // the slots lost earlier start their dispersal windows now too
                if (i < indices.length) lost.lastHandled = uint32(block.timestamp);
            }
            data.repairOpenedUpTo = data.losses;
            emit RepairOpened(requestId, indices);
        }
    }

    /// The last `count` lost slots, in loss order, following the links back from `link`.
    function _lostChain(bytes32 requestId, uint256 link, uint256 count) private view returns (uint16[] memory indices) {
        indices = new uint16[](count);
        for (uint256 i = count; i > 0; i--) {
            indices[i - 1] = uint16(link - 1);
            link = _slots[_slotId(requestId, uint64(link - 1))].filledAt >> 16;
        }
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

    function _hostPayout(SlotData memory slot, RequestData memory data, Ask memory ask)
        private
        view
        returns (uint256)
    {
        Money memory m = _money(ask);
        return m.pricePerSlotSecond * (data.stoppedAt - slot.filledAt) + m.collateral - slot.missed * m.slash;
    }

    /// payment + slashed (minus accuser rewards) + forfeited (minus repair rewards) + deposits of
    /// reservations never used - host payments
    function _clientShare(bytes32 requestId, RequestData memory data) private view returns (uint256) {
        Ask memory ask = _requests[requestId].ask;
        Money memory m = _money(ask);
        uint256 payment = uint256(ask.slots) * ask.duration * m.pricePerSlotSecond;
        uint256 unusedLeases = (_leasesTaken[requestId] & ~WITHDRAWN) - data.filled - data.refills;
        uint256 compensation = uint256(data.misses) * (m.slash - m.validatorReward)
            + uint256(data.losses) * m.forfeit - uint256(data.refills) * m.repairReward + unusedLeases * m.deposit;
        uint256 hosts = uint256(data.filled) + data.refills - data.losses;
        uint256 hostTime = hosts * data.stoppedAt - data.sumFilledAt;
        return payment + compensation - hostTime * m.pricePerSlotSecond;
    }

    /// Sends ether with the 2,300-gas stipend (no reentry into state changes); what cannot be
    /// sent is kept for the recipient to claim, so a recipient that refuses ether cannot block
    /// a defence or a settlement.
    function _payEth(address to, uint256 amount) private {
        if (amount > 0 && !payable(to).send(amount)) _ethCredits[to] += amount;
    }
}
