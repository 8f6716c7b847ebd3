// SPDX-License-Identifier: MIT
// Gas scenario with a REAL Groth16Verifier (a synthetic key whose proofs the test can build,
// so every call pays the same precompile costs as with the circuit's key). Run with
// `forge test --mc MarketplaceGasTest --gas-report` (scripts/test.sh --gas-report does).
// The report's figures include the transaction's intrinsic gas (21000 + calldata); the
// README subtracts it to get execution gas.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";
import {Groth16Verifier} from "../src/Groth16Verifier.sol";

contract MarketplaceGasTest is MarketplaceBase {
    uint256 internal constant G2_X1 = 11559732032986387107991004021392285783925812861821192530917403151452391805634;
    uint256 internal constant G2_X0 = 10857046999023057135944570762232829481370756359578518086990519993285655852781;
    uint256 internal constant G2_Y1 = 4082367875863433681332203403145435568316851327593401208105741076214120093531;
    uint256 internal constant G2_Y0 = 8495653923123431417604973247489272438418190587263600148770280649306958101930;

    uint256[2] internal alpha;
    uint256[2][] internal ic;

    function setUp() public override {
        super.setUp();
        alpha = _mul([uint256(1), 2], 3);
        for (uint256 i = 0; i < 4; i++) {
            ic.push(_mul([uint256(1), 2], 17 + i));
        }
        uint256[4] memory g2 = [G2_X1, G2_X0, G2_Y1, G2_Y0];
        Groth16Verifier real = new Groth16Verifier(alpha, g2, g2, g2, ic);
        MarketplaceConfig memory c = defaultConfig();
        c.verifier = real;
        market = IMarketplace(address(new Marketplace(c)));
        _fund(client);
        _fund(validator);
        for (uint256 i = 0; i < hosts.length; i++) {
            _fund(hosts[i]);
        }
    }

    function _realProof(bytes32 requestId, uint256 index) internal returns (uint256[8] memory) {
        _ensureSeed();
        return _realProofWith(requestId, index, market.getEntropy(_slot(requestId, index)));
    }

    function _realFillProof(bytes32 requestId, uint256 index, address host) internal returns (uint256[8] memory) {
        _ensureSeed();
        return _realProofWith(requestId, index, market.fillEntropy(_slot(requestId, index), host));
    }

    function _realProofWith(bytes32 requestId, uint256 index, uint256 entropy) internal view returns (uint256[8] memory) {
        uint256[3] memory input = [uint256(market.getRequest(requestId).content.merkleRoot), entropy, index];
        uint256[2] memory vkx = ic[0];
        for (uint256 i = 0; i < 3; i++) {
            vkx = _add(vkx, _mul(ic[i + 1], input[i]));
        }
        uint256[2] memory c = _mul([uint256(1), 2], 9);
        uint256[2] memory a = _add(_add(alpha, vkx), c);
        return [a[0], a[1], G2_X1, G2_X0, G2_Y1, G2_Y0, c[0], c[1]];
    }

    function testGasScenario16Slots() public {
        // two requests so the report shows both a first and a steady-state requestStorage
        (bytes32 warmup,) = _post(16);
        warmup;
        (bytes32 id, Request memory r) = _post(16);
        for (uint256 i = 0; i < 16; i++) {
            address host = hosts[i % hosts.length];
            _reserve(id, i, host);
            uint256[8] memory proof = _realFillProof(id, i, host);
            vm.prank(host);
            market.fillSlot(id, uint64(i), proof);
        }
        assertTrue(market.requestState(id) == RequestState.Started);
        _nextPeriod(1);
        uint256 missed = market.currentPeriod();
        for (uint256 i = 0; i < 8; i++) {
            uint256[8] memory proof = _realProof(id, i);
            vm.prank(hosts[i % hosts.length]);
            market.submitProof(_slot(id, i), proof);
        }
        _nextPeriod(1);
        // slots 8..11 are accused and do not answer: the accusations settle as missed proofs;
        // slots 12..15 are accused and defend with the period's proof
        for (uint256 i = 8; i < 16; i++) {
            _accuse(_slot(id, i), missed);
        }
        for (uint256 i = 12; i < 16; i++) {
            uint256[8] memory proof = _realProofWith(id, i, market.entropyAt(_slot(id, i), missed));
            vm.prank(hosts[i % hosts.length]);
            market.defendProof(_slot(id, i), missed, proof);
        }
        vm.warp(block.timestamp + RESPONSE + 1);
        for (uint256 i = 8; i < 12; i++) {
            _settle(_slot(id, i), missed);
        }
        // slot 8 misses two more proofs and is lost (the costliest settleAccusation path)
        for (uint256 k = 0; k < 2; k++) {
            _nextPeriod(1);
            uint256 p = market.currentPeriod();
            _nextPeriod(1);
            _mark(_slot(id, 8), p);
        }
        assertEq(market.getHost(_slot(id, 8)), address(0));
        // a wrong proof is rejected without burning the caller's gas
        uint256[8] memory bad = _realProof(id, 0);
        bad[0] ^= 1;
        vm.prank(hosts[0]);
        vm.expectRevert(InvalidProof.selector);
        market.submitProof(_slot(id, 0), bad);
        r;
    }

    function _mul(uint256[2] memory p, uint256 s) internal view returns (uint256[2] memory out) {
        (bool ok, bytes memory ret) = address(7).staticcall(abi.encode(p[0], p[1], s));
        require(ok, "ecMul");
        (out[0], out[1]) = abi.decode(ret, (uint256, uint256));
    }

    function _add(uint256[2] memory p, uint256[2] memory q) internal view returns (uint256[2] memory out) {
        (bool ok, bytes memory ret) = address(6).staticcall(abi.encode(p[0], p[1], q[0], q[1]));
        require(ok, "ecAdd");
        (out[0], out[1]) = abi.decode(ret, (uint256, uint256));
    }
}
