// SPDX-License-Identifier: MIT
// Marketplace tests: slot loss, lazy repair (threshold, RepairOpened, refill reward) and failure.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceRepairTest is MarketplaceBase {
    bytes32 internal id;
    Request internal req;

    function setUp() public override {
        super.setUp();
        req = _newRequest(5);
        req.ask.maxSlotLoss = 2;
        req.ask.repairThreshold = 2;
        id = _submitRequest(req);
        _fillAll(id, 5);
    }

    /// Slot `index` misses `n` proofs in a row (other slots keep proving).
    function _missTimes(uint256 index, uint256 n) internal {
        for (uint256 k = 0; k < n; k++) {
            _missOnce(id, index);
        }
    }

    function testSlotLostAfterMaxMisses() public {
        _missTimes(0, 2);
        bytes32 s = _slot(id, 0);
        assertEq(market.getHost(s), hosts[0]);
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _nextPeriod(1);
        _accuseAndWait(s, period);
        vm.expectEmit(true, true, false, true, address(market));
        emit SlotLost(id, 0, hosts[0]);
        _settle(s, period);
        assertEq(market.getHost(s), address(0));
        assertTrue(market.slotState(s) == SlotState.Lost); // threshold 2 not reached
        (uint16[] memory lost, uint256 opened) = market.pendingLostSlots(id);
        assertEq(lost.length, 1);
        assertEq(lost[0], 0);
        assertEq(opened, 0);
        // the lost host can neither prove nor free
        uint256[8] memory proof = _proof(id, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(NotSlotHost.selector);
        market.submitProof(s, proof);
        // not yet open for repair
        vm.prank(hosts[4]);
        assertFalse(market.canReserveSlot(id, 0));
        assertTrue(market.requestState(id) == RequestState.Started);
    }

    function testRepairOpensAtThresholdAndRefillEarnsReward() public {
        _missTimes(0, 3);
        _missTimes(1, 2);
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _nextPeriod(1);
        uint256[] memory indices = new uint256[](2);
        indices[0] = 0;
        indices[1] = 1;
        _accuseAndWait(_slot(id, 1), period);
        vm.expectEmit(true, false, false, true, address(market));
        emit RepairOpened(id, indices);
        _settle(_slot(id, 1), period);
        assertTrue(market.slotState(_slot(id, 0)) == SlotState.Repair);
        assertTrue(market.slotState(_slot(id, 1)) == SlotState.Repair);

        // a new host refills slot 1, paying collateral minus the repair reward
        uint256 collateral = _collateral(req);
        uint256 forfeit = collateral - 3 * (collateral * 10 / 100);
        uint256 reward = forfeit * 10 / 100;
        address repairer = hosts[4];
        uint256 before = token.balanceOf(repairer);
        _reserve(id, 1, repairer);
        uint256[8] memory proof = _fillProof(id, 1, repairer);
        vm.expectEmit(true, true, false, true, address(market));
        emit SlotRepaired(id, 1, repairer);
        vm.prank(repairer);
        market.fillSlot(id, 1, proof);
        assertEq(before - token.balanceOf(repairer), collateral - reward);
        assertEq(market.getHost(_slot(id, 1)), repairer);
        assertTrue(market.slotState(_slot(id, 1)) == SlotState.Filled);
        (,, uint256 repaired) = market.requestSlotCounts(id);
        assertEq(repaired, 1);

        // at the end the repairer gets its full collateral back plus payment since the refill
        uint256 filledAt = block.timestamp;
        _warpToSettled(id);
        (, uint64 endsAt,) = market.requestTimes(id);
        before = token.balanceOf(repairer);
        vm.prank(repairer);
        market.freeSlot(_slot(id, 1));
        uint256 perSecond = uint256(req.ask.slotSize) * req.ask.pricePerBytePerSecond;
        assertEq(token.balanceOf(repairer) - before, collateral + (endsAt - filledAt) * perSecond);
        _drain();
    }

    function testRequestFailsWhenTooManySlotsLost() public {
        _missTimes(0, 3);
        _missTimes(1, 3); // opens repair for 0 and 1
        _missTimes(2, 2);
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _nextPeriod(1);
        _accuseAndWait(_slot(id, 2), period);
        vm.expectEmit(true, false, false, true, address(market));
        emit RequestFailed(id);
        _settle(_slot(id, 2), period);
        assertTrue(market.requestState(id) == RequestState.Failed);
        assertTrue(market.slotState(_slot(id, 3)) == SlotState.Failed);
        // no more proofs, marks or fills
        vm.prank(validator);
        vm.expectRevert(RequestNotRunning.selector);
        market.accuseMissingProof{value: BOND}(_slot(id, 3), period);
        vm.prank(hosts[4]);
        assertFalse(market.canReserveSlot(id, 0));

        // healthy hosts get collateral and payment for the time served
        (,, uint64 stop) = (uint64(0), uint64(0), uint64(block.timestamp));
        uint256 perSecond = uint256(req.ask.slotSize) * req.ask.pricePerBytePerSecond;
        uint256 before = token.balanceOf(hosts[3]);
        vm.prank(hosts[3]);
        market.freeSlot(_slot(id, 3));
        assertEq(token.balanceOf(hosts[3]) - before, _collateral(req) + (stop - START_TIME) * perSecond);
        _drain();
    }

    /// A host that refills a slot answers for the periods from its fill on, not for the period
    /// before (when the slot had no host, or another one).
    function testRepairerIsNotMarkedForThePeriodBeforeItsFill() public {
        _missTimes(0, 3);
        _missTimes(1, 3); // opens repair for 0 and 1 in the current period
        uint256 before = market.currentPeriod() - 1;
        _fill(id, 0, hosts[4]);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.accuseMissingProof{value: BOND}(_slot(id, 0), before);
        // from the next period on it answers as any host
        _nextPeriod(1);
        uint256 first = market.currentPeriod();
        _nextPeriod(1);
        _mark(_slot(id, 0), first);
        assertEq(market.missingProofs(_slot(id, 0)), 1);
        _drain();
    }

    function testHostOfRepairedSlotCanLoseItAgain() public {
        _missTimes(0, 3);
        _missTimes(1, 3);
        _fill(id, 0, hosts[4]);
        _missTimes(0, 3);
        assertEq(market.getHost(_slot(id, 0)), address(0));
        (, uint256 lostCount,) = market.requestSlotCounts(id);
        assertEq(lostCount, 3);
        (uint16[] memory pending, uint256 opened) = market.pendingLostSlots(id);
        assertEq(pending.length, 1);
        assertEq(pending[0], 0);
        assertEq(opened, 2);
        // slot 1 is repaired; slot 3 is lost too: slots 0 and 3 open together, in loss order
        _fill(id, 1, hosts[2]);
        _missTimes(3, 2);
        _nextPeriod(1);
        uint256 p = market.currentPeriod();
        _nextPeriod(1);
        _accuseAndWait(_slot(id, 3), p);
        uint256[] memory both = new uint256[](2);
        both[0] = 0;
        both[1] = 3;
        vm.expectEmit(true, false, false, true, address(market));
        emit RepairOpened(id, both);
        _settle(_slot(id, 3), p);
        assertTrue(market.slotState(_slot(id, 0)) == SlotState.Repair);
        assertTrue(market.slotState(_slot(id, 3)) == SlotState.Repair);
        assertTrue(market.requestState(id) == RequestState.Started);
        _drain();
    }

    /// Ends the request and pays everybody; the marketplace must be left with nothing.
    function _drain() internal {
        vm.warp(block.timestamp + req.ask.duration);
        for (uint256 i = 0; i < 5; i++) {
            bytes32 s = _slot(id, i);
            address host = market.getHost(s);
            if (host != address(0) && market.slotState(s) != SlotState.Paid) {
                vm.prank(host);
                market.freeSlot(s);
            }
        }
        vm.prank(client);
        market.withdrawFunds(id);
        assertEq(token.balanceOf(address(market)), 0, "marketplace keeps tokens");
    }
}
