// SPDX-License-Identifier: MIT
// Fuzz tests of the payment arithmetic: every token paid in is paid out exactly once.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceFuzzTest is MarketplaceBase {
    function _fuzzRequest(uint256 slots, uint256 size, uint256 price, uint256 collateral, uint256 periods)
        internal
        returns (bytes32 id, Request memory r)
    {
        r = _newRequest(uint16(bound(slots, 1, 5)));
        r.ask.slotSize = uint64(bound(size, 1, type(uint64).max));
        r.ask.pricePerBytePerSecond = uint128(bound(price, 0, 1e12));
        r.ask.collateralPerByte = uint128(bound(collateral, 0, 1e12));
        r.ask.duration = uint64(bound(periods, 2, 2000) * PERIOD);
        r.expiry = uint64(PERIOD);
        r.ask.maxSlotLoss = r.ask.slots > 1 ? r.ask.slots - 1 : 0;
        r.ask.repairThreshold = 1;
        id = _submitRequest(r);
    }

    function testFuzzPaymentTaken(uint256 slots, uint256 size, uint256 price, uint256 periods) public {
        Request memory r = _newRequest(uint16(bound(slots, 1, 5)));
        r.ask.slotSize = uint64(bound(size, 1, type(uint64).max));
        r.ask.pricePerBytePerSecond = uint128(bound(price, 0, 1e12));
        r.ask.duration = uint64(bound(periods, 2, 2000) * PERIOD);
        r.expiry = uint64(PERIOD);
        uint256 before = token.balanceOf(client);
        _submitRequest(r);
        assertEq(before - token.balanceOf(client), uint256(r.ask.slots) * r.ask.slotSize * r.ask.duration * r.ask.pricePerBytePerSecond);
    }

    /// Fill all slots (at staggered times), let some hosts miss proofs, end; pay everybody.
    function testFuzzFinishedRequestPaysOutExactly(
        uint256 slots,
        uint256 size,
        uint256 price,
        uint256 collateral,
        uint256 periods,
        uint256 gaps,
        uint256 missMask
    ) public {
        (bytes32 id, Request memory r) = _fuzzRequest(slots, size, price, collateral, periods);
        uint256 paidIn = _payment(r);
        for (uint256 i = 0; i < r.ask.slots; i++) {
            vm.warp(block.timestamp + (gaps >> (i * 8)) % 100);
            _fill(id, i, hosts[i]);
            paidIn += _collateral(r);
        }
        uint256 validatorBefore = token.balanceOf(validator);
        (, uint64 endsAt,) = market.requestTimes(id);
        for (uint256 i = 0; i < r.ask.slots; i++) {
            // a mark takes two periods and must land while the request runs
            if (block.timestamp + 3 * PERIOD >= endsAt) break;
            if ((missMask >> i) & 1 == 1) {
                _nextPeriod(1);
                uint256 p = market.currentPeriod();
                _nextPeriod(1);
                _mark(_slot(id, i), p);
            }
        }
        uint256 paidOut = token.balanceOf(validator) - validatorBefore;
        _warpToSettled(id);
        for (uint256 i = 0; i < r.ask.slots; i++) {
            uint256 b = token.balanceOf(hosts[i]);
            uint256 expected = market.slotPayout(_slot(id, i));
            vm.prank(hosts[i]);
            market.freeSlot(_slot(id, i));
            assertEq(token.balanceOf(hosts[i]) - b, expected, "host payout");
            paidOut += expected;
        }
        uint256 c = token.balanceOf(client);
        vm.prank(client);
        market.withdrawFunds(id);
        paidOut += token.balanceOf(client) - c;
        assertEq(paidIn, paidOut, "in != out");
        assertEq(token.balanceOf(address(market)), 0);
    }

    /// Host payout = price * time held + collateral - slashes, for any fill time.
    function testFuzzHostPayoutFormula(uint256 size, uint256 price, uint256 collateral, uint256 delay) public {
        (bytes32 id, Request memory r) = _fuzzRequest(1, size, price, collateral, 10);
        delay = bound(delay, 0, r.expiry);
        vm.warp(block.timestamp + delay);
        uint256 filledAt = block.timestamp;
        _fill(id, 0, hosts[0]);
        (, uint64 endsAt,) = market.requestTimes(id);
        _warpToSettled(id);
        uint256 expected = uint256(r.ask.slotSize) * r.ask.pricePerBytePerSecond * (endsAt - filledAt) + _collateral(r);
        assertEq(market.slotPayout(_slot(id, 0)), expected);
        assertEq(market.withdrawableFunds(id), _payment(r) - (expected - _collateral(r)));
    }

    /// Cancelled requests refund the client everything hosts did not earn.
    function testFuzzCancelledRequestRefund(uint256 slots, uint256 size, uint256 price, uint256 filled) public {
        (bytes32 id, Request memory r) = _fuzzRequest(slots, size, price, 7, 10);
        vm.assume(r.ask.slots > 1);
        filled = bound(filled, 0, r.ask.slots - 1);
        for (uint256 i = 0; i < filled; i++) {
            _fill(id, i, hosts[i]);
        }
        vm.warp(block.timestamp + r.expiry + 1);
        uint256 hostsOwed;
        for (uint256 i = 0; i < filled; i++) {
            hostsOwed += market.slotPayout(_slot(id, i));
        }
        assertEq(market.withdrawableFunds(id) + hostsOwed, token.balanceOf(address(market)));
    }
}
