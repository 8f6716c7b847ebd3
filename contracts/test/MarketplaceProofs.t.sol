// SPDX-License-Identifier: MIT
// Marketplace tests: challenges, proof requirement, submitProof and markProofAsMissing.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceProofsTest is MarketplaceBase {
    bytes32 internal id;
    Request internal req;
    bytes32 internal slot0;

    function setUp() public override {
        super.setUp();
        (id, req) = _post(4);
        _fillAll(id, 4);
        slot0 = _slot(id, 0);
    }

    function testNoProofRequiredInStartPeriod() public view {
        assertFalse(market.isProofRequired(slot0));
    }

    function testChallengeIsStableWithinWindowAndPerSlot() public {
        _nextPeriod(1);
        bytes32 c = market.getChallenge(slot0);
        assertTrue(c != market.getChallenge(_slot(id, 1)), "slots share a challenge");
        uint256 pointer = market.getPointer(slot0);
        if (pointer < 255) {
            vm.roll(block.number + 1);
            assertEq(market.getChallenge(slot0), c);
        }
        assertEq(market.getEntropy(slot0), uint256(c) % 21888242871839275222246405745257275088548364400416034343698204186575808495617);
        vm.roll(block.number + 256);
        assertTrue(market.getChallenge(slot0) != c, "challenge must roll over");
    }

    function testSubmitProof() public {
        _nextPeriod(1);
        assertTrue(market.isProofRequired(slot0));
        uint256[8] memory proof = _proof(id, 0);
        vm.expectEmit(true, false, false, true, address(market));
        emit ProofSubmitted(slot0, market.currentPeriod());
        vm.prank(hosts[0]);
        market.submitProof(slot0, proof);
        assertFalse(market.isProofRequired(slot0));
    }

    function testSubmitProofOnlyByHost() public {
        _nextPeriod(1);
        uint256[8] memory proof = _proof(id, 0);
        vm.prank(hosts[1]);
        vm.expectRevert(NotSlotHost.selector);
        market.submitProof(slot0, proof);
    }

    function testSubmitProofTwiceInPeriodFails() public {
        _nextPeriod(1);
        _submit(id, 0, hosts[0]);
        uint256[8] memory proof = _proof(id, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(ProofAlreadySubmitted.selector);
        market.submitProof(slot0, proof);
        // the next period takes a proof again
        _nextPeriod(1);
        _submit(id, 0, hosts[0]);
    }

    function testProofForOtherSlotPeriodOrRootFails() public {
        _nextPeriod(1);
        bytes32 root = req.content.merkleRoot;
        uint256 entropy = market.getEntropy(slot0);
        uint256[8] memory otherSlot = _proofWith(root, market.getEntropy(_slot(id, 1)), 0);
        uint256[8] memory otherIndex = _proofWith(root, entropy, 1);
        uint256[8] memory otherRoot = _proofWith(bytes32(uint256(root) ^ 1), entropy, 0);
        vm.startPrank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.submitProof(slot0, otherSlot);
        vm.expectRevert(InvalidProof.selector);
        market.submitProof(slot0, otherIndex);
        vm.expectRevert(InvalidProof.selector);
        market.submitProof(slot0, otherRoot);
        vm.stopPrank();
        // a proof made in one period is useless in the next
        uint256[8] memory stale = _proof(id, 0);
        _nextPeriod(1);
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.submitProof(slot0, stale);
    }

    function testSubmitProofBeforeStartOrAfterEndFails() public {
        (bytes32 other,) = _post(2);
        _fill(other, 0, hosts[0]);
        _nextPeriod(1);
        uint256[8] memory proof = _proof(other, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotRunning.selector);
        market.submitProof(_slot(other, 0), proof);

        vm.warp(block.timestamp + req.ask.duration);
        proof = _proof(id, 0);
        vm.prank(hosts[0]);
        vm.expectRevert(RequestNotRunning.selector);
        market.submitProof(slot0, proof);
    }

    function testMarkMissingSlashesAndRewards() public {
        _nextPeriod(1);
        uint256 missed = market.currentPeriod();
        _nextPeriod(1);
        uint256 collateral = _collateral(req);
        uint256 slash = collateral * 10 / 100;
        uint256 reward = slash * 20 / 100;
        uint256 before = token.balanceOf(validator);
        vm.expectEmit(true, true, false, true, address(market));
        emit ProofMissed(slot0, missed, 1, validator);
        _mark(slot0, missed);
        assertEq(token.balanceOf(validator) - before, reward);
        assertEq(market.missingProofs(slot0), 1);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.markProofAsMissing(slot0, missed);
    }

    function testMarkTooEarlyFails() public {
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        vm.prank(validator);
        vm.expectRevert(PeriodNotEnded.selector);
        market.markProofAsMissing(slot0, period);
    }

    function testMarkTooLateFails() public {
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _nextPeriod(TIMEOUT);
        vm.prank(validator);
        vm.expectRevert(MarkingWindowClosed.selector);
        market.markProofAsMissing(slot0, period);
        // one second earlier it would have worked
        vm.warp(block.timestamp - 1);
        _mark(slot0, period);
    }

    function testMarkWhenProofGivenFails() public {
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _submit(id, 0, hosts[0]);
        _nextPeriod(1);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.markProofAsMissing(slot0, period);
        // ...also once the host proved the current period
        _submit(id, 0, hosts[0]);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.markProofAsMissing(slot0, period);
    }

    function testMarkAfterHostProvedCurrentPeriod() public {
        _nextPeriod(1);
        uint256 period = market.currentPeriod();
        _nextPeriod(1);
        _submit(id, 0, hosts[0]); // proves the current period, not the missed one
        _mark(slot0, period);
        assertEq(market.missingProofs(slot0), 1);
        // and the host's current proof still counts
        _nextPeriod(1);
        vm.prank(validator);
        vm.expectRevert(ProofNotMissing.selector);
        market.markProofAsMissing(slot0, period + 1);
    }

    function testMarkStartPeriodFails() public {
        uint256 period = market.currentPeriod();
        _nextPeriod(1);
        vm.prank(validator);
        vm.expectRevert(ProofNotRequired.selector);
        market.markProofAsMissing(slot0, period);
    }

    function testMarkFreeSlotFails() public {
        vm.prank(validator);
        vm.expectRevert(SlotNotAvailable.selector);
        market.markProofAsMissing(bytes32(uint256(3)), 1);
    }

    function testMarkAfterEndFails() public {
        vm.warp(block.timestamp + req.ask.duration + PERIOD);
        uint256 period = market.currentPeriod() - 1;
        vm.prank(validator);
        vm.expectRevert(RequestNotRunning.selector);
        market.markProofAsMissing(slot0, period);
    }

    function testSlashedHostGetsLessAtEnd() public {
        _missOnce(id, 0);
        vm.warp(block.timestamp + req.ask.duration);
        uint256 before = token.balanceOf(hosts[0]);
        vm.prank(hosts[0]);
        market.freeSlot(slot0);
        uint256 perSecond = uint256(req.ask.slotSize) * req.ask.pricePerBytePerSecond;
        (, uint64 endsAt,) = market.requestTimes(id);
        uint256 held = endsAt - START_TIME;
        assertEq(token.balanceOf(hosts[0]) - before, held * perSecond + _collateral(req) * 90 / 100);
    }
}

