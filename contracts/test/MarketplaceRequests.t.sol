// SPDX-License-Identifier: MIT
// Marketplace tests: configuration, requestStorage, request views, expiry and cancellation.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceRequestsTest is MarketplaceBase {
    function testConfigIsExposed() public view {
        MarketplaceConfig memory c = market.config();
        assertEq(address(c.token), address(token));
        assertEq(address(c.verifier), address(verifier));
        assertEq(c.periodLength, PERIOD);
        assertEq(c.proofTimeout, TIMEOUT);
        assertEq(c.maxMissedProofs, 3);
        assertEq(c.responseWindow, RESPONSE);
        assertEq(c.reservationDuration, RESERVATION);
        assertEq(c.accusationBond, BOND);
    }

    function testFitsContractSizeLimitWithRoom() public view {
        assertLe(address(market).code.length, 22_100, "EIP-170 limit minus 10%");
        assertLe(market.settlement().code.length, 22_100, "EIP-170 limit minus 10%");
    }

    function testConstructorRejectsBadConfig() public {
        MarketplaceConfig memory c = defaultConfig();
        c.proofTimeout = uint32(PERIOD + 1);
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
        c = defaultConfig();
        c.slashPercentage = 40; // 3 misses * 40% > 100%
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
        c = defaultConfig();
        c.periodLength = 0;
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
        c = defaultConfig();
        c.periodLength = 3; // a period could pass without a block
        c.proofTimeout = 1;
        c.responseWindow = 1;
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
        c = defaultConfig();
        c.responseWindow = uint32(PERIOD + 1);
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
        c = defaultConfig();
        c.reservationDepositPercentage = 95; // with the 10% repair reward, more than the collateral
        vm.expectRevert(InvalidConfig.selector);
        new Marketplace(c);
    }

    function testRequestStorageTakesPayment() public {
        Request memory r = _newRequest(4);
        uint256 before = token.balanceOf(client);
        bytes32 expected = keccak256(abi.encode(r));
        vm.expectEmit(true, true, false, true, address(market));
        emit StorageRequested(expected, client, r.ask, uint64(block.timestamp + r.expiry), uint64(block.timestamp + r.ask.duration));
        bytes32 id = _submitRequest(r);
        assertEq(id, expected);
        assertEq(before - token.balanceOf(client), _payment(r));
        assertEq(token.balanceOf(address(market)), _payment(r));
        assertTrue(market.requestState(id) == RequestState.New);
        Request memory stored = market.getRequest(id);
        assertEq(keccak256(abi.encode(stored)), id);
        (uint64 startedAt, uint64 endsAt, uint64 expiresAt) = market.requestTimes(id);
        assertEq(startedAt, 0);
        assertEq(endsAt, block.timestamp + r.ask.duration);
        assertEq(expiresAt, block.timestamp + r.expiry);
    }

    function testRequestStorageOnlyByClient() public {
        Request memory r = _newRequest(4);
        vm.prank(hosts[0]);
        vm.expectRevert(NotClient.selector);
        market.requestStorage(r);
    }

    function testRequestStorageRejectsDuplicate() public {
        Request memory r = _newRequest(4);
        _submitRequest(r);
        vm.prank(client);
        vm.expectRevert(RequestExists.selector);
        market.requestStorage(r);
    }

    function _expectInvalid(Request memory r) internal {
        vm.prank(r.client);
        vm.expectRevert(InvalidRequest.selector);
        market.requestStorage(r);
    }

    function testRequestStorageValidatesAsk() public {
        Request memory r = _newRequest(4);
        r.ask.slots = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.slotSize = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.duration = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.proofProbability = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.maxSlotLoss = 4;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.repairThreshold = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.repairThreshold = 3; // above maxSlotLoss (2)
        _expectInvalid(r);
        r = _newRequest(4);
        r.expiry = 0;
        _expectInvalid(r);
        r = _newRequest(4);
        r.expiry = 3 days + 1;
        _expectInvalid(r);
        r = _newRequest(4);
        r.ask.duration = r.expiry;
        _expectInvalid(r);
        r = _newRequest(4);
        r.content.merkleRoot = bytes32(type(uint256).max);
        _expectInvalid(r);
    }

    function testRequestStorageFailsWithoutFunds() public {
        Request memory r = _newRequest(4);
        r.client = address(0xBEEF);
        vm.prank(r.client);
        vm.expectRevert();
        market.requestStorage(r);
    }

    function testUnknownRequest() public {
        assertTrue(market.requestState(bytes32(uint256(1))) == RequestState.None);
        vm.expectRevert(UnknownRequest.selector);
        market.getRequest(bytes32(uint256(1)));
    }

    function testExpiredRequestIsCancelledAndRefunded() public {
        (bytes32 id, Request memory r) = _post(2);
        _fill(id, 0, hosts[0]);
        vm.warp(block.timestamp + r.expiry + 1);
        assertTrue(market.requestState(id) == RequestState.Cancelled);
        assertTrue(market.slotState(_slot(id, 0)) == SlotState.Cancelled);

        // the host that filled gets collateral plus payment for the time it held the slot
        uint256 held = r.expiry;
        uint256 hostBefore = token.balanceOf(hosts[0]);
        vm.prank(hosts[0]);
        vm.expectEmit(true, true, false, true, address(market));
        emit RequestCancelled(id);
        market.freeSlot(_slot(id, 0));
        uint256 perSecond = uint256(r.ask.slotSize) * r.ask.pricePerBytePerSecond;
        assertEq(token.balanceOf(hosts[0]) - hostBefore, _collateral(r) + held * perSecond);

        uint256 clientBefore = token.balanceOf(client);
        vm.prank(client);
        market.withdrawFunds(id);
        assertEq(token.balanceOf(client) - clientBefore, _payment(r) - held * perSecond);
        assertEq(token.balanceOf(address(market)), 0);
    }

    function testCannotFillExpiredRequest() public {
        (bytes32 id, Request memory r) = _post(2);
        _reserve(id, 0, hosts[0]);
        vm.warp(block.timestamp + r.expiry + 1);
        uint256[8] memory proof = _proof(id, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotAccepting.selector);
        market.fillSlot(id, 0, proof);
    }

    function testWithdrawOnlyByClientAfterEnd() public {
        (bytes32 id, Request memory r) = _post(2);
        vm.prank(client);
        vm.expectRevert(RequestNotEnded.selector);
        market.withdrawFunds(id);
        vm.warp(block.timestamp + r.expiry + 1);
        vm.prank(hosts[0]);
        vm.expectRevert(NotClient.selector);
        market.withdrawFunds(id);
        assertEq(market.withdrawableFunds(id), _payment(r));
        vm.prank(client);
        market.withdrawFunds(id);
        assertEq(market.withdrawableFunds(id), 0);
        vm.prank(client);
        vm.expectRevert(AlreadyWithdrawn.selector);
        market.withdrawFunds(id);
    }
}
