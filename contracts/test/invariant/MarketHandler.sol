// SPDX-License-Identifier: MIT
// Invariant handler: random requests, fills, proofs, missed-proof marks, frees, withdrawals and time.
pragma solidity 0.8.37;

import {Vm} from "../utils/Vm.sol";
import {TestToken} from "../../src/TestToken.sol";
import {IMarketplace} from "../../src/IMarketplace.sol";
import {MockVerifier} from "../mocks/MockVerifier.sol";
import {Request, RequestState, SlotState} from "../../src/MarketplaceTypes.sol";

contract MarketHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    IMarketplace public immutable market;
    TestToken public immutable token;
    MockVerifier public immutable verifier;
    uint256 public immutable period;

    address public constant client = address(0xC11E);
    address public constant validator = address(0x7A11);
    address[3] public hosts = [address(0x4051), address(0x4052), address(0x4053)];

    bytes32[] public requestIds;
    mapping(bytes32 => uint16) public slotCount;
    uint256 public calls;
    uint256 public fills;
    uint256 public proofs;
    uint256 public marks;
    uint256 public accusations;
    uint256 public defences;
    uint256 public openBonds;
    bytes32[] public accusedSlots;
    uint256[] public accusedPeriods;
    uint256 public frees;
    uint256 public withdrawals;

    constructor(IMarketplace market_, TestToken token_, MockVerifier verifier_, uint256 period_) {
        market = market_;
        token = token_;
        verifier = verifier_;
        period = period_;
        _fund(client);
        _fund(validator);
        for (uint256 i = 0; i < 3; i++) {
            _fund(hosts[i]);
        }
    }

    function _fund(address who) internal {
        token.mint(who, 1e36);
        vm.deal(who, 1e24);
        vm.prank(who);
        token.approve(address(market), type(uint256).max);
    }

    function accusationCount() external view returns (uint256) {
        return accusedSlots.length;
    }

    function requestCount() external view returns (uint256) {
        return requestIds.length;
    }

    function createRequest(uint256 seed) external {
        calls++;
        if (requestIds.length >= 6) return;
        Request memory r;
        r.client = client;
        r.ask.slots = uint16(1 + seed % 4);
        r.ask.slotSize = uint64(1 + (seed >> 8) % 1e6);
        r.ask.duration = uint64(period * (4 + (seed >> 40) % 8));
        r.expiry = uint64(period * (1 + (seed >> 48) % 2));
        r.ask.proofProbability = uint32(1 + (seed >> 56) % 2);
        r.ask.maxSlotLoss = r.ask.slots > 1 ? uint16((seed >> 64) % r.ask.slots) : 0;
        r.ask.repairThreshold = r.ask.maxSlotLoss > 1 ? uint16(1 + (seed >> 72) % r.ask.maxSlotLoss) : 1;
        r.ask.pricePerBytePerSecond = uint128(1 + (seed >> 80) % 1000);
        r.ask.collateralPerByte = uint128((seed >> 96) % 1e6);
        r.content.cid = abi.encodePacked(seed);
        r.content.merkleRoot = bytes32(seed % 1e70);
        r.nonce = bytes32(requestIds.length);
        vm.prank(client);
        bytes32 id = market.requestStorage(r);
        requestIds.push(id);
        slotCount[id] = r.ask.slots;
    }

    function _pick(uint256 seed) internal view returns (bytes32 id, uint256 index, bool ok) {
        if (requestIds.length == 0) return (id, 0, false);
        id = requestIds[seed % requestIds.length];
        index = (seed >> 32) % slotCount[id];
        ok = true;
    }

    function _proof(bytes32 id, uint256 index) internal view returns (uint256[8] memory) {
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(market.getRequest(id).content.merkleRoot);
        inputs[1] = market.getEntropy(market.slotId(id, uint64(index)));
        inputs[2] = index;
        return verifier.proofFor(inputs);
    }

    function fill(uint256 seed) external {
        calls++;
        (bytes32 id, uint256 index, bool ok) = _pick(seed);
        if (!ok) return;
        address host = hosts[(seed >> 64) % 3];
        vm.prank(host);
        if (!market.canReserveSlot(id, uint64(index))) return;
        vm.prank(host);
        market.reserveSlot(id, uint64(index));
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(market.getRequest(id).content.merkleRoot);
        inputs[1] = market.fillEntropy(market.slotId(id, uint64(index)), host);
        inputs[2] = index;
        uint256[8] memory proof = verifier.proofFor(inputs);
        vm.prank(host);
        market.fillSlot(id, uint64(index), proof);
        fills++;
    }

    function prove(uint256 seed) external {
        calls++;
        (bytes32 id, uint256 index, bool ok) = _pick(seed);
        if (!ok) return;
        bytes32 slot = market.slotId(id, uint64(index));
        if (!market.isProofRequired(slot)) return;
        uint256[8] memory proof = _proof(id, index);
        vm.prank(market.getHost(slot));
        market.submitProof(slot, proof);
        proofs++;
    }

    function markMissing(uint256 seed) external {
        calls++;
        (bytes32 id, uint256 index, bool ok) = _pick(seed);
        if (!ok) return;
        bytes32 slot = market.slotId(id, uint64(index));
        uint256 p = market.currentPeriod() - 1;
        uint256 bond = market.config().accusationBond;
        vm.prank(validator);
        try market.accuseMissingProof{value: bond}(slot, p) {
            accusations++;
            openBonds += bond;
            accusedSlots.push(slot);
            accusedPeriods.push(p);
        } catch {}
    }

    /// Settles or defends one of the accusations made so far (most attempts fail: too early,
    /// too late, already closed); an honest host defends with the period's proof.
    function answer(uint256 seed) external {
        calls++;
        if (accusedSlots.length == 0) return;
        uint256 i = seed % accusedSlots.length;
        bytes32 slot = accusedSlots[i];
        uint256 p = accusedPeriods[i];
        uint256 bond = market.config().accusationBond;
        if ((seed >> 64) % 2 == 0) {
            vm.prank(validator);
            try market.settleAccusation(slot, p) {
                marks++;
                openBonds -= bond;
            } catch {}
            return;
        }
        address host = market.getHost(slot);
        if (host == address(0)) return;
        (bool ready,,) = market.periodSeed(p);
        if (!ready) return;
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(market.getActiveSlot(slot).request.content.merkleRoot);
        inputs[1] = market.entropyAt(slot, p);
        inputs[2] = market.getActiveSlot(slot).slotIndex;
        uint256[8] memory proof = verifier.proofFor(inputs);
        vm.prank(host);
        try market.defendProof(slot, p, proof) {
            defences++;
            openBonds -= bond;
        } catch {}
    }

    function advance(uint256 seed) external {
        calls++;
        uint256 dt = 1 + seed % (period * 2);
        // mostly a validator anchors the periods; sometimes nobody does (late or missing seeds)
        bool anchored = (seed >> 128) % 4 != 0;
        if (anchored) market.anchorPeriods();
        vm.warp(block.timestamp + dt);
        vm.roll(block.number + 1 + dt / 12);
        if (anchored) market.anchorPeriods();
    }

    /// Anyone anchors the periods and a block is mined (seeds become known).
    function anchor(uint256) external {
        calls++;
        market.anchorPeriods();
        vm.roll(block.number + 1);
    }

    function free(uint256 seed) external {
        calls++;
        (bytes32 id, uint256 index, bool ok) = _pick(seed);
        if (!ok) return;
        bytes32 slot = market.slotId(id, uint64(index));
        address host = market.getHost(slot);
        if (host == address(0)) return;
        vm.prank(host);
        try market.freeSlot(slot) {
            frees++;
        } catch {}
    }

    function withdraw(uint256 seed) external {
        calls++;
        if (requestIds.length == 0) return;
        bytes32 id = requestIds[seed % requestIds.length];
        vm.prank(client);
        try market.withdrawFunds(id) {
            withdrawals++;
        } catch {}
    }
}
