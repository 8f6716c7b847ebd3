// SPDX-License-Identifier: MIT
// The attacks on the first marketplace, each written as the attack: the attacker's steps, then
// what must hold. Each of these tests fails on the first contract (reservations were free and
// never lapsed, fill proofs verified for any sender, the last period could not be marked).
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceAttacksTest is MarketplaceBase {
    address[3] internal squatters = [address(0xBAD1), address(0xBAD2), address(0xBAD3)];
    address internal honest = address(0x600D);

    function setUp() public override {
        super.setUp();
        for (uint256 i = 0; i < 3; i++) {
            _fund(squatters[i]);
        }
        _fund(honest);
    }

    /// Every squatter tries to reserve the slot; returns how many succeeded.
    function _squat(bytes32 id, uint256 index) internal returns (uint256 taken) {
        for (uint256 i = 0; i < 3; i++) {
            vm.prank(squatters[i]);
            try market.reserveSlot(id, uint64(index)) {
                taken++;
            } catch {}
        }
    }

    function testSquattedReservationsDoNotKeepARequestFromStarting() public {
        (bytes32 id, Request memory r) = _post(2);
        // the attack: three addresses reserve every slot and never fill
        for (uint256 i = 0; i < 2; i++) {
            assertEq(_squat(id, i), 1, "one reservation at a time");
        }
        // what must hold: once the squatters' reservations lapse, honest hosts take the slots
        vm.warp(block.timestamp + RESERVATION + 1);
        _fill(id, 0, honest);
        _fill(id, 1, hosts[0]);
        assertTrue(market.requestState(id) == RequestState.Started, "the request started");
        // and the squatters paid for it: their two deposits are the client's
        uint256 leases = market.reservationsTaken(id);
        assertEq(leases, 4);
        (uint64 startedAt, uint64 endsAt,) = market.requestTimes(id);
        uint256 perSlot = uint256(r.ask.slotSize) * r.ask.pricePerBytePerSecond;
        uint256 unserved = perSlot * (startedAt - (endsAt - r.ask.duration)) * 2; // both filled at the start
        _warpToSettled(id);
        assertEq(market.withdrawableFunds(id), unserved + 2 * _deposit(r), "unserved time plus the squatters' deposits");
    }

    function testSquatterPaysTheClientExactly() public {
        (bytes32 id, Request memory r) = _post(2);
        _squat(id, 0);
        vm.warp(block.timestamp + r.expiry + 1); // cancelled: nobody filled
        uint256 before = token.balanceOf(client);
        vm.prank(client);
        market.withdrawFunds(id);
        assertEq(token.balanceOf(client) - before, _payment(r) + _deposit(r), "payment back plus the lapsed deposit");
        assertEq(token.balanceOf(address(market)), 0);
    }

    /// A started 4-slot request whose slot `lost` its host lost, open for repair.
    function _requestWithSlotInRepair(uint256 lost) internal returns (bytes32 id) {
        Request memory r = _newRequest(4);
        r.ask.maxSlotLoss = 1;
        r.ask.repairThreshold = 1;
        id = _submitRequest(r);
        _fillAll(id, 4);
        for (uint256 k = 0; k < 3; k++) {
            _missOnce(id, lost);
        }
    }

    function testSquattedRepairStillCompletes() public {
        bytes32 id = _requestWithSlotInRepair(2);
        assertTrue(market.slotState(_slot(id, 2)) == SlotState.Repair);
        // the attack: the squatters reserve the lost slot and never fill
        assertEq(_squat(id, 2), 1);
        vm.prank(honest);
        vm.expectRevert(SlotReservedByOther.selector);
        market.reserveSlot(id, 2);
        // what must hold: after the lapse an honest repairer refills it
        vm.warp(block.timestamp + RESERVATION + 1);
        _ensureSeed();
        _fill(id, 2, honest);
        assertEq(market.getHost(_slot(id, 2)), honest);
        (,, uint256 repaired) = market.requestSlotCounts(id);
        assertEq(repaired, 1);
    }

    function testCopiedFillProofFailsForTheCopier() public {
        (bytes32 id,) = _post(2);
        // the honest host reserves and sends its fill; its reservation lapses before it lands
        _reserve(id, 0, honest);
        uint256[8] memory honestProof = _fillProof(id, 0, honest);
        vm.warp(block.timestamp + RESERVATION + 1);
        _ensureSeed();
        // the attack: the copier reserves the slot and sends the honest host's proof as its own
        _reserve(id, 0, squatters[0]);
        honestProof = _fillProof(id, 0, honest); // the same proof, for the current period
        vm.prank(squatters[0]);
        vm.expectRevert(InvalidProof.selector);
        market.fillSlot(id, 0, honestProof);
        assertEq(market.getHost(_slot(id, 0)), address(0));
    }

    function testCopiedRepairFillProofFailsForTheCopier() public {
        bytes32 id = _requestWithSlotInRepair(1);
        assertTrue(market.slotState(_slot(id, 1)) == SlotState.Repair);
        _reserve(id, 1, honest);
        vm.warp(block.timestamp + RESERVATION + 1);
        _ensureSeed();
        _reserve(id, 1, squatters[0]);
        uint256[8] memory copied = _fillProof(id, 1, honest);
        vm.prank(squatters[0]);
        vm.expectRevert(InvalidProof.selector);
        market.fillSlot(id, 1, copied);
        // its own proof (from the data it would have to hold) passes
        uint256[8] memory own = _fillProof(id, 1, squatters[0]);
        vm.prank(squatters[0]);
        market.fillSlot(id, 1, own);
    }

    /// The host drops its data before the last period; a proof is required in the last period
    /// (the one containing the end) and it is accused and settled after it.
    function testProofOfTheLastPeriodIsEnforced() public {
        Request memory r = _newRequest(2);
        r.ask.duration = uint64(3 * PERIOD + PERIOD / 2); // ends mid-period
        r.expiry = uint64(PERIOD / 2);
        bytes32 id = _submitRequest(r);
        _fillAll(id, 2);
        (, uint64 endsAt,) = market.requestTimes(id);
        uint256 last = (endsAt - 1) / PERIOD;
        // prove honestly up to the last period, then stop (slot 0); slot 1 keeps proving
        while (market.currentPeriod() < last) {
            _nextPeriod(1);
            if (market.currentPeriod() < last && market.isProofRequired(_slot(id, 0))) _submit(id, 0, hosts[0]);
            if (market.currentPeriod() < last && market.isProofRequired(_slot(id, 1))) _submit(id, 1, hosts[1]);
        }
        assertEq(market.currentPeriod(), last);
        assertTrue(market.isProofRequired(_slot(id, 0)), "the last period requires a proof");
        // the last period's proof may still come after the end
        vm.warp(endsAt + 1);
        assertTrue(market.isProofRequired(_slot(id, 1)));
        _submit(id, 1, hosts[1]);
        assertFalse(market.isProofRequired(_slot(id, 1)));
        // after the last period: slot 0's missing proof is accused and settled
        _nextPeriod(1);
        uint256 validatorBefore = token.balanceOf(validator);
        _mark(_slot(id, 0), last);
        uint256 slash = _collateral(r) * 10 / 100;
        assertEq(token.balanceOf(validator) - validatorBefore, slash * 20 / 100, "accuser's reward");
        assertEq(market.missingProofs(_slot(id, 0)), 1);
        // the request finishes only after the last accusation window: the host loses the slash
        assertTrue(market.requestState(id) == RequestState.Started);
        _warpToSettled(id);
        assertTrue(market.requestState(id) == RequestState.Finished);
        uint256 expected = uint256(r.ask.slotSize) * r.ask.pricePerBytePerSecond
            * (endsAt - market.slotFilledAt(_slot(id, 0))) + _collateral(r) - slash;
        assertEq(market.slotPayout(_slot(id, 0)), expected);
    }
}
