// SPDX-License-Identifier: MIT
// Accusations of missing proofs: accuse with a bond, defend with the proof, settle undefended.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

/// An accuser that refuses ether (its share of a dismissed bond is kept for it to claim).
contract RefusingAccuser {
    function accuse(IMarketplace market, bytes32 id, uint256 period) external payable {
        market.accuseMissingProof{value: msg.value}(id, period);
    }
}

contract MarketplaceAccusationsTest is MarketplaceBase {
    bytes32 internal id;
    Request internal req;
    bytes32 internal slot0;
    uint256 internal missed;

    function setUp() public override {
        super.setUp();
        (id, req) = _post(4);
        _fillAll(id, 4);
        slot0 = _slot(id, 0);
        _nextPeriod(1);
        missed = market.currentPeriod(); // slot 0 does not prove in it
        _nextPeriod(1);
    }

    function _defence(uint256 period) internal view returns (uint256[8] memory) {
        return _proofWith(req.content.merkleRoot, market.entropyAt(slot0, period), 0);
    }

    function testDismissedAccusationSharesTheBond() public {
        uint256 accuserEth = validator.balance;
        uint256 hostEth = hosts[0].balance;
        _accuse(slot0, missed);
        (address accuser, uint64 deadline) = market.accusation(slot0, missed);
        assertEq(accuser, validator);
        assertEq(deadline, block.timestamp + RESPONSE);
        assertEq(address(market).balance, BOND);
        uint256[8] memory proof = _defence(missed);
        vm.expectEmit(true, false, false, true, address(market));
        emit AccusationDismissed(slot0, missed);
        vm.prank(hosts[0]);
        market.defendProof(slot0, missed, proof);
        assertEq(hosts[0].balance - hostEth, BOND / 2, "host's share of the bond");
        assertEq(accuserEth - validator.balance, BOND - BOND / 2, "accuser's loss");
        assertEq(address(market).balance, 0);
        assertEq(market.missingProofs(slot0), 0);
        (address none,) = market.accusation(slot0, missed);
        assertEq(none, address(0));
        // the period counts as proven: no second accusation, nothing to settle
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.accuseMissingProof{value: BOND}(slot0, missed);
        vm.expectRevert(NoAccusation.selector);
        market.settleAccusation(slot0, missed);
    }

    function testSettledAccusationSlashesAndRewardsExactly() public {
        uint256 tokens = token.balanceOf(validator);
        uint256 eth = validator.balance;
        _accuseAndWait(slot0, missed);
        _settle(slot0, missed);
        uint256 slash = _collateral(req) * 10 / 100;
        assertEq(token.balanceOf(validator) - tokens, slash * 20 / 100, "accuser's reward");
        assertEq(validator.balance, eth, "bond back");
        assertEq(market.missingProofs(slot0), 1);
        // at the end: host payout less one slash; the client gets the slash less the reward
        _warpToSettled(id);
        uint256 filledAt = market.slotFilledAt(slot0);
        (, uint64 endsAt,) = market.requestTimes(id);
        uint256 pay = uint256(req.ask.slotSize) * req.ask.pricePerBytePerSecond * (endsAt - filledAt);
        assertEq(market.slotPayout(slot0), pay + _collateral(req) - slash);
    }

    /// An accusation of the last period can be answered and settled before the request
    /// finishes; one left unsettled until then only returns the bond.
    function testTheLastPeriodsAccusationSettlesBeforeTheRequestFinishes() public {
        Request memory r = _newRequest(2);
        r.ask.duration = uint64(3 * PERIOD);
        r.expiry = uint64(PERIOD / 2);
        uint256 held = token.balanceOf(address(market));
        bytes32 rid = _submitRequest(r);
        _fill(rid, 0, hosts[0]);
        _fill(rid, 1, hosts[1]);
        (, uint64 endsAt,) = market.requestTimes(rid);
        uint256 last = (endsAt - 1) / PERIOD;
        while (market.currentPeriod() <= last) _nextPeriod(1);
        // both hosts missed the last period's proof; both are accused at the window's end
        vm.warp((last + 1) * PERIOD + TIMEOUT - 1);
        _accuse(_slot(rid, 0), last);
        _accuse(_slot(rid, 1), last);
        vm.warp(block.timestamp + RESPONSE + 1);
        assertTrue(market.requestState(rid) == RequestState.Started, "not finished while it can be settled");
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotEnded.selector);
        market.freeSlot(_slot(rid, 0));
        _settle(_slot(rid, 0), last);
        assertEq(market.missingProofs(_slot(rid, 0)), 1);
        // slot 1's accuser waits too long: the request finished, the bond comes back, no slash
        vm.warp(market.settlesAt(rid));
        assertTrue(market.requestState(rid) == RequestState.Finished);
        uint256 eth = validator.balance;
        _settle(_slot(rid, 1), last);
        assertEq(validator.balance - eth, BOND);
        assertEq(market.missingProofs(_slot(rid, 1)), 0);
        vm.prank(hosts[0]);
        market.freeSlot(_slot(rid, 0));
        vm.prank(hosts[1]);
        market.freeSlot(_slot(rid, 1));
        vm.prank(client);
        market.withdrawFunds(rid);
        assertEq(token.balanceOf(address(market)), held, "nothing left of this request");
    }

    function testAccusingAPeriodThatRequiredNothingFails() public {
        // the fill period and the one before it required nothing
        (uint64 startedAt,,) = market.requestTimes(id);
        vm.prank(validator);
        vm.expectRevert(PeriodNotEnded.selector);
        market.accuseMissingProof{value: BOND}(slot0, missed + 1);
        vm.prank(validator);
        vm.expectRevert(MarkingWindowClosed.selector);
        market.accuseMissingProof{value: BOND}(slot0, startedAt / PERIOD);
        // a slot that is never selected: probability 2^32 - 1
        Request memory r = _newRequest(1);
        r.ask.proofProbability = type(uint32).max;
        bytes32 rid = _submitRequest(r);
        _fill(rid, 0, hosts[1]);
        _nextPeriod(1);
        uint256 p = market.currentPeriod();
        _nextPeriod(1);
        if (!market.isProofRequired(_slot(rid, 0))) {
            vm.prank(validator);
            vm.expectRevert(ProofNotRequired.selector);
            market.accuseMissingProof{value: BOND}(_slot(rid, 0), p);
        }
    }

    function testAccusingAnUnendedPeriodTwiceOrWithTheWrongBondFails() public {
        uint256 current = market.currentPeriod();
        vm.prank(validator);
        vm.expectRevert(PeriodNotEnded.selector);
        market.accuseMissingProof{value: BOND}(slot0, current);
        vm.prank(validator);
        vm.expectRevert(WrongBond.selector);
        market.accuseMissingProof{value: BOND - 1}(slot0, missed);
        _accuse(slot0, missed);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.accuseMissingProof{value: BOND}(slot0, missed);
    }

    function testAccusingALostOrFreedSlotFails() public {
        for (uint256 k = 0; k < 3; k++) {
            _missOnce(id, 1);
        }
        _nextPeriod(1);
        uint256 p = market.currentPeriod();
        _nextPeriod(1);
        vm.prank(validator);
        vm.expectRevert(SlotNotAvailable.selector);
        market.accuseMissingProof{value: BOND}(_slot(id, 1), p);
        // after the end and the frees, nothing can be accused
        _warpToSettled(id);
        vm.prank(hosts[0]);
        market.freeSlot(slot0);
        uint256 q = market.currentPeriod() - 1;
        vm.prank(validator);
        vm.expectRevert(RequestNotRunning.selector);
        market.accuseMissingProof{value: BOND}(slot0, q);
    }

    function testAccusationOfAHostThatLostTheSlotMeanwhileReturnsTheBond() public {
        _accuse(slot0, missed); // open, not settled
        // slot 0 goes on to be lost through other accusations
        for (uint256 k = 0; k < 3; k++) {
            _missOnce(id, 0);
        }
        assertEq(market.getHost(slot0), address(0));
        uint256 tokens = token.balanceOf(validator);
        uint256 eth = validator.balance;
        _settle(slot0, missed);
        assertEq(token.balanceOf(validator), tokens, "no reward: the host was already removed");
        assertEq(validator.balance - eth, BOND, "bond back");
    }

    function testWrongLateOrForeignDefenceFails() public {
        _accuse(slot0, missed);
        uint256[8] memory wrong = _proofWith(req.content.merkleRoot, market.entropyAt(slot0, missed + 1), 0);
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.defendProof(slot0, missed, wrong);
        uint256[8] memory proof = _defence(missed);
        vm.prank(hosts[1]);
        vm.expectRevert(NotSlotHost.selector);
        market.defendProof(slot0, missed, proof);
        vm.prank(hosts[0]);
        vm.expectRevert(NoAccusation.selector);
        market.defendProof(_slot(id, 1), missed, proof);
        vm.prank(validator);
        vm.expectRevert(ResponseWindowOpen.selector);
        market.settleAccusation(slot0, missed);
        vm.warp(block.timestamp + RESPONSE + 1);
        vm.prank(hosts[0]);
        vm.expectRevert(ResponseWindowClosed.selector);
        market.defendProof(slot0, missed, proof);
    }

    function testAnAccuserThatRefusesEtherCannotBlockTheDefence() public {
        RefusingAccuser refusing = new RefusingAccuser();
        refusing.accuse{value: BOND}(market, slot0, missed);
        uint256[8] memory proof = _defence(missed);
        vm.prank(hosts[0]);
        market.defendProof(slot0, missed, proof);
        assertEq(market.ethCredit(address(refusing)), BOND - BOND / 2, "kept for it to claim");
        assertEq(address(market).balance, BOND - BOND / 2);
    }

    function testTheSettlementModuleCannotBeCalledDirectly() public {
        address module = market.settlement();
        vm.prank(validator);
        vm.expectRevert(NotDelegated.selector);
        IMarketplace(module).accuseMissingProof{value: BOND}(slot0, missed);
    }
}
