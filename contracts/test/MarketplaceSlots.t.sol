// SPDX-License-Identifier: MIT
// Marketplace tests: reservations, fillSlot, request start, slot views and access control.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceSlotsTest is MarketplaceBase {
    bytes32 internal id;
    Request internal req;

    function setUp() public override {
        super.setUp();
        (id, req) = _post(4);
    }

    function testReserveSlot() public {
        vm.prank(hosts[0]);
        assertTrue(market.canReserveSlot(id, 0));
        vm.expectEmit(true, true, false, true, address(market));
        emit SlotReserved(id, 0, hosts[0], uint64(block.timestamp + RESERVATION));
        _reserve(id, 0, hosts[0]);
        vm.prank(hosts[0]);
        assertFalse(market.canReserveSlot(id, 0));
        vm.prank(hosts[0]);
        vm.expectRevert(AlreadyReserved.selector);
        market.reserveSlot(id, 0);
    }

    function testReservationIsExclusiveAndTakesADeposit() public {
        uint256 before = token.balanceOf(hosts[0]);
        _reserve(id, 1, hosts[0]);
        assertEq(before - token.balanceOf(hosts[0]), _deposit(req));
        (address holder, uint64 lapsesAt) = market.reservation(id, 1);
        assertEq(holder, hosts[0]);
        assertEq(lapsesAt, block.timestamp + RESERVATION);
        vm.prank(hosts[3]);
        assertFalse(market.canReserveSlot(id, 1));
        vm.prank(hosts[3]);
        vm.expectRevert(SlotReservedByOther.selector);
        market.reserveSlot(id, 1);
        // the holder fills while it holds; after the lapse another host may reserve
        vm.warp(block.timestamp + RESERVATION + 1);
        _reserve(id, 1, hosts[3]);
        uint256[8] memory proof = _fillProof(id, 1, hosts[0]);
        vm.prank(hosts[0]);
        vm.expectRevert(NotReserved.selector);
        market.fillSlot(id, 1, proof);
    }

    function testReserveRejectsBadSlot() public {
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidSlotIndex.selector);
        market.reserveSlot(id, 4);
        vm.prank(hosts[0]);
        vm.expectRevert(UnknownRequest.selector);
        market.reserveSlot(bytes32(uint256(7)), 0);
        _fill(id, 0, hosts[0]);
        vm.prank(hosts[1]);
        vm.expectRevert(SlotNotAvailable.selector);
        market.reserveSlot(id, 0);
    }

    function testFillSlotTakesCollateral() public {
        uint256 before = token.balanceOf(hosts[0]);
        _reserve(id, 2, hosts[0]);
        uint256[8] memory proof = _fillProof(id, 2, hosts[0]);
        vm.expectEmit(true, true, false, true, address(market));
        emit SlotFilled(id, 2, hosts[0]);
        vm.prank(hosts[0]);
        market.fillSlot(id, 2, proof);
        assertEq(before - token.balanceOf(hosts[0]), _collateral(req), "deposit + rest of the collateral");
        bytes32 s = _slot(id, 2);
        assertEq(market.getHost(s), hosts[0]);
        assertTrue(market.slotState(s) == SlotState.Filled);
        assertEq(market.slotFilledAt(s), block.timestamp);
        assertEq(market.missingProofs(s), 0);
        assertEq(market.getActiveSlot(s).slotIndex, 2);
        assertEq(keccak256(abi.encode(market.getActiveSlot(s).request)), id);
        assertEq(market.slotId(id, 2), s);
    }

    function testFillRequiresReservation() public {
        uint256[8] memory proof = _fillProof(id, 0, hosts[0]);
        vm.prank(hosts[0]);
        vm.expectRevert(NotReserved.selector);
        market.fillSlot(id, 0, proof);
    }

    function testFillRejectsWrongProof() public {
        _reserve(id, 0, hosts[0]);
        uint256[8] memory other = _fillProof(id, 1, hosts[0]); // proof for another slot
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.fillSlot(id, 0, other);
        uint256[8] memory periodic = _proof(id, 0); // the periodic proof's entropy is not the fill's
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.fillSlot(id, 0, periodic);
        verifier.setRejectAll(true);
        uint256[8] memory proof = _fillProof(id, 0, hosts[0]);
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.fillSlot(id, 0, proof);
    }

    function testFillTwiceFails() public {
        _fill(id, 0, hosts[0]);
        uint256[8] memory proof = _fillProof(id, 0, hosts[0]);
        vm.prank(hosts[0]);
        vm.expectRevert(SlotNotAvailable.selector);
        market.fillSlot(id, 0, proof);
    }

    function testRequestStartsWhenAllSlotsFilled() public {
        _fill(id, 0, hosts[0]);
        _fill(id, 1, hosts[1]);
        _fill(id, 2, hosts[2]);
        assertTrue(market.requestState(id) == RequestState.New);
        _reserve(id, 3, hosts[3]);
        uint256[8] memory proof = _fillProof(id, 3, hosts[3]);
        vm.expectEmit(true, false, false, true, address(market));
        emit RequestFulfilled(id);
        vm.prank(hosts[3]);
        market.fillSlot(id, 3, proof);
        assertTrue(market.requestState(id) == RequestState.Started);
        (uint64 startedAt,,) = market.requestTimes(id);
        assertEq(startedAt, block.timestamp);
        (uint256 filled, uint256 lost, uint256 repaired) = market.requestSlotCounts(id);
        assertEq(filled, 4);
        assertEq(lost + repaired, 0);
        // a started request takes no new fills
        vm.prank(hosts[4]);
        vm.expectRevert(SlotNotAvailable.selector);
        market.reserveSlot(id, 0);
    }

    function testFreeSlotOnlyByHostAndAfterEnd() public {
        _fillAll(id, 4);
        bytes32 s = _slot(id, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotEnded.selector);
        market.freeSlot(s);
        vm.warp(block.timestamp + req.ask.duration);
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotEnded.selector); // the last period's accusations may still come
        market.freeSlot(s);
        vm.warp(market.settlesAt(id));
        vm.prank(hosts[1]);
        vm.expectRevert(NotSlotHost.selector);
        market.freeSlot(s);
        vm.prank(hosts[0]);
        market.freeSlot(s);
        vm.prank(hosts[0]);
        vm.expectRevert(AlreadyPaid.selector);
        market.freeSlot(s);
        assertTrue(market.slotState(s) == SlotState.Paid);
    }

    function testSlotStateOfUnknownSlot() public view {
        assertTrue(market.slotState(bytes32(uint256(5))) == SlotState.Free);
        assertTrue(market.slotState(_slot(id, 0)) == SlotState.Free);
        assertEq(market.getHost(_slot(id, 0)), address(0));
    }

    function testGetActiveSlotOfFreeSlotReverts() public {
        vm.expectRevert(SlotNotAvailable.selector);
        market.getActiveSlot(_slot(id, 0));
    }
}
