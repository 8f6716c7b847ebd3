// SPDX-License-Identifier: MIT
// Shared fixture for marketplace tests: token, mock verifier, marketplace, actors and helpers.
pragma solidity 0.8.37;

import {Test} from "./Test.sol";
import {TestToken} from "../../src/TestToken.sol";
import {Marketplace} from "../../src/Marketplace.sol";
import {IMarketplace} from "../../src/IMarketplace.sol";
import {MockVerifier} from "../mocks/MockVerifier.sol";
import {IMarketplaceEvents, IMarketplaceErrors} from "../../src/IMarketplaceEvents.sol";
import {IGroth16Verifier} from "../../src/interfaces/IGroth16Verifier.sol";
import {Ask, Content, Request, MarketplaceConfig, RequestState, SlotState} from "../../src/MarketplaceTypes.sol";

abstract contract MarketplaceBase is Test, IMarketplaceEvents, IMarketplaceErrors {
    uint256 internal constant PERIOD = 600;
    uint256 internal constant TIMEOUT = 120;
    uint256 internal constant RESPONSE = 60;
    uint256 internal constant BOND = 0.01 ether;
    uint256 internal constant RESERVATION = 1 hours;
    uint256 internal constant START_TIME = 1_700_000_000 - (1_700_000_000 % PERIOD) + 10;
    uint256 internal constant START_BLOCK = 10_000;

    TestToken internal token;
    MockVerifier internal verifier;
    IMarketplace internal market;

    address internal client = address(0xC11E);
    address internal validator = address(0x7A11);
    address[] internal hosts;
    uint256 internal nonce;

    function setUp() public virtual {
        vm.warp(START_TIME);
        vm.roll(START_BLOCK);
        token = new TestToken("Test", "TST");
        verifier = new MockVerifier();
        market = IMarketplace(address(new Marketplace(defaultConfig())));
        hosts.push(address(0x4051));
        hosts.push(address(0x4052));
        hosts.push(address(0x4053));
        hosts.push(address(0x4054));
        hosts.push(address(0x4055));
        _fund(client);
        _fund(validator);
        for (uint256 i = 0; i < hosts.length; i++) {
            _fund(hosts[i]);
        }
    }

    function defaultConfig() internal view returns (MarketplaceConfig memory c) {
        c.token = token;
        c.verifier = IGroth16Verifier(address(verifier));
        c.periodLength = uint32(PERIOD);
        c.proofTimeout = uint32(TIMEOUT);
        c.maxMissedProofs = 3;
        c.slashPercentage = 10;
        c.validatorRewardPercentage = 20;
        c.repairRewardPercentage = 10;
        c.maxRequestExpiry = 3 days;
        c.responseWindow = uint32(RESPONSE);
        c.reservationDepositPercentage = 10;
        c.reservationDuration = uint32(RESERVATION);
        c.dispersalWindow = 0;
        c.accusationBond = uint96(BOND);
        c.defenceSharePercentage = 50;
    }

    function _fund(address who) internal {
        token.mint(who, 1e60);
        vm.deal(who, 1000 ether);
        vm.prank(who);
        token.approve(address(market), type(uint256).max);
    }

    function _ask(uint16 slots) internal pure returns (Ask memory ask) {
        ask.slots = slots;
        ask.slotSize = 1 << 20;
        ask.duration = 30 days;
        ask.proofProbability = 1;
        ask.maxSlotLoss = slots > 2 ? 2 : 0;
        ask.repairThreshold = slots > 2 ? 1 : 1;
        ask.pricePerBytePerSecond = 3;
        ask.collateralPerByte = 1000;
    }

    function _newRequest(uint16 slots) internal returns (Request memory r) {
        r.client = client;
        r.expiry = 1 days;
        r.ask = _ask(slots);
        // a 36-byte CIDv1 (raw, sha2-256)
        r.content.cid = abi.encodePacked(hex"01551220", keccak256(abi.encode("content", nonce)));
        r.content.merkleRoot = bytes32(uint256(keccak256(abi.encode("root", nonce))) % 21888242871839275222246405745257275088548364400416034343698204186575808495617);
        r.nonce = bytes32(nonce++);
    }

    function _payment(Request memory r) internal pure returns (uint256) {
        return uint256(r.ask.slots) * r.ask.slotSize * r.ask.duration * r.ask.pricePerBytePerSecond;
    }

    function _collateral(Request memory r) internal pure returns (uint256) {
        return uint256(r.ask.slotSize) * r.ask.collateralPerByte;
    }

    function _deposit(Request memory r) internal pure returns (uint256) {
        return _collateral(r) * 10 / 100;
    }

    function _submitRequest(Request memory r) internal returns (bytes32 id) {
        vm.prank(r.client);
        id = market.requestStorage(r);
    }

    function _post(uint16 slots) internal returns (bytes32 id, Request memory r) {
        r = _newRequest(slots);
        id = _submitRequest(r);
    }

    function _slot(bytes32 requestId, uint256 index) internal view returns (bytes32) {
        return keccak256(abi.encode(requestId, uint64(index)));
    }

    /// A mock proof valid for this slot now (makes the period's seed known first if it is not).
    function _proof(bytes32 requestId, uint256 index) internal returns (uint256[8] memory) {
        _ensureSeed();
        return _proofWith(market.getRequest(requestId).content.merkleRoot, market.getEntropy(_slot(requestId, index)), index);
    }

    /// A mock fill proof valid for `host` filling this slot now.
    function _fillProof(bytes32 requestId, uint256 index, address host) internal returns (uint256[8] memory) {
        _ensureSeed();
        bytes32 root = market.getRequest(requestId).content.merkleRoot;
        return _proofWith(root, market.fillEntropy(_slot(requestId, index), host), index);
    }

    function _proofWith(bytes32 root, uint256 entropy, uint256 index) internal view returns (uint256[8] memory) {
        uint256[] memory inputs = new uint256[](3);
        inputs[0] = uint256(root);
        inputs[1] = entropy;
        inputs[2] = index;
        return verifier.proofFor(inputs);
    }

    function _reserve(bytes32 requestId, uint256 index, address host) internal {
        vm.prank(host);
        market.reserveSlot(requestId, uint64(index));
    }

    /// Makes the current period's seed known: anchors it (late) if nobody has, mines a block.
    function _ensureSeed() internal {
        (bool ready,,) = market.periodSeed(market.currentPeriod());
        if (ready) return;
        vm.prank(validator);
        market.anchorPeriods();
        vm.roll(block.number + 1);
    }

    function _fill(bytes32 requestId, uint256 index, address host) internal {
        _reserve(requestId, index, host);
        uint256[8] memory proof = _fillProof(requestId, index, host);
        vm.prank(host);
        market.fillSlot(requestId, uint64(index), proof);
    }

    /// Fills every slot; slot i goes to hosts[i % hosts.length].
    function _fillAll(bytes32 requestId, uint256 slots) internal {
        for (uint256 i = 0; i < slots; i++) {
            _fill(requestId, i, hosts[i % hosts.length]);
        }
    }

    function _submit(bytes32 requestId, uint256 index, address host) internal {
        uint256[8] memory proof = _proof(requestId, index);
        vm.prank(host);
        market.submitProof(_slot(requestId, index), proof);
    }

    /// Moves to the start of the next period (plus `offset` seconds), advancing blocks too, the
    /// way a chain with a validator goes: the validator anchors the next period before the move,
    /// and after it anchors the following one and, a block later, stores that one's seed.
    function _nextPeriod(uint256 offset) internal {
        vm.prank(validator);
        market.anchorPeriods();
        _warpToNextPeriod(offset);
        vm.prank(validator);
        market.anchorPeriods();
        vm.roll(block.number + 1);
        vm.prank(validator);
        market.anchorPeriods();
    }

    /// Moves to the start of the next period (plus `offset` seconds) without anchoring anything.
    function _warpToNextPeriod(uint256 offset) internal {
        uint256 next = (block.timestamp / PERIOD + 1) * PERIOD + offset;
        vm.roll(block.number + (next - block.timestamp) / 12 + 1);
        vm.warp(next);
    }

    function _accuse(bytes32 id, uint256 period) internal {
        vm.prank(validator);
        market.accuseMissingProof{value: BOND}(id, period);
    }

    /// Accuses the missing proof, lets the response window pass undefended, and settles it
    /// (the missed proof as the chain records it).
    function _mark(bytes32 id, uint256 period) internal {
        _accuseAndWait(id, period);
        _settle(id, period);
    }

    /// Accuses the missing proof and lets the response window pass undefended.
    function _accuseAndWait(bytes32 id, uint256 period) internal {
        _accuse(id, period);
        vm.warp(block.timestamp + RESPONSE + 1);
        vm.roll(block.number + RESPONSE / 12 + 1);
    }

    function _settle(bytes32 id, uint256 period) internal {
        vm.prank(validator);
        market.settleAccusation(id, period);
    }

    /// Moves past the point where a started request settles as Finished.
    function _warpToSettled(bytes32 requestId) internal {
        vm.warp(market.settlesAt(requestId));
    }

    /// Lets the host of slot `index` miss the proof of the next period and marks it.
    function _missOnce(bytes32 requestId, uint256 index) internal {
        _nextPeriod(1);
        uint256 missed = market.currentPeriod();
        _nextPeriod(1);
        _mark(_slot(requestId, index), missed);
    }
}