/// Proof probability and downtime with a configuration that has a downtime.
contract MarketplaceProbabilityTest is MarketplaceBase {
    function defaultConfigWithDowntime() internal view returns (MarketplaceConfig memory c) {
        c = defaultConfig();
        c.proofDowntime = 64;
    }

    function testDowntimeAndProbability() public {
        market = new Marketplace(defaultConfigWithDowntime());
        _fund(client);
        for (uint256 i = 0; i < hosts.length; i++) {
            _fund(hosts[i]);
        }
        Request memory r = _newRequest(4);
        r.ask.proofProbability = 4;
        bytes32 id = _submitRequest(r);
        _fillAll(id, 4);
        _nextPeriod(1);
        uint256 required;
        uint256 downtime;
        for (uint256 b = 0; b < 256; b++) {
            vm.roll(block.number + 1);
            for (uint256 s = 0; s < 4; s++) {
                bytes32 sid = _slot(id, s);
                bool now_ = market.isProofRequired(sid);
                bool later = market.willProofBeRequired(sid);
                assertFalse(now_ && later);
                bool inDowntime = market.getPointer(sid) < 64;
                if (inDowntime) {
                    assertFalse(now_);
                    downtime++;
                }
                if (now_) required++;
            }
        }
        assertEq(downtime, 4 * 64);
        // about a quarter of the (slot, challenge) draws require a proof
        assertTrue(required > 0 && required < 4 * 192, "probability");
    }
}
