// SPDX-License-Identifier: MIT
// Invariant test: the marketplace's token balance always equals what it owes.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";
import {MarketHandler} from "./invariant/MarketHandler.sol";

contract MarketplaceInvariantTest is MarketplaceBase {
    MarketHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new MarketHandler(market, token, verifier, PERIOD);
        targetContract(address(handler));
    }

    /// What the marketplace owes on a request right now: for a stopped request, the client's
    /// withdrawable funds plus every unpaid host payout; for a running one, the payment plus
    /// the client's compensation plus the current hosts' remaining collateral, which (being
    /// independent of when the request stops) equals the payouts at any stop time.
    function _owed(bytes32 id) internal view returns (uint256 owed) {
        Request memory r = market.getRequest(id);
        RequestState state = market.requestState(id);
        bool stopped = state == RequestState.Cancelled || state == RequestState.Finished || state == RequestState.Failed;
        if (stopped) {
            owed = market.withdrawableFunds(id);
            for (uint256 i = 0; i < r.ask.slots; i++) {
                owed += market.slotPayout(_slot(id, i));
            }
            return owed;
        }
        uint256 collateral = uint256(r.ask.slotSize) * r.ask.collateralPerByte;
        uint256 slash = collateral * 10 / 100;
        uint256 forfeit = collateral - 3 * slash;
        (, uint256 lost, uint256 repaired) = market.requestSlotCounts(id);
        uint256 misses;
        owed = _payment(r) + lost * forfeit - repaired * (forfeit * 10 / 100);
        // deposits of reservations no fill has used yet (credited at fill, else the client's)
        uint256 leases = market.reservationsTaken(id);
        (uint256 filledFirst,,) = market.requestSlotCounts(id);
        owed += (leases - filledFirst - repaired) * (collateral * 10 / 100);
        for (uint256 i = 0; i < r.ask.slots; i++) {
            bytes32 s = _slot(id, i);
            if (market.getHost(s) == address(0)) continue;
            owed += collateral - market.missingProofs(s) * slash;
        }
        // missed proofs of hosts that were later removed are folded into `lost * forfeit`
        // through the 3 slashes each lost host suffered
        misses = _missesTotal(id, r);
        owed += misses * (slash - slash * 20 / 100);
    }

    function _missesTotal(bytes32 id, Request memory r) internal view returns (uint256 total) {
        (, uint256 lost,) = market.requestSlotCounts(id);
        total = lost * 3;
        for (uint256 i = 0; i < r.ask.slots; i++) {
            bytes32 s = _slot(id, i);
            if (market.getHost(s) != address(0)) total += market.missingProofs(s);
        }
    }

    function invariant_balanceEqualsOwed() public view {
        uint256 owed;
        for (uint256 i = 0; i < handler.requestCount(); i++) {
            owed += _owed(handler.requestIds(i));
        }
        assertEq(token.balanceOf(address(market)), owed, "balance != owed");
        assertEq(address(market).balance, handler.openBonds(), "ether != open bonds");
    }

    /// After every run: stop everything, pay everybody, and nothing may be left over.
    function afterInvariant() public {
        vm.warp(block.timestamp + 400 days);
        for (uint256 i = 0; i < handler.accusationCount(); i++) {
            try market.settleAccusation(handler.accusedSlots(i), handler.accusedPeriods(i)) {} catch {}
        }
        assertEq(address(market).balance, 0, "bonds left over");
        for (uint256 i = 0; i < handler.requestCount(); i++) {
            bytes32 id = handler.requestIds(i);
            Request memory r = market.getRequest(id);
            for (uint256 j = 0; j < r.ask.slots; j++) {
                bytes32 s = _slot(id, j);
                address host = market.getHost(s);
                if (host != address(0) && market.slotState(s) != SlotState.Paid) {
                    vm.prank(host);
                    market.freeSlot(s);
                }
            }
            if (market.withdrawableFunds(id) > 0) {
                vm.prank(client);
                market.withdrawFunds(id);
            }
        }
        assertEq(token.balanceOf(address(market)), 0, "left over after paying everybody");
    }
}
